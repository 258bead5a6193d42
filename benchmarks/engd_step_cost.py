"""Cost of one ENGD step against one Adam step, against the parameter count P and the points N.

Same process, same network and points, interleaved rounds (the machine is shared): for each
(width, N) the PINN loss on poisson_2d_sin with a tanh FNN of one hidden layer, the median over
rounds of the time of (a) one Adam step (loss, backward, step) and (b) one ENGD step split into
the Jacobian, the gradient with the eigendecomposition, and one loss evaluation of the line search.

    python benchmarks/engd_step_cost.py                       # widths 16..128, N 250..2000
    python benchmarks/engd_step_cost.py --widths 32 --points 1000 --rounds 5 --threads 1
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from hrta_pde.engd import GramJacobian, GramSolver
from hrta_pde.poisson.losses import GRAM_FORMS, LOSS_FUNCTIONS
from hrta_pde.poisson.catalog import builtin_problem
from hrta_pde.poisson.distance import hard_dirichlet
from hrta_pde.poisson.solve import SolveConfig, Setup


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(width: int, points: int, rounds: int) -> dict:
    problem = builtin_problem("poisson_2d_sin")
    cfg = SolveConfig.from_dict({"width": width, "depth": 1, "points": points,
                                 "boundary_points": max(points // 5, 40), "device": "cpu"})
    setup = Setup(problem, cfg)
    net = copy.deepcopy(setup.net)
    net.apply_output_transform(hard_dirichlet(problem))
    ctx, loss_fn = setup.context, LOSS_FUNCTIONS["pinn"]
    params = list(net.parameters())
    jac = GramJacobian(net, [t for t in GRAM_FORMS["pinn"](ctx) if t.name != "dirichlet"])
    adam = torch.optim.Adam(params, lr=1e-4)

    def total():
        return sum(loss_fn(net, ctx).values())

    def adam_step():
        adam.zero_grad()
        total().backward()
        adam.step()

    state = {}

    def jacobian():
        state["jw"] = jac()

    def solve():
        adam.zero_grad()
        loss = total()
        loss.backward()
        state["loss"] = float(loss.detach())
        g = torch.cat([p.grad.reshape(-1) for p in params])
        state["d"] = GramSolver(state["jw"], g).direction(0.0)

    def loss_eval():  # one of the 2 to 31 evaluations of a line search
        float(total().detach())

    jacobian()  # warm-up (torch.func traces)
    rows = {"adam": [], "jacobian": [], "solve": [], "loss_eval": []}
    for _ in range(rounds):
        rows["adam"].append(timed(adam_step))
        rows["jacobian"].append(timed(jacobian))
        rows["solve"].append(timed(solve))
        rows["loss_eval"].append(timed(loss_eval))
    med = {k: statistics.median(v) for k, v in rows.items()}
    med["engd"] = med["jacobian"] + med["solve"] + 3 * med["loss_eval"]  # a typical search: 3 losses
    return {"width": width, "P": jac.size, "N": points, "R": jac.rows, **med}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="16,32,64,128")
    p.add_argument("--points", default="250,1000,2000")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, float64, CPU; median of "
          f"{args.rounds} rounds; 'solve' includes the loss and its gradient; an ENGD step is counted with "
          "a line search of 3 loss evaluations (typical; 31 at most)")
    print("| width | P | N | rows R | Adam step [ms] | Jacobian [ms] | solve [ms] | one loss [ms] | ENGD step [ms] | ENGD / Adam |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w in (int(v) for v in args.widths.split(",")):
        for n in (int(v) for v in args.points.split(",")):
            r = measure(w, n, args.rounds)
            print(f"| {w} | {r['P']} | {r['N']} | {r['R']} | {1e3 * r['adam']:.2f} | {1e3 * r['jacobian']:.1f} | "
                  f"{1e3 * r['solve']:.1f} | {1e3 * r['loss_eval']:.1f} | {1e3 * r['engd']:.1f} | "
                  f"{r['engd'] / r['adam']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
