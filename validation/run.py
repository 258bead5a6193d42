"""Validation experiments of hrta_pde: a thin command line over ``validation/*_exp.py``.

    python validation/run.py approx          --profile quick|full [--out DIR] [--seeds N] [--workers N]
    python validation/run.py theorem         --profile quick|full [--out DIR]
    python validation/run.py pde             --profile quick|full [--out DIR] [--seeds N] [--workers N] [--resume]
    python validation/run.py time-to-target  --profile quick|full [--out DIR] [--seeds N] [--workers N]
    python validation/run.py gd              --profile quick|full [--out DIR] [--seeds N] [--workers N]
    python validation/run.py second-order    --profile quick|full [--out DIR] [--seeds N] [--workers N] [--resume]
    python validation/run.py report          [--profile full|quick] [--results DIR] [--output FILE]

Results go to ``validation/results/<experiment>-<profile>`` unless ``--out`` is given.
See ``validation/README.md``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``validation`` and ``hrta_pde`` importable
    sys.path.insert(0, str(ROOT))

EXPERIMENTS = ("approx", "theorem", "pde", "time-to-target", "gd", "second-order")


def _log(msg: str) -> None:
    print(msg, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="validation/run.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in EXPERIMENTS:
        p = sub.add_parser(name)
        p.add_argument("--profile", choices=("quick", "full"), default="quick")
        p.add_argument("--out", default=None, help="result folder (default validation/results/<experiment>-<profile>)")
        if name != "theorem":
            p.add_argument("--workers", type=int, default=None,
                           help="worker processes, one thread each (default: 1 quick, 2 full)")
        if name in ("approx", "time-to-target", "pde", "gd", "second-order"):
            p.add_argument("--seeds", type=int, default=None, help="override the profile's number of seeds")
        if name in ("approx", "pde", "second-order"):
            p.add_argument("--resume", action="store_true", help="keep completed runs of an earlier call")
        if name in ("approx", "second-order"):
            p.add_argument("--tables-only", action="store_true",
                           help="train nothing: tabulate the completed runs already in --out (after an interrupted run)")
    p = sub.add_parser("report")
    p.add_argument("--profile", choices=("quick", "full"), default="full",
                   help="which results to assemble (default full)")
    p.add_argument("--results", default=None, help="folder holding <experiment>-<profile>/ (default validation/results)")
    p.add_argument("--output", default=None, help="Markdown file to write (default validation/REPORT.md)")
    args = parser.parse_args(argv)

    from validation import common as C

    if args.command == "report":
        from validation import report

        results = Path(args.results) if args.results else C.RESULTS
        output = Path(args.output) if args.output else ROOT / "validation" / "REPORT.md"
        path = report.write_report(results, args.profile, output)
        _log(f"wrote {path}")
        return 0
    if getattr(args, "seeds", None) is not None and args.seeds < 1:
        parser.error(f"--seeds={args.seeds} must be >= 1")
    if getattr(args, "workers", None) is not None and args.workers < 1:
        parser.error(f"--workers={args.workers} must be >= 1")
    out = C.out_dir(args.out, args.command, args.profile)
    C.init_worker()
    if args.command == "approx":
        from validation import approx_exp

        approx_exp.run(args.profile, out, seeds=args.seeds, workers=args.workers, resume=args.resume,
                       tables_only=args.tables_only, log=_log)
    elif args.command == "theorem":
        from validation import theorem_exp

        theorem_exp.run(args.profile, out, log=_log)
    elif args.command == "time-to-target":
        from validation import ttt_exp

        ttt_exp.run(args.profile, out, seeds=args.seeds, workers=args.workers, log=_log)
    elif args.command == "pde":
        from validation import pde_exp

        pde_exp.run(args.profile, out, seeds=args.seeds, workers=args.workers, resume=args.resume, log=_log)
    elif args.command == "gd":
        from validation import gd_exp

        gd_exp.run(args.profile, out, seeds=args.seeds, workers=args.workers, log=_log)
    elif args.command == "second-order":
        from validation import second_order_exp

        if args.tables_only:
            second_order_exp.tables_only(args.profile, out, seeds=args.seeds, log=_log)
        else:
            second_order_exp.run(args.profile, out, seeds=args.seeds, workers=args.workers, resume=args.resume,
                                 log=_log)
    _log(f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
