"""``hrta-pde``: the command line, a thin shell over the Python API.

Every sub-command validates its input first; a bad value prints one line
``hrta-pde: error: ...`` and exits with status 2, a failed run (disk full, ...) with status 1,
without a traceback (``--debug`` or ``HRTA_PDE_DEBUG=1`` shows it: :mod:`hrta_pde.errors`).
SIGINT and SIGTERM save a checkpoint and exit with 130 and 143.
"""
from __future__ import annotations

import argparse
import sys


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _integer(text: str) -> int:
    """An integer, also written as ``1e9`` (a float literal with an integral value)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not value.is_integer() or abs(value) > 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (or too large)")
    return int(value)


def _positive_int(text: str) -> int:
    value = _integer(text)
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
    p.add_argument("--overwrite", action="store_true",
                   help="reuse a non-empty --out folder that holds another run or other files")
    _add_debug(p)


def _add_debug(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a sub-command's default does not hide 'hrta-pde --debug solve'
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of an error (for bug reports; or set HRTA_PDE_DEBUG=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hrta-pde", description="Homotopy Relaxation Training (HRTA) for PINNs and "
                     "function approximation, on DeepXDE's PyTorch backend.")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the traceback of an error (for bug reports; or set HRTA_PDE_DEBUG=1)")
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
    ap.add_argument("--resume", default=None, metavar="RUN_DIR",
                    help="continue an interrupted approx run from its checkpoints (no other settings)")
    _add_common(ap)

    for name, helptext in (("solve", "solve a Poisson problem (-Laplace u = f) with HRTA"),
                           ("compare", "compare losses on a Poisson problem over seeds")):
        sp = sub.add_parser(name, help=helptext, description=helptext + ". PROBLEM is a TOML file or "
                            "the name of a built-in problem (hrta-pde problems lists them).")
        sp.add_argument("problem", nargs="?", default=None,
                        help="problem file or built-in name" + (" (default poisson_2d_sin)" if name == "solve" else ""))
        if name == "solve":
            sp.add_argument("--loss", default=None, help="ritz, sobolev, pinn or l2 (default: the problem "
                            "file's [solver] loss, else pinn)")
            sp.add_argument("--export", action="append", default=[], metavar="FILE",
                            help="also write the solution as a mesh file (.vtu, .xdmf, ...), or .csv (d > 3); "
                            "a bare file name goes into the run folder; repeatable")
            sp.add_argument("--resolution", type=_float, default=None,
                            help="mesh size h for --export (default: domain diameter / 40)")
            sp.add_argument("--resume", default=None, metavar="RUN_DIR",
                            help="continue an interrupted run from its checkpoint")
        else:
            sp.add_argument("--losses", default=None, help="comma separated (default ritz,sobolev,pinn)")
            sp.add_argument("--seeds", type=_positive_int, default=None, help="number of seeds (default 3)")
            sp.add_argument("--resume", default=None, metavar="RUN_DIR",
                            help="continue an interrupted comparison where it stopped (no other settings)")
        sp.add_argument("--schedule", default=None, help="HRTA stages S:N[:LR], comma separated; S:<=N "
                        "ends at a plateau; @adam, @lbfgs or @engd picks the stage's optimizer, e.g. 1:500,1:100@engd "
                        "(default for every loss: 1:200@engd, the energy natural gradient at s = 1)")
        sp.add_argument("--lr", type=_float, default=None, help="Adam learning rate (default 1e-3)")
        sp.add_argument("--engd-damping", type=_float, default=None,
                        help="engd damping: mu of (G + mu I)^+ grad with --engd-method linesearch (default 0: "
                        "the pseudo-inverse; lm tries a grid of dampings)")
        sp.add_argument("--engd-method", choices=["linesearch", "lm"], default=None,
                        help="engd step: a grid line search on the step size, or Levenberg-Marquardt damping")
        sp.add_argument("--reset-optimizer", action="store_true", default=None,
                        help="clear Adam's state at each stage switch")
        sp.add_argument("--net", choices=["fnn", "paper"], default=None,
                        help="fnn: DeepXDE FNN, Glorot init (default); paper: N(0,1) init, NTK scaling")
        sp.add_argument("--init", choices=["auto", "domain", "glorot"], default=None,
                        help="FNN initialisation: domain (first-layer transitions through the domain, "
                        "unit-scale pre-activations on the training points), glorot (DeepXDE's), or auto "
                        "(default: domain for tanh and sin, glorot for relu^k)")
        sp.add_argument("--width", type=_positive_int, default=None, help="hidden width (default 64)")
        sp.add_argument("--depth", type=_positive_int, default=None, help="hidden layers (default 1)")
        sp.add_argument("--phi", default=None, help="target activation phi: tanh (default), relu3, relu2, relu, sin")
        sp.add_argument("--points", type=_positive_int, default=None, help="interior training points (default 1000)")
        sp.add_argument("--boundary-points", type=_positive_int, default=None,
                        help="boundary training points (default 200)")
        sp.add_argument("--sampler", choices=["random", "uniform", "sobol"], default=None,
                        help="training point sampler (default sobol: scrambled Sobol points)")
        sp.add_argument("--beta", type=_float, default=None,
                        help="boundary weight (default 100 for ritz and pinn)")
        sp.add_argument("--hard-bc", action=argparse.BooleanOptionalAction, default=None,
                        help="impose the Dirichlet data exactly, u = g + phi*N, instead of the boundary "
                        "penalty (intervals, boxes and balls; default: on for the pinn loss where it applies)")
        sp.add_argument("--test-points", type=_positive_int, default=None,
                        help="independent random test points for the errors (default 10000)")
        sp.add_argument("--eval-every", type=_positive_int, default=None, help="errors every k iterations (default 10)")
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
    _add_debug(ep)

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
    npar.add_argument("--overwrite", action="store_true",
                      help="reuse a non-empty --out folder that holds another run or other files")
    _add_debug(npar)

    pp = sub.add_parser("problems", help="list the built-in problems")
    pp.add_argument("--show", default=None, metavar="NAME",
                    help="print one problem file (a built-in name or a path) and its boundary parts")
    _add_debug(pp)
    return parser


_SOLVER_FLAGS = ("loss", "schedule", "lr", "reset_optimizer", "net", "width", "depth", "phi", "points",
                 "boundary_points", "sampler", "beta", "hard_bc", "test_points", "eval_every", "seed", "dtype",
                 "device", "engd_damping", "engd_method", "init")
# Flags that do not change what a run computes: allowed with --resume.
_RUN_FLAGS = {"command", "resume", "quiet", "threads", "out", "overwrite", "debug", "device", "export",
              "resolution"}


def _solver_config(args, problem):
    """Defaults, then the problem file's [solver] table, then command-line flags."""
    from hrta_pde.poisson.solve import SolveConfig

    cfg = SolveConfig.from_dict(dict(getattr(problem, "solver", None) or {}))
    flags = {k: getattr(args, k) for k in _SOLVER_FLAGS if getattr(args, k, None) is not None}
    cfg = SolveConfig.from_dict(flags, base=cfg)
    cfg.validate()
    return cfg


