"""``hrta-pde``: the command line, a thin shell over the Python API.

Every sub-command validates its input first; a bad value prints one line
``hrta-pde: error: ...`` and exits with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import sys


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (initial network and points)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"], help="floating point type")
    p.add_argument("--device", default="auto", help="auto (CUDA if visible), cpu or cuda")
    p.add_argument("--out", default=None, help="run folder (default: runs/<command>-<timestamp>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and fewer messages")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for torch (default: torch's choice)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hrta-pde", description="Homotopy Relaxation Training (HRTA) for PINNs and "
                     "function approximation, on DeepXDE's PyTorch backend.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ap = sub.add_parser("approx", help="supervised function approximation: HRTA against a baseline",
                        description="Train the paper's network on a target function with HRTA and with a "
                        "baseline schedule, from the same initial parameters and points.")
    ap.add_argument("--target", default="sin(2*pi*x)",
                    help="target f*(x) in x (1-D) or x1..xd; e.g. 'sin(2*pi*x)' (default)")
    ap.add_argument("--dim", type=_positive_int, default=1, help="input dimension d (1..10)")
    ap.add_argument("--box", type=_float, nargs=2, metavar=("LO", "HI"), default=[0.0, 1.0],
                    help="domain [LO, HI]^d (default 0 1)")
    ap.add_argument("--points", type=_positive_int, default=100,
                    help="training points (a grid needs k^d points; default 100)")
    ap.add_argument("--sampler", choices=["grid", "random"], default="grid", help="training points")
    ap.add_argument("--test-points", type=_positive_int, default=2000, help="independent random test points")
    ap.add_argument("--width", type=_positive_int, default=1000, help="hidden width m (default 1000)")
    ap.add_argument("--depth", type=_positive_int, default=1, help="hidden layers (1 = the two-layer network)")
    ap.add_argument("--phi", default="relu", help="target activation: relu, relu2, relu3, tanh, sin")
    ap.add_argument("--hrta", default="0.5:3000,1:13000",
                    help="HRTA stages S:N[:LR], comma separated; S:<=N ends at a loss plateau "
                    "(default 0.5:3000,1:13000)")
    ap.add_argument("--baseline", default="1:16000", help="baseline stages (default 1:16000)")
    ap.add_argument("--lr", type=_float, default=1e-3, help="Adam learning rate (default 1e-3)")
    ap.add_argument("--reset-optimizer", action="store_true", help="clear Adam's state at each stage switch")
    ap.add_argument("--plateau-window", type=_positive_int, default=500, help="plateau rule window W")
    ap.add_argument("--plateau-threshold", type=_float, default=0.01, help="plateau rule threshold tau")
    ap.add_argument("--record-every", type=_positive_int, default=10, help="history row every k iterations")
    _add_common(ap)

    for name, helptext in (("solve", "solve a Poisson problem (-Laplace u = f) with HRTA"),
                           ("compare", "compare losses on a Poisson problem over seeds")):
        sp = sub.add_parser(name, help=helptext, description=helptext + ". PROBLEM is a TOML file or "
                            "the name of a built-in problem (hrta-pde problems lists them).")
        sp.add_argument("problem", nargs="?" if name == "solve" else None, default=None,
                        help="problem file or built-in name" + (" (default poisson_2d_sin)" if name == "solve" else ""))
        if name == "solve":
            sp.add_argument("--loss", default=None, help="ritz, sobolev, pinn or l2 (default: the problem "
                            "file's [solver] loss, else sobolev)")
            sp.add_argument("--export", action="append", default=[], metavar="FILE",
                            help="also write the solution as a mesh file (.vtu, .xdmf, ...), or .csv (d > 3); "
                            "a bare file name goes into the run folder; repeatable")
            sp.add_argument("--resolution", type=_float, default=None,
                            help="mesh size h for --export (default: domain diameter / 40)")
            sp.add_argument("--resume", default=None, metavar="RUN_DIR",
                            help="continue an interrupted run from its checkpoint")
        else:
            sp.add_argument("--losses", default="ritz,sobolev,pinn", help="comma separated (default ritz,sobolev,pinn)")
            sp.add_argument("--seeds", type=_positive_int, default=3, help="number of seeds (default 3)")
        sp.add_argument("--schedule", default=None, help="HRTA stages S:N[:LR], comma separated; S:<=N "
                        "ends at a plateau (default one stage: 1:6000 for sobolev and l2, 1:4000 for ritz, 1:2000 for pinn)")
        sp.add_argument("--lr", type=_float, default=None, help="Adam learning rate (default 1e-3)")
        sp.add_argument("--reset-optimizer", action="store_true", default=None,
                        help="clear Adam's state at each stage switch")
        sp.add_argument("--net", choices=["fnn", "paper"], default=None,
                        help="fnn: DeepXDE FNN, Glorot init (default); paper: N(0,1) init, NTK scaling")
        sp.add_argument("--width", type=_positive_int, default=None, help="hidden width (default 64)")
        sp.add_argument("--depth", type=_positive_int, default=None, help="hidden layers (default 3)")
        sp.add_argument("--phi", default=None, help="target activation phi: relu3 (default), relu2, relu, tanh, sin")
        sp.add_argument("--points", type=_positive_int, default=None, help="interior training points (default 2000)")
        sp.add_argument("--boundary-points", type=_positive_int, default=None,
                        help="boundary training points (default 400)")
        sp.add_argument("--sampler", choices=["random", "uniform", "sobol"], default=None,
                        help="training point sampler (default sobol: scrambled Sobol points)")
        sp.add_argument("--beta", type=_float, default=None,
                        help="boundary weight (default 100 for ritz and pinn)")
        sp.add_argument("--hard-bc", action=argparse.BooleanOptionalAction, default=None,
                        help="impose the Dirichlet data exactly, u = g + phi*N, instead of the boundary "
                        "penalty (intervals, boxes and balls; default: on for the pinn loss where it applies)")
        sp.add_argument("--test-points", type=_positive_int, default=None,
                        help="independent random test points for the errors (default 10000)")
        sp.add_argument("--eval-every", type=_positive_int, default=None, help="errors every k iterations (default 250)")
        sp.add_argument("--reference", choices=["auto", "exact", "fem"], default="auto",
                        help="what errors are measured against: the exact solution, or a P2 finite element "
                        "solution refined until it is well below the errors (Dirichlet, 1-3 D); auto: exact "
                        "when the problem has one, else fem when possible")
        _add_common(sp)
        sp.set_defaults(dtype=None, seed=None, device=None)  # None: the problem file or the default

    ep = sub.add_parser("export", help="write a saved run's solution as a mesh file (or CSV for d > 3)",
                        description="Rebuild the trained network of RUN_DIR and write its solution, exact "
                        "solution, error, gradient and f at the nodes of a mesh of the domain.")
    ep.add_argument("run_dir", help="a run folder written by 'hrta-pde solve'")
    ep.add_argument("--to", action="append", default=[], metavar="FILE",
                    help="output file(s): .vtu (default RUN_DIR/solution.vtu), .xdmf, .vtk, .csv, ...")
    ep.add_argument("--resolution", type=_float, default=None, help="mesh size h (default: diameter / 40 in 2-D)")

    npar = sub.add_parser("ntk", help="smallest eigenvalue of the NTK Gram matrix H_s against s (Theorem 3.1)",
                          description="Closed-form infinite-width Gram matrix H_s = K^a_s + K^w_s of the two-layer "
                          "network with phi = ReLU, and optionally finite-width empirical ones, on the paper's "
                          "grids: prints the smallest eigenvalue against s, writes a CSV and a plot.")
    npar.add_argument("--dim", type=int, choices=[1, 3], default=1,
                      help="the paper's point set: 1 (100 grid points in [0,1]) or 3 (5^3 grid points)")
    npar.add_argument("--s", default="0.25,0.5,0.75,1,1.25,1.5,1.75,2", help="comma-separated s values in [0, 2]")
    npar.add_argument("--widths", default="", help="also empirical Gram matrices at these widths, e.g. 200,1000")
    npar.add_argument("--seed", type=int, default=0, help="seed of the finite-width networks")
    npar.add_argument("--out", default=None, help="run folder (default runs/ntk-<timestamp>)")

    pp = sub.add_parser("problems", help="list the built-in problems")
    pp.add_argument("--show", default=None, metavar="NAME",
                    help="print one problem file (a built-in name or a path) and its boundary parts")
    return parser


_SOLVER_FLAGS = ("loss", "schedule", "lr", "reset_optimizer", "net", "width", "depth", "phi", "points",
                 "boundary_points", "sampler", "beta", "hard_bc", "test_points", "eval_every", "seed", "dtype",
                 "device")


def _solver_config(args, problem):
    """Defaults, then the problem file's [solver] table, then command-line flags."""
    from hrta_pde.solve import SolveConfig

    cfg = SolveConfig.from_dict(dict(getattr(problem, "solver", None) or {}))
    flags = {k: getattr(args, k) for k in _SOLVER_FLAGS if getattr(args, k, None) is not None}
    cfg = SolveConfig.from_dict(flags, base=cfg)
    cfg.validate()
    return cfg


