"""Error against wall time: the solver's second-order defaults against the old Adam defaults.

Each case is one ``solve`` on a catalog problem (float64, CPU; the problem file's ``[solver]`` table
applies, as on the command line, then the case's settings), with the errors measured every
few iterations on the independent test set, so a run gives a curve of relative L2 error against
seconds of training. The table has the final error and time of each case; the plot has the curves.

    python benchmarks/accuracy_frontier.py                          # every case below
    python benchmarks/accuracy_frontier.py --cases sin_pinn_engd,sin_pinn_adam
    python benchmarks/accuracy_frontier.py --list
    python benchmarks/accuracy_frontier.py --problem poisson_disk --loss pinn --set width=48 --set schedule=1:100@engd

Targets (issue 9): poisson_2d_sin PINN and Sobolev <= 1e-7, Ritz <= 1e-6, each in <= 60 s; disk,
annulus, 3-D cube <= 1e-6; 10-D <= 1e-4, each in <= 5 minutes; L-shape with ``-Laplace u = 1``
(FEM reference, ``lshape_f1``) <= 2e-3; the catalog's L-shape (singular exact solution) as well.
Targets (issue 12): the catalog problems with a jumping coefficient <= 1e-3 against their FEM
reference (``jump_robin_ritz_engd``, ``layers3d_ritz_engd``) or exact solution
(``interface_pinn_engd``); the ``kink_*`` cases show the interface inputs on a kinked exact solution.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hrta_pde.poisson.catalog import builtin_problem
from hrta_pde.poisson.solve import SolveConfig, solve

OLD_ADAM = {"phi": "relu3", "width": 64, "depth": 3, "points": 2000, "boundary_points": 400, "init": "glorot"}

#: name -> (problem, settings different from the solver's defaults, target rel. L2, time limit [s])
CASES = {
    "sin_sobolev_engd": ("poisson_2d_sin", {"loss": "sobolev"}, 1e-7, 60),
    "sin_pinn_engd": ("poisson_2d_sin", {"loss": "pinn"}, 1e-7, 60),
    "sin_ritz_engd": ("poisson_2d_sin", {"loss": "ritz"}, 1e-6, 60),
    "sin_sobolev_adam": ("poisson_2d_sin", {"loss": "sobolev", "schedule": "1:6000", **OLD_ADAM}, 1e-7, 60),
    "sin_pinn_adam": ("poisson_2d_sin", {"loss": "pinn", "schedule": "1:2000", **OLD_ADAM}, 1e-7, 60),
    "sin_ritz_adam": ("poisson_2d_sin", {"loss": "ritz", "schedule": "1:4000", **OLD_ADAM}, 1e-6, 60),
    "sin_ritz_adam_tanh": ("poisson_2d_sin", {"loss": "ritz", "schedule": "1:4000"}, 1e-6, 60),
    "disk_pinn_engd": ("poisson_disk", {"loss": "pinn"}, 1e-6, 300),
    "annulus_pinn_engd": ("poisson_annulus", {"loss": "pinn"}, 1e-6, 300),
    "cube_pinn_engd": ("poisson_3d_cube", {"loss": "pinn"}, 1e-6, 300),
    "10d_pinn_engd": ("poisson_10d", {"loss": "pinn"}, 1e-4, 300),
    "lshape_pinn_engd": ("poisson_lshape", {"loss": "pinn"}, 2e-3, 300),
    "lshape_ritz_engd": ("poisson_lshape", {"loss": "ritz"}, 2e-3, 300),
    # the L-shape: -Laplace u = 1, u = 0, against the FEM reference
    "lshape_f1_ritz_engd": ("lshape_f1", {"loss": "ritz"}, 2e-3, 300),
    "lshape_f1_pinn_engd": ("lshape_f1", {"loss": "pinn"}, 2e-3, 300),
    "lshape_f1_pinn_no_log_corners": ("lshape_f1", {"loss": "pinn", "log_corner_inputs": False}, 2e-3, 300),
    # the torsion square: r^2 log r at its corners
    "torsion_pinn_engd": ("poisson_torsion", {"loss": "pinn"}, 1e-4, 60),
    "torsion_pinn_no_log_corners": ("poisson_torsion", {"loss": "pinn", "log_corner_inputs": False}, 1e-4, 60),
    "torsion_ritz_engd": ("poisson_torsion", {"loss": "ritz"}, 1e-4, 60),
    # coefficients that jump (issue 12: the new catalog problems to 1e-3), with their files' [solver]
    "jump_robin_ritz_engd": ("poisson_jump_robin", {}, 1e-3, 600),
    "layers3d_ritz_engd": ("poisson_3d_layers", {}, 1e-3, 600),
    "interface_pinn_engd": ("poisson_interface", {}, 1e-3, 300),
    "kink_pinn_engd": ("kink", {"loss": "pinn"}, 1e-6, 60),
    "kink_ritz_engd": ("kink", {"loss": "ritz"}, 1e-6, 60),
    "kink_ritz_no_inputs": ("kink", {"loss": "ritz", "interface_inputs": False}, 1e-6, 60),
}

#: Problems of the cases that are not in the catalog (as problem-file tables).
PROBLEMS = {"lshape_f1": {"name": "lshape_f1", "domain": {"type": "lshape"}, "solution": {"f": "1"},
                          "boundary": {"type": "dirichlet", "g": "0"}},
            # a = 1 | 4 across x = 1/2, u continuous with a du/dx continuous: a kink
            "kink": {"name": "kink", "domain": {"type": "rectangle", "xmin": [0, 0], "xmax": [1, 1]},
                     "solution": {"a": "where(x < 0.5, 1, 4)",
                                  "u": "where(x < 0.5, x, 0.5 + (x - 0.5)/4 - 2.5*(x - 0.5)**2) * sin(pi*y)"},
                     "boundary": {"type": "dirichlet"}}}


def _parse_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def run_case(problem_name: str, settings: dict, eval_every: int, seed: int) -> dict:
    if problem_name in PROBLEMS:
        from hrta_pde.poisson.spec import problem_from_dict

        problem = problem_from_dict(PROBLEMS[problem_name], source=problem_name)
    else:
        problem = builtin_problem(problem_name)
    # the problem file's [solver] table, as the command line takes it, then the case's settings
    cfg = SolveConfig.from_dict({"device": "cpu", "seed": seed, **(getattr(problem, "solver", None) or {}), **settings})
    if "eval_every" not in settings:
        cfg = cfg.replace(eval_every=eval_every if "@" in cfg.schedule_text else max(eval_every, 100))
    reference = None
    if not problem.has_exact:
        from hrta_pde.poisson.fem import fem_reference

        reference = fem_reference(problem)
    t = time.perf_counter()
    res = solve(problem, cfg, reference=reference)
    seconds = time.perf_counter() - t
    ev = res.history.evaluations
    times = dict(zip(res.history.column("iteration"), res.history.column("time")))
    curve = [(times.get(e["iteration"], seconds), e["rel_l2"]) for e in ev]
    m = res.metrics
    return {"problem": problem_name, "loss": res.config.loss, "schedule": res.config.schedule,
            "net": f"{res.config.network.phi} {res.config.network.depth}x{res.config.network.width}",
            "points": f"{res.config.sampling.sampler} {res.config.sampling.points}",
            "rel_l2": m["rel_l2"], "rel_h1_semi": m["rel_h1_semi"], "seconds": seconds,
            "iterations": m["iterations"], "status": m["status"], "curve": curve}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES), help="comma separated case names (--list)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--problem", default=None, help="instead of --cases: one ad-hoc case on this problem")
    p.add_argument("--loss", default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a solver setting")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (1 on a machine shared with other jobs: OpenMP threads that wait "
                   "for a busy core make small linear algebra 100x slower)")
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results/accuracy_frontier.json")
    p.add_argument("--plot", default=None, help="write the error-time plot here (PNG)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.list:
        for name, (prob, settings, target, limit) in CASES.items():
            print(f"{name:<20} {prob:<18} {settings}  target {target:g} in {limit} s")
        return
    if args.problem:
        settings = dict(kv.split("=", 1) for kv in args.set)
        settings = {k: _parse_value(v) for k, v in settings.items()}
        if args.loss:
            settings["loss"] = args.loss
        cases = {f"{args.problem}_{args.loss or 'default'}": (args.problem, settings, None, None)}
    else:
        cases = {name: CASES[name] for name in args.cases.split(",")}
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, float64, CPU, seed {args.seed}")
    print("| case | problem | loss | net | points | schedule | relative L2 | rel. H1 semi | time [s] | iterations | target | met |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    out = Path(args.out)
    if out.exists():
        results = json.loads(out.read_text())
    for name, (prob, settings, target, limit) in cases.items():
        r = run_case(prob, settings, args.eval_every, args.seed)
        met = "" if target is None else ("yes" if r["rel_l2"] <= target and r["seconds"] <= limit else "no")
        tgt = "" if target is None else f"{target:g} in {limit} s"
        print(f"| {name} | {prob} | {r['loss']} | {r['net']} | {r['points']} | {r['schedule']} | {r['rel_l2']:.2e} | "
              f"{r['rel_h1_semi']:.2e} | {r['seconds']:.1f} | {r['iterations']} | {tgt} | {met} |", flush=True)
        results[name] = {**r, "target": target, "limit": limit, "seed": args.seed}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, args.plot)


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = sorted({r["problem"] for r in results.values()})
    fig, axes = plt.subplots(1, len(problems), figsize=(5 * len(problems), 4), squeeze=False)
    for ax, prob in zip(axes[0], problems):
        for name, r in results.items():
            if r["problem"] != prob or not r["curve"]:
                continue
            t, e = zip(*r["curve"])
            ax.loglog([max(v, 1e-2) for v in t], e, label=f"{r['loss']}: {r['schedule']}, {r['net']}",
                      ls="-" if "@" in r["schedule"] else "--")
        ax.set_title(prob)
        ax.set_xlabel("wall time [s]")
        ax.set_ylabel("relative L2 error")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
