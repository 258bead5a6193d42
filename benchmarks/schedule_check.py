"""Compare schedules of one loss with the solver's defaults otherwise, over problems and seeds.

Every run uses ``SolveConfig`` defaults (FNN 3x64, ReLU^3, 2000 Sobol interior points, Adam 1e-3)
except the loss, the schedule and the seed; within a seed every schedule starts from the same
points and initial network. Prints one Markdown table (relative L2 and H1-seminorm errors, seconds)
and, per problem, how many seeds the first schedule beat each other one.

    python benchmarks/schedule_check.py --loss sobolev --schedules 1:1000,1.5:5000 1:6000 \\
        --problems poisson_2d_sin poisson_disk poisson_1d --seeds 2 --workers 2
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import time


def run_one(job: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    from hrta_pde.poisson.catalog import builtin_problem
    from hrta_pde.poisson.solve import SolveConfig, solve

    problem, loss, schedule, seed = job
    cfg = SolveConfig.from_dict({"loss": loss, "schedule": schedule, "seed": seed, "device": "cpu",
                                 "checkpoint_every": 10**9, "eval_every": 1000})
    t = time.perf_counter()
    res = solve(builtin_problem(problem), cfg)
    return {"problem": problem, "schedule": schedule, "seed": seed, "rel_l2": res.metrics["rel_l2"],
            "rel_h1_semi": res.metrics["rel_h1_semi"], "seconds": time.perf_counter() - t}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loss", default="sobolev")
    p.add_argument("--schedules", nargs="+", required=True, help="the first is compared with each other one")
    p.add_argument("--problems", nargs="+", default=["poisson_2d_sin"])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="processes of one thread each")
    args = p.parse_args(argv)
    jobs = [(pr, args.loss, sc, k) for pr in args.problems for k in range(args.seeds) for sc in args.schedules]
    if args.workers > 1:
        with mp.get_context("spawn").Pool(args.workers) as pool:
            rows = pool.map(run_one, jobs)
    else:
        rows = [run_one(j) for j in jobs]
    print(f"# {args.loss}, solver defaults otherwise; {platform.processor() or 'cpu'}, one thread per run, "
          f"{args.workers} worker(s)")
    print("\n| problem | seed | schedule | relative L2 | relative H1 seminorm | seconds |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['problem']} | {r['seed']} | {r['schedule']} | {r['rel_l2']:.3e} | {r['rel_h1_semi']:.3e} | "
              f"{r['seconds']:.0f} |")
    first = args.schedules[0]
    print()
    for other in args.schedules[1:]:
        for pr in args.problems:
            err = {(r["schedule"], r["seed"]): r["rel_l2"] for r in rows if r["problem"] == pr}
            wins = sum(err[(first, k)] < err[(other, k)] for k in range(args.seeds))
            print(f"- {pr}: {first} had the lower relative L2 error than {other} in {wins} of {args.seeds} seeds")
    print("\n" + json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