def _load(name_or_path):
    from hrta_pde.problem import resolve_problem

    return resolve_problem(name_or_path)


def _cmd_solve(args) -> int:
    from hrta_pde.solve import format_metrics, solve

    resume = None
    if args.resume:
        from hrta_pde.checkpoint import CheckpointError, load_checkpoint
        from hrta_pde.problem import problem_from_dict
        from hrta_pde.solve import SolveConfig

        given = [f"--{k.replace('_', '-')}" for k in _SOLVER_FLAGS if k != "device" and getattr(args, k, None) is not None]
        if given:
            raise CheckpointError(f"--resume continues a run with its saved settings: drop {', '.join(given)}")
        resume = load_checkpoint(args.resume)
        problem = problem_from_dict(resume["problem"], source=args.resume)
        if args.problem is not None and _load(args.problem).spec != problem.spec:
            raise CheckpointError(f"run folder {args.resume!r} was made for problem {problem.name!r}, not "
                                  f"{args.problem!r}: resume without a problem argument or start a new run")
        cfg = SolveConfig.from_dict(resume["config"])
        if args.device is not None:
            cfg.device = args.device
        out = args.resume
        print(f"resuming {problem.name} at iteration {resume['position']['iteration']} from {out}")
    else:
        problem = _load(args.problem or "poisson_2d_sin")
        cfg = _solver_config(args, problem)
        out = args.out or _default_out("solve")
    if args.export:
        from hrta_pde.export import check_export_targets

        check_export_targets(args.export, problem, args.resolution)
    reference = _reference(args, problem)
    res = solve(problem, cfg, out=out, progress=not args.quiet, resume=resume, reference=reference)
    print(f"{problem.name}: {res.config.loss} loss, schedule {res.config.schedule}, "
          f"{res.metrics['iterations']} iterations")
    if res.metrics["status"] == "interrupted":
        print(res.metrics["message"], file=sys.stderr)
        return 130
    print(format_metrics(res.metrics))
    for target in args.export:
        from hrta_pde.export import export_solution

        path = export_solution(res.net, problem, target, h=args.resolution, metrics=res.metrics,
                               config=cfg, run_dir=res.run_dir)
        print(f"exported {path}")
    from hrta_pde.runio import summary

    print(summary(res.run_dir))
    return 0 if res.metrics["status"] == "completed" else 1