def _load(name_or_path):
    from hrta_pde.poisson.catalog import resolve_problem

    return resolve_problem(name_or_path)


def _refuse_settings_on_resume(args) -> None:
    """``--resume`` continues a run with its saved settings: any other setting given is refused."""
    from hrta_pde.io.checkpoint import CheckpointError

    defaults = vars(build_parser().parse_args([args.command] + (["--resume", "x"] if args.command != "solve" else [])))
    given = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
             if k not in _RUN_FLAGS and k != "problem" and v != defaults.get(k)]
    if given:
        raise CheckpointError(f"--resume continues a run with its saved settings: drop {', '.join(given)}")


def _claim(args, kind: str, identity: dict):
    """The run folder of a new run (``--out`` or a timestamped one); see ``runio.claim_run_dir``."""
    from hrta_pde.io.runs import claim_run_dir

    return claim_run_dir(args.out or _default_out(kind), {"command": kind, **identity},
                         overwrite=getattr(args, "overwrite", False))


def _check_resumable(resume: dict, problem, cfg, run_dir) -> None:
    """The saved network fits its settings (a damaged or edited checkpoint: one line, not a traceback)."""
    from pathlib import Path

    import torch

    from hrta_pde._backend import resolve_dtype
    from hrta_pde.io.checkpoint import load_net_state
    from hrta_pde.poisson.solve import build_network

    net = build_network(cfg, problem.dim, torch.Generator().manual_seed(0), resolve_dtype(cfg.dtype),
                        torch.device("cpu"))
    load_net_state(net, resume["net"], Path(run_dir) / "checkpoint.pt")


