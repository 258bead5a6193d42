"""Time per HRTA driver step against network width and number of points, with log-log slopes.

The paper's two-layer network on a 1-D target; the slope of log(time) against log(width) (or
log(points)) is fitted with ``np.polyfit``. At small sizes a step is dominated by fixed per-op
overhead (slope near 0); at large sizes by the matrix work (slope near 1 for either).

    python benchmarks/scaling.py                     # CPU
    python benchmarks/scaling.py --device cuda       # a GPU, if there is one
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import hrta_pde as H
from hrta_pde.networks import HomotopyNet


def step_time(width: int, points: int, dtype, device, steps: int) -> float:
    g = torch.Generator().manual_seed(0)
    net = HomotopyNet(1, [width], "relu", s=0.5, generator=g, dtype=dtype).to(device)
    x = torch.rand(points, 1, generator=g, dtype=dtype).to(device)
    y = torch.sin(2 * torch.pi * x)
    sched = H.Schedule([H.Stage(0.5, 5)], lr=1e-3)
    loss = lambda: {"data": 0.5 * ((net(x) - y) ** 2).mean()}  # noqa: E731
    H.train(net, loss, sched)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    H.train(net, loss, H.Schedule([H.Stage(0.5, steps)], lr=1e-3))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps


def sweep(name, values, fn):
    times = [fn(v) for v in values]
    slope = np.polyfit(np.log(values), np.log(times), 1)[0]
    tail = np.polyfit(np.log(values[-3:]), np.log(times[-3:]), 1)[0]
    print(f"\n| {name} | ms/step |\n|---|---|")
    for v, t in zip(values, times):
        print(f"| {v} | {t * 1e3:.3f} |")
    print(f"\nlog-log slope, all sizes: {slope:.2f}; largest three sizes: {tail:.2f}")
    return times, slope, tail


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--steps", type=int, default=100)
    args = p.parse_args(argv)
    device, dtype = H.resolve_device(args.device), H.resolve_dtype(args.dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# device: {device} ({name}), {args.dtype}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    sweep("width (100 points)", [200, 400, 1000, 2000, 4000],
          lambda w: step_time(w, 100, dtype, device, args.steps))
    sweep("points (width 1000)", [100, 300, 1000, 3000, 10000],
          lambda n: step_time(1000, n, dtype, device, args.steps))


if __name__ == "__main__":
    main()
