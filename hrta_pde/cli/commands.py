"""The sub-commands of ``hrta-pde``: each reads its flags, calls the library, writes the run
folder and prints (the library itself is quiet)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hrta_pde.cli.parser import _integer, build_parser


# Flags that do not change what a run computes: allowed with --resume.
_RUN_FLAGS = {"command", "resume", "quiet", "threads", "out", "overwrite", "debug", "device", "export",
              "resolution"}


def _solver_flags(args) -> dict:
    """The solver settings given on the command line (the keys of ``SolveConfig`` that are flags)."""
    from hrta_pde.poisson.settings import SOLVER_KEYS

    return {k: getattr(args, k) for k in SOLVER_KEYS if getattr(args, k, None) is not None}


def _solver_config(args, problem):
    """Defaults, then the problem file's [solver] table, then command-line flags."""
    from hrta_pde.poisson.settings import SolveConfig

    return SolveConfig.from_dict({**(getattr(problem, "solver", None) or {}), **_solver_flags(args)})


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
    """The run folder of a new run (``--out`` or a timestamped one); see ``runs.claim_run_dir``."""
    from hrta_pde.io.runs import claim_run_dir

    return claim_run_dir(args.out or _default_out(kind), {"command": kind, **identity},
                         overwrite=getattr(args, "overwrite", False))


def _resume_solve(args):
    """``(problem, config, checkpoint)`` of ``solve --resume RUN_DIR`` (its saved settings)."""
    from hrta_pde.io.checkpoint import CheckpointError
    from hrta_pde.io.runs import clean_stale_tmp
    from hrta_pde.poisson.solve import open_run

    given = [f"--{k.replace('_', '-')}" for k in _solver_flags(args) if k != "device"]
    if given:
        raise CheckpointError(f"--resume continues a run with its saved settings: drop {', '.join(given)}")
    run = open_run(args.resume, command="solve --resume", device=args.device)
    if args.problem is not None and _load(args.problem).spec != run.problem.spec:
        raise CheckpointError(f"run folder {args.resume!r} was made for problem {run.problem.name!r}, not "
                              f"{args.problem!r}: resume without a problem argument or start a new run")
    clean_stale_tmp(args.resume)
    print(f"resuming {run.problem.name} at iteration {run.checkpoint['position']['iteration']} from {args.resume}")
    return run.problem, run.config, run.checkpoint


def _new_solve(args):
    """``(problem, config)`` of a new solve: the problem file's settings and the flags."""
    from hrta_pde._backend import resolve_device
    from hrta_pde.limits import check_solve_size
    from hrta_pde.poisson.solve import decide_sampling

    problem = _load(args.problem or "poisson_2d_sin")
    cfg = decide_sampling(problem, _solver_config(args, problem))
    check_solve_size(cfg, problem.dim, resolve_device(cfg.run.device))
    return problem, cfg


def _cmd_solve(args) -> int:
    from hrta_pde import signals
    from hrta_pde.io.runs import summary
    from hrta_pde.poisson import runfolder
    from hrta_pde.poisson.solve import plan_solve, solve

    problem, cfg, resume = _resume_solve(args) if args.resume else (*_new_solve(args), None)
    if args.export:
        from hrta_pde.poisson.export import check_export_targets

        check_export_targets(args.export, problem, args.resolution)
    plan = plan_solve(problem, cfg)  # the loss and hard_bc checked before the run folder is made
    out = args.resume or _claim(args, "solve", {"problem": problem.spec, "config": cfg.to_dict()})
    runfolder.write_problem_file(out, problem, plan.config)  # reproduces the run
    reference = _reference(args, problem)
    res = solve(problem, plan, checkpoint_dir=out, progress=not args.quiet, resume=resume, reference=reference)
    status = res.metrics["status"]
    if status == "interrupted":
        res.metrics["message"] += f"; resume with: hrta-pde solve --resume {out}"
    if status != "completed":
        print(f"hrta-pde: {res.metrics['message']}")
    runfolder.write_run(res, problem, out)
    print(f"{problem.name}: {res.config.loss} loss, schedule {res.config.schedule}, "
          f"{res.metrics['iterations']} iterations")
    if status == "completed" and res.metrics.get("message"):  # e.g. the energy check ended the run
        print(res.metrics["message"])
    if status == "interrupted":
        print(res.metrics["message"], file=sys.stderr)
        return signals.exit_status()
    print(runfolder.format_metrics(res.metrics))
    for target in args.export:
        from hrta_pde.poisson.export import export_solution

        path = export_solution(res.net, problem, target, h=args.resolution, metrics=res.metrics,
                               config=res.config, run_dir=out)
        print(f"exported {path}")
    print(summary(Path(out)))
    return 0 if status == "completed" else 1