def _check_solvable(problem, cfg) -> None:
    """What ``solve`` refuses (the loss, hard_bc), checked before a run folder is created."""
    from hrta_pde.poisson.losses import check_loss
    from hrta_pde.poisson.distance import hard_dirichlet

    check_loss(cfg.loss, problem, cfg.phi)
    if cfg.hard_bc:
        hard_dirichlet(problem)


def _cmd_solve(args) -> int:
    from dataclasses import asdict

    from hrta_pde import signals
    from hrta_pde.poisson.solve import format_metrics, solve

    resume = None
    if args.resume:
        from hrta_pde.io.checkpoint import CheckpointError, load_checkpoint
        from hrta_pde.poisson.spec import problem_from_dict
        from hrta_pde.io.runs import clean_stale_tmp
        from hrta_pde.poisson.solve import SolveConfig

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
        cfg.validate()
        _check_resumable(resume, problem, cfg, args.resume)
        out = args.resume
        clean_stale_tmp(out)
        print(f"resuming {problem.name} at iteration {resume['position']['iteration']} from {out}")
    else:
        from hrta_pde._backend import resolve_device
        from hrta_pde.limits import check_solve_size

        problem = _load(args.problem or "poisson_2d_sin")
        cfg = _solver_config(args, problem)
        check_solve_size(cfg, problem.dim, resolve_device(cfg.device))
    if args.export:
        from hrta_pde.poisson.export import check_export_targets

        check_export_targets(args.export, problem, args.resolution)
    if resume is None:
        _check_solvable(problem, cfg)  # before the run folder is made
        out = _claim(args, "solve", {"problem": problem.spec, "config": asdict(cfg)})
    reference = _reference(args, problem)
    res = solve(problem, cfg, out=out, progress=not args.quiet, resume=resume, reference=reference)
    print(f"{problem.name}: {res.config.loss} loss, schedule {res.config.schedule}, "
          f"{res.metrics['iterations']} iterations")
    if res.metrics["status"] == "interrupted":
        print(res.metrics["message"], file=sys.stderr)
        return signals.exit_status()
    print(format_metrics(res.metrics))
    for target in args.export:
        from hrta_pde.poisson.export import export_solution

        path = export_solution(res.net, problem, target, h=args.resolution, metrics=res.metrics,
                               config=cfg, run_dir=res.run_dir)
        print(f"exported {path}")
    from hrta_pde.io.runs import summary

    print(summary(res.run_dir))
    return 0 if res.metrics["status"] == "completed" else 1