def _reference(args, problem):
    """None (use the exact solution, or measure nothing) or a finite element reference."""
    choice = getattr(args, "reference", "auto")
    if choice == "exact" and not problem.has_exact:
        raise ValueError(f"--reference exact: problem {problem.name!r} has no exact solution; "
                         "add u under [solution] or use --reference fem")
    if choice == "fem" or (choice == "auto" and not problem.has_exact and problem.boundary_kind == "dirichlet"
                           and 1 <= problem.dim <= 3):
        from hrta_pde.fem import fem_reference

        ref = fem_reference(problem)
        print(f"finite element reference (P2): {ref.n_dofs} unknowns, h = {ref.h:.3g}, estimated "
              f"relative error {ref.estimated_rel_error:.1e}")
        return ref
    return None


def _cmd_export(args) -> int:
    from hrta_pde.export import export_solution
    from hrta_pde.solve import load_run

    problem, cfg, net, ck = load_run(args.run_dir)
    from pathlib import Path

    targets = args.to or [str(Path(args.run_dir) / ("solution.vtu" if problem.dim <= 3 else "solution.csv"))]
    from hrta_pde.export import check_export_targets

    check_export_targets(targets, problem, args.resolution)
    import json

    metrics_file = Path(args.run_dir) / "metrics.json"
    metrics = json.loads(metrics_file.read_text()).get("metrics", {}) if metrics_file.exists() else {}
    for target in targets:
        print(f"exported {export_solution(net, problem, target, h=args.resolution, metrics=metrics, config=cfg)}")
    return 0