def _reference(args, problem, choice: str | None = None):
    """None (use the exact solution, or measure nothing) or a finite element reference."""
    choice = choice or getattr(args, "reference", "auto")
    if choice == "exact" and not problem.has_exact:
        raise ValueError(f"--reference exact: problem {problem.name!r} has no exact solution; "
                         "add u under [solution] or use --reference fem")
    if choice == "fem" or (choice == "auto" and not problem.has_exact and not problem.pure_neumann
                           and 1 <= problem.dim <= 3):
        from hrta_pde.poisson.fem import fem_reference

        ref = fem_reference(problem)
        print(f"finite element reference (P2): {ref.n_dofs} unknowns, h = {ref.h:.3g}, estimated "
              f"relative error {ref.estimated_rel_error:.1e}")
        return ref
    return None


def _cmd_export(args) -> int:
    from hrta_pde.io.runs import read_json
    from hrta_pde.poisson.export import check_export_targets, export_solution
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
    from hrta_pde import signals
    from hrta_pde.io.runs import summary
    from hrta_pde.poisson.compare import compare, load_compare_state

    if args.resume:
        _refuse_settings_on_resume(args)
        problem, cfg, losses, seeds, choice = load_compare_state(args.resume)
        if args.device is not None:
            cfg = cfg.replace(device=args.device)
        out, reference = Path(args.resume), _reference(args, problem, choice)
    else:
        from hrta_pde._backend import resolve_device
        from hrta_pde.limits import check_solve_size

        if args.problem is None:
            raise ValueError("compare needs a PROBLEM (a problem file or built-in name), or --resume RUN_DIR")
        from hrta_pde.errors import SettingError
        from hrta_pde.poisson.solve import decide_sampling

        problem = _load(args.problem)
        cfg = _solver_config(args, problem)
        losses = [s.strip() for s in (args.losses or "ritz,sobolev,pinn").split(",") if s.strip()]
        if not losses:
            raise SettingError("no losses given: use e.g. {losses:=}ritz,sobolev,pinn")
        sized = decide_sampling(problem, cfg.replace(loss=losses[0]))  # the comparison's points
        check_solve_size(sized, problem.dim, resolve_device(cfg.run.device))
        seeds = args.seeds or 3
        out = _claim(args, "compare", {"problem": problem.spec, "config": cfg.to_dict(), "losses": losses,
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


def _approx_config(args):
    from hrta_pde.approx import ApproxConfig

    return ApproxConfig.from_dict(dict(
        target=args.target, dim=args.dim, box=[list(args.box)], points=args.points, sampler=args.sampler,
        test_points=args.test_points, width=args.width, depth=args.depth, phi=args.phi, hrta=args.hrta,
        baseline=args.baseline, lr=args.lr, reset_optimizer=args.reset_optimizer,
        plateau_window=args.plateau_window, plateau_threshold=args.plateau_threshold, seed=args.seed,
        dtype=args.dtype, device=args.device, record_every=args.record_every))


def _cmd_approx(args) -> int:
    from hrta_pde import signals
    from hrta_pde.approx import format_table, load_approx_config, run_approx, write_approx_config, write_approx_run
    from hrta_pde.io.runs import clean_stale_tmp, summary

    if args.resume:
        _refuse_settings_on_resume(args)
        cfg = load_approx_config(args.resume)
        if args.device != "auto":
            cfg = cfg.replace(device=args.device)
        out = Path(args.resume)
        clean_stale_tmp(out)
    else:
        from hrta_pde._backend import resolve_device
        from hrta_pde.limits import check_approx_size

        cfg = _approx_config(args)
        check_approx_size(cfg, resolve_device(cfg.run.device))  # before the run folder is made
        out = _claim(args, "approx", {"config": cfg.to_dict()})
    write_approx_config(out, cfg)  # first: what --resume rebuilds the run from
    result = run_approx(cfg, checkpoint_dir=out, progress=not args.quiet, resume=bool(args.resume))
    write_approx_run(result, out)
    for label, r in result.report["runs"].items():
        if r["status"] != "completed":
            print(f"{label}: {r['message']}")
    if result.status == "interrupted":
        print(f"{result.report['message']}; resume with: hrta-pde approx --resume {out}", file=sys.stderr)
        return signals.exit_status()
    print(format_table(result.report))
    print(summary(out))
    return 0 if all(r["status"] == "completed" for r in result.report["runs"].values()) else 1


def _default_out(kind: str):
    import datetime as dt
    from pathlib import Path

    base = Path("runs") / f"{kind}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():  # two runs started in the same second
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path