def _reference(args, problem, choice: str | None = None):
    """None (use the exact solution, or measure nothing) or a finite element reference."""
    choice = choice or getattr(args, "reference", "auto")
    if choice == "exact" and not problem.has_exact:
        raise ValueError(f"--reference exact: problem {problem.name!r} has no exact solution; "
                         "add u under [solution] or use --reference fem")
    if choice == "fem" or (choice == "auto" and not problem.has_exact and problem.boundary_kind == "dirichlet"
                           and 1 <= problem.dim <= 3):
        from hrta_pde.poisson.fem import fem_reference

        ref = fem_reference(problem)
        print(f"finite element reference (P2): {ref.n_dofs} unknowns, h = {ref.h:.3g}, estimated "
              f"relative error {ref.estimated_rel_error:.1e}")
        return ref
    return None


def _cmd_export(args) -> int:
    from pathlib import Path

    from hrta_pde.poisson.export import check_export_targets, export_solution
    from hrta_pde.io.runs import read_json
    from hrta_pde.poisson.solve import load_run

    problem, cfg, net, ck = load_run(args.run_dir, command="export")
    targets = args.to or [str(Path(args.run_dir) / ("solution.vtu" if problem.dim <= 3 else "solution.csv"))]
    check_export_targets(targets, problem, args.resolution)
    metrics_file = Path(args.run_dir) / "metrics.json"
    saved = read_json(metrics_file, "metrics.json") if metrics_file.exists() else {}
    metrics = saved.get("metrics", {}) if isinstance(saved, dict) else {}
    for target in targets:
        print(f"exported {export_solution(net, problem, target, h=args.resolution, metrics=metrics, config=cfg)}")
    return 0


def _cmd_compare(args) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from hrta_pde import signals
    from hrta_pde.io.runs import summary
    from hrta_pde.poisson.solve import compare, load_compare_state

    if args.resume:
        _refuse_settings_on_resume(args)
        problem, cfg, losses, seeds, choice = load_compare_state(args.resume)
        if args.device is not None:
            cfg.device = args.device
        out, reference = Path(args.resume), _reference(args, problem, choice)
    else:
        from hrta_pde._backend import resolve_device
        from hrta_pde.limits import check_solve_size

        if args.problem is None:
            raise ValueError("compare needs a PROBLEM (a problem file or built-in name), or --resume RUN_DIR")
        problem = _load(args.problem)
        cfg = _solver_config(args, problem)
        check_solve_size(cfg, problem.dim, resolve_device(cfg.device))
        losses = [s.strip() for s in (args.losses or "ritz,sobolev,pinn").split(",") if s.strip()]
        seeds = args.seeds or 3
        out = _claim(args, "compare", {"problem": problem.spec, "config": asdict(cfg), "losses": losses,
                                       "seeds": seeds, "reference": args.reference})
        reference = _reference(args, problem)
    report = compare(problem, losses, seeds, cfg, out=out, progress=not args.quiet, reference=reference,
                     resume=bool(args.resume), reference_choice=args.reference)
    if report.get("status") == "interrupted":
        print(report["message"], file=sys.stderr)
        return signals.exit_status()
    print(summary(Path(report["run_dir"])))
    return 0 if all(r["status"] == "completed" for r in report["rows"]) else 1


