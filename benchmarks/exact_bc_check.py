"""Exact Dirichlet data (distance-function transform) against the boundary penalty, same budget.

Problems with ``g`` written in the file (so the transform applies): the L-shape and the disk with a
hole, each with a smooth exact solution that vanishes on the whole boundary (``g = "0"``), and the
L-shape with ``-Laplace u = 1`` (no exact solution: measured against the FEM reference). Both runs
of a pair start from the same points and initial network; only ``hard_bc`` differs. Prints a
Markdown table (relative L2, relative H1 seminorm, iterations, seconds).

    python benchmarks/exact_bc_check.py --loss pinn                 # the solver's defaults (engd)
    python benchmarks/exact_bc_check.py --loss ritz --schedule 1:2000 --points 1000   # Adam
"""
from __future__ import annotations

import argparse
import platform
import time

PROBLEMS = {
    "lshape": {"domain": {"type": "lshape"}, "solution": {"u": "sin(pi*x)*sin(pi*y)"},
               "boundary": {"type": "dirichlet", "g": "0"}},
    "disk_with_hole": {"domain": {"type": "difference", "a": {"type": "disk", "radius": 1.0},
                                  "b": {"type": "disk", "radius": 0.5}},
                       "solution": {"u": "(x^2 + y^2 - 1)*(x^2 + y^2 - 0.25)*(1 + x)"},
                       "boundary": {"type": "dirichlet", "g": "0"}},
    "lshape_f1": {"domain": {"type": "lshape"}, "solution": {"f": "1"}, "boundary": {"type": "dirichlet", "g": "0"}},
}


def main(argv=None) -> int:
    import torch

    from hrta_pde.poisson.spec import problem_from_dict
    from hrta_pde.poisson.solve import Setup, SolveConfig, solve

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loss", default="pinn")
    p.add_argument("--schedule", default=None, help="stages (default: the solver's default for the loss)")
    p.add_argument("--points", type=int, default=None, help="interior points (default: the solver's)")
    p.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated subset of " + ", ".join(PROBLEMS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    given = {k: v for k, v in (("schedule", args.schedule), ("points", args.points)) if v is not None}
    print(f"loss {args.loss}, {given or 'solver defaults'}, seed {args.seed}, "
          f"{platform.processor() or platform.machine()}, {args.threads} thread(s)\n")
    print("| problem | boundary data | sampler, points | rel L2 | rel H1 semi | iterations | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name in args.problems.split(","):
        problem = problem_from_dict(PROBLEMS[name], source=name)
        reference = None
        if not problem.has_exact:
            from hrta_pde.poisson.fem import fem_reference

            reference = fem_reference(problem)
        base = SolveConfig.from_dict({"loss": args.loss, **given, "seed": args.seed, "device": "cpu",
                                      "checkpoint_every": 10**9, "eval_every": 10**6})
        setup = Setup(problem, base)
        for hard in (True, False):
            cfg = base.replace(hard_bc=hard)
            t = time.perf_counter()
            res = solve(problem, cfg, setup=setup, reference=reference)
            m, sp = res.metrics, res.config.sampling
            print(f"| {name} | {'exact (phi)' if hard else 'penalty'} | {sp.sampler}, {len(setup.x)} | "
                  f"{m['rel_l2']:.3e} | {m['rel_h1_semi']:.3e} | {m['iterations']} | {time.perf_counter() - t:.1f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