def _cmd_compare(args) -> int:
    from hrta_pde.solve import compare

    problem = _load(args.problem)
    cfg = _solver_config(args, problem)
    losses = [s.strip() for s in args.losses.split(",") if s.strip()]
    report = compare(problem, losses, args.seeds, cfg, out=args.out or _default_out("compare"),
                     progress=not args.quiet, reference=_reference(args, problem))
    from pathlib import Path

    from hrta_pde.runio import summary

    print(summary(Path(report["run_dir"])))
    return 0 if all(r["status"] == "completed" for r in report["rows"]) else 1


def _cmd_ntk(args) -> int:
    from hrta_pde.ntk import min_eigenvalue_table, paper_grid, plot_min_eigenvalue
    from hrta_pde.history import _write_csv
    from hrta_pde.runio import make_run_dir, summary

    try:
        s_values = [float(v) for v in args.s.split(",") if v.strip()]
        widths = [int(v) for v in args.widths.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--s {args.s!r} / --widths {args.widths!r}: give comma-separated numbers") from None
    if not s_values:
        raise ValueError("--s is empty: give s values such as 0.5,1,1.5")
    table = min_eigenvalue_table(paper_grid(args.dim), s_values, widths=widths, seed=args.seed)
    run_dir = make_run_dir(args.out or _default_out("ntk"), "ntk")
    cols = list(table[0])
    _write_csv(run_dir / "min_eigenvalue.csv", cols, [[r[c] for c in cols] for r in table])
    plot_min_eigenvalue(table, run_dir / "min_eigenvalue.png")
    print(" ".join(f"{c:>20}" for c in cols))
    for r in table:
        print(" ".join(f"{r[c]:>20.6g}" for c in cols))
    closed = [r["lambda_min_closed"] for r in table]
    increasing = all(b > a for a, b in zip(closed, closed[1:]))
    print(f"closed form: smallest eigenvalue {'increases' if increasing else 'does NOT increase'} with s "
          f"on these {len(closed)} values")
    print(summary(run_dir))
    return 0


def _cmd_problems(args) -> int:
    from pathlib import Path

    from hrta_pde.problem import (builtin_problem_text, describe_parts, list_builtin_problems,
                                  resolve_problem)

    if args.show:
        builtin = args.show in list_builtin_problems() and not Path(args.show).exists()
        text = builtin_problem_text(args.show) if builtin else None
        problem = resolve_problem(args.show)  # a file is checked (one-line error, exit 2)
        if text is None:
            text = Path(args.show).read_text(encoding="utf-8")
        print(text.rstrip("\n"))
        print(describe_parts(problem))
        return 0
    for name in list_builtin_problems():
        print(name)
    return 0


def _cmd_approx(args) -> int:
    from hrta_pde.approx import ApproxConfig, run_approx

    cfg = ApproxConfig(
        target=args.target, dim=args.dim, box=[list(args.box)], points=args.points, sampler=args.sampler,
        test_points=args.test_points, width=args.width, depth=args.depth, phi=args.phi, hrta=args.hrta,
        baseline=args.baseline, lr=args.lr, reset_optimizer=args.reset_optimizer,
        plateau_window=args.plateau_window, plateau_threshold=args.plateau_threshold, seed=args.seed,
        dtype=args.dtype, device=args.device, record_every=args.record_every)
    cfg.validate()
    report = run_approx(cfg, out=args.out or _default_out("approx"), progress=not args.quiet)
    return 0 if all(r["status"] == "completed" for r in report["runs"].values()) else 1


def _default_out(kind: str):
    import datetime as dt
    from pathlib import Path

    return Path("runs") / f"{kind}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


COMMANDS = {"approx": _cmd_approx, "solve": _cmd_solve, "compare": _cmd_compare,
            "export": _cmd_export, "ntk": _cmd_ntk, "problems": _cmd_problems}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        import warnings

        import torch

        import hrta_pde  # noqa: F401  (selects the backend; raises BackendError if another is active)
        from hrta_pde.train import NonFiniteLossWarning

        warnings.filterwarnings("ignore", category=NonFiniteLossWarning)  # the commands print it

        if getattr(args, "threads", None):
            torch.set_num_threads(args.threads)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("hrta-pde: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError) as err:
        import os

        from hrta_pde._backend import BackendError

        if os.environ.get("HRTA_PDE_DEBUG"):
            raise
        if isinstance(err, RuntimeError) and not isinstance(err, BackendError):
            raise
        print(f"hrta-pde: error: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