def _cmd_ntk(args) -> int:
    from hrta_pde.history import _write_csv
    from hrta_pde.limits import check_ntk_size
    from hrta_pde.ntk import min_eigenvalue_table, paper_grid, plot_min_eigenvalue
    from hrta_pde.io.runs import summary

    try:
        s_values = [float(v) for v in args.s.split(",") if v.strip()]
        widths = [_integer(v) for v in args.widths.split(",") if v.strip()]
    except (ValueError, argparse.ArgumentTypeError):
        raise ValueError(f"--s {args.s!r} / --widths {args.widths!r}: give comma-separated numbers") from None
    if not s_values:
        raise ValueError("--s is empty: give s values such as 0.5,1,1.5")
    if any(w <= 0 for w in widths):
        raise ValueError(f"--widths {args.widths!r}: widths must be positive integers")
    if not 0 <= args.seed <= 2**62:
        raise ValueError(f"--seed {args.seed} must be an integer from 0 to 2^62")
    grid = paper_grid(args.dim)
    check_ntk_size(widths, len(grid), args.dim)
    run_dir = _claim(args, "ntk", {"dim": args.dim, "s": s_values, "widths": widths, "seed": args.seed})
    table = min_eigenvalue_table(grid, s_values, widths=widths, seed=args.seed)
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

    from hrta_pde.poisson.catalog import (builtin_problem_text, describe_parts, list_builtin_problems,
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
    from dataclasses import asdict

    from hrta_pde import signals
    from hrta_pde.approx import ApproxConfig, load_approx_config, run_approx

    if args.resume:
        _refuse_settings_on_resume(args)
        cfg = load_approx_config(args.resume)
        if args.device != "auto":
            cfg.device = args.device
        out = args.resume
    else:
        cfg = ApproxConfig(
            target=args.target, dim=args.dim, box=[list(args.box)], points=args.points, sampler=args.sampler,
            test_points=args.test_points, width=args.width, depth=args.depth, phi=args.phi, hrta=args.hrta,
            baseline=args.baseline, lr=args.lr, reset_optimizer=args.reset_optimizer,
            plateau_window=args.plateau_window, plateau_threshold=args.plateau_threshold, seed=args.seed,
            dtype=args.dtype, device=args.device, record_every=args.record_every)
        cfg.validate()
        from hrta_pde._backend import resolve_device
        from hrta_pde.limits import check_approx_size

        check_approx_size(cfg, resolve_device(cfg.device))  # before the run folder is made
        out = _claim(args, "approx", {"config": asdict(cfg)})
    report = run_approx(cfg, out=out, progress=not args.quiet, resume=bool(args.resume))
    if report.get("status") == "interrupted":
        print(report["message"], file=sys.stderr)
        return signals.exit_status()
    return 0 if all(r["status"] == "completed" for r in report["runs"].values()) else 1


def _default_out(kind: str):
    import datetime as dt
    from pathlib import Path

    base = Path("runs") / f"{kind}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():  # two runs started in the same second
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


COMMANDS = {"approx": _cmd_approx, "solve": _cmd_solve, "compare": _cmd_compare,
            "export": _cmd_export, "ntk": _cmd_ntk, "problems": _cmd_problems}


def _interruptible(command: str):
    """For the training commands, SIGINT/SIGTERM set the stop flag from the start of the command:
    one received while setting up (imports, points, a FEM reference) stops training at its first
    iteration, with a checkpoint, instead of killing the process without one."""
    import contextlib

    from hrta_pde.signals import catch_interrupts

    return catch_interrupts() if command in ("solve", "compare", "approx") else contextlib.nullcontext()


def main(argv=None) -> int:
    from hrta_pde import signals
    from hrta_pde.errors import classify, debug_requested

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = debug_requested(argv) or getattr(args, "debug", False)
    signals.reset()
    try:
        import warnings

        import numpy as np
        import torch

        import hrta_pde  # noqa: F401  (selects the backend; raises BackendError if another is active)
        from hrta_pde.train import NonFiniteLossWarning

        warnings.filterwarnings("ignore", category=NonFiniteLossWarning)  # the commands print it

        if getattr(args, "threads", None):
            torch.set_num_threads(args.threads)
        # The commands check values for finiteness themselves and say where; numpy's own
        # RuntimeWarnings (log(0), ...) would print before that one line.
        with np.errstate(all="ignore"), _interruptible(args.command):
            return COMMANDS[args.command](args)
    except KeyboardInterrupt:  # a second Ctrl-C / SIGTERM: stop now, without a checkpoint
        print("hrta-pde: interrupted", file=sys.stderr)
        return signals.exit_status()
    except Exception as err:  # the error boundary: one line, exit 2 (input) or 1 (run)
        if debug:
            raise
        code, message = classify(err)
        print(f"hrta-pde: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
