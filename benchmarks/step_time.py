"""Per-step time of the HRTA driver against a bare PyTorch loop and DeepXDE's ``Model.train``.

Same network (the paper's two-layer network), same loss ``0.5 * mean((f - y)^2)``, same data, same
process; the three are run in interleaved rounds and the median of the per-round ratios is
reported, so machine noise affects all three alike.

    python benchmarks/step_time.py                 # width 1000, 100 points, float64 and float32
    python benchmarks/step_time.py --width 4000 --points 1000 --steps 300 --device cuda
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import hrta_pde as H
from hrta_pde.networks import HomotopyNet

dde = H.import_deepxde()


def make(width, points, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    net = HomotopyNet(1, [width], "relu", s=1.0, generator=g, dtype=dtype).to(device)
    x = torch.linspace(0, 1, points, dtype=dtype, device=device)[:, None]
    y = torch.sin(2 * torch.pi * x)
    return net, x, y


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare(width, points, dtype, device, steps):
    net, x, y = make(width, points, dtype, device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        loss = 0.5 * ((net(x) - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())  # a real loop logs its loss
    sync(device)
    return (time.perf_counter() - t) / steps


def driver(width, points, dtype, device, steps):
    net, x, y = make(width, points, dtype, device)
    sched = H.Schedule([H.Stage(1.0, steps)], lr=1e-3)
    sync(device)
    t = time.perf_counter()
    H.train(net, lambda: {"data": 0.5 * ((net(x) - y) ** 2).mean()}, sched)
    sync(device)
    return (time.perf_counter() - t) / steps


def deepxde_train(width, points, dtype, device, steps):
    net, x, y = make(width, points, dtype, device)
    xs, ys = x.cpu().numpy(), y.cpu().numpy()
    dde.config.set_default_float("float64" if dtype == torch.float64 else "float32")
    torch.set_default_dtype(torch.float32)  # DeepXDE's setting also changes torch's: undo
    data = dde.data.DataSet(X_train=xs, y_train=ys, X_test=xs[:2], y_test=ys[:2])
    model = dde.Model(data, net)
    model.compile("adam", lr=1e-3, loss=lambda yt, yp: 0.5 * torch.mean((yp - yt) ** 2), verbose=0)
    torch.set_default_device(device)  # DeepXDE converts numpy batches on the default device
    try:
        sync(device)
        t = time.perf_counter()
        model.train(iterations=steps, display_every=steps + 1, verbose=0)
        sync(device)
    finally:
        torch.set_default_device(None)  # no device context: it would slow every later torch call
    return (time.perf_counter() - t) / steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=1000)
    p.add_argument("--points", type=int, default=100)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtypes", default="float64,float32")
    args = p.parse_args(argv)
    device = H.resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"# width {args.width}, points {args.points}, {args.steps} steps x {args.rounds} rounds")
    print("| dtype | bare loop [ms/step] | driver [ms/step] | DeepXDE train [ms/step] | driver / bare | "
          "DeepXDE / bare | bare / bare (noise) |")
    print("|---|---|---|---|---|---|---|")
    for dt in args.dtypes.split(","):
        dtype = H.resolve_dtype(dt)
        for fn in (bare, driver, deepxde_train):  # warm-up
            fn(args.width, args.points, dtype, device, 20)
        times = {"bare": [], "driver": [], "dde": [], "bare2": []}
        for _ in range(args.rounds):
            times["bare"].append(bare(args.width, args.points, dtype, device, args.steps))
            times["bare2"].append(bare(args.width, args.points, dtype, device, args.steps))
            times["driver"].append(driver(args.width, args.points, dtype, device, args.steps))
            times["dde"].append(deepxde_train(args.width, args.points, dtype, device, args.steps))
        r_drv = statistics.median(d / b for d, b in zip(times["driver"], times["bare"]))
        r_dde = statistics.median(d / b for d, b in zip(times["dde"], times["bare"]))
        r_aa = statistics.median(d / b for d, b in zip(times["bare2"], times["bare"]))
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"| {dt} | {med['bare']:.3f} | {med['driver']:.3f} | {med['dde']:.3f} | {r_drv:.3f} | "
              f"{r_dde:.3f} | {r_aa:.3f} |")


if __name__ == "__main__":
    main()
