"""Sizes checked against the available memory before anything is allocated.

A width of 10^6 or 10^9 points would otherwise end in an allocator error (a traceback) after
minutes, or in the machine swapping. The estimates are deliberately simple -- parameters with
their gradients and Adam state, and the activations autograd keeps per point -- and err on the
large side; a refusal says the estimate, what is available and which setting to lower.
"""
from __future__ import annotations

import os

from hrta_pde.errors import SettingError, literal

#: Most hidden layers: each layer is a Python-level module call per iteration, so a network of
#: 100000 layers builds and trains for minutes before the first iteration, whatever its width.
MAX_DEPTH = 100


class SizeError(SettingError):
    """A run that would not fit in memory (or beyond a fixed limit); the message names the settings
    to lower as ``{name}`` (:class:`hrta_pde.errors.SettingError`)."""


def available_bytes(device=None) -> int | None:
    """Free memory of ``device`` (CUDA: ``mem_get_info``; CPU: ``MemAvailable``), None if unknown."""
    import torch

    if device is not None and torch.device(device).type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


def mlp_parameters(dim: int, width: int, depth: int) -> int:
    """Parameters of ``dim -> width x depth -> 1`` (weights and biases)."""
    return dim * width + width + (depth - 1) * (width * width + width) + width + 1


def check_fits(parts: dict[str, tuple[int, str]], device=None, available: int | None = None) -> int:
    """Refuse if the sum of ``parts`` ({label: (bytes, the settings to lower as a SettingError template)}) exceeds the free memory.

    Returns the estimate in bytes. ``available`` overrides the measured free memory (tests).
    """
    total = sum(b for b, _ in parts.values())
    free = available_bytes(device) if available is None else available
    if free is None or total <= free:
        return total
    label, (big, fix) = max(parts.items(), key=lambda kv: kv[1][0])
    detail = ", ".join(f"{k} {human(b)}" for k, (b, _) in parts.items())
    raise SizeError(literal(f"this run needs about {human(total)} of memory ({detail}), but {human(free)} are "
                            "available: lower ") + fix)


def _activations(points: int, width: int, depth: int, itemsize: int, per_neuron: int) -> int:
    return points * width * depth * itemsize * per_neuron


def check_solve_size(cfg, dim: int, device=None, available: int | None = None) -> int:
    """Memory of a Poisson solve: network and Adam state, training and test activations.

    Per point and neuron autograd keeps a few values for the network and each of the ``dim``
    derivatives of its output (the losses need the gradient, PINN the Laplacian too).
    """
    b = 4 if cfg.run.dtype == "float32" else 8
    per_neuron = 6 * (1 + dim)
    width, depth, pts = cfg.network.width, cfg.network.depth, cfg.sampling
    params = mlp_parameters(dim, width, depth)
    return check_fits({
        "network and optimizer": (6 * params * b, "{width} or {depth}"),
        "training points": (_activations(pts.points + pts.boundary_points, width, depth, b, per_neuron),
                            "{points} (or {width})"),
        "test points": (_activations(pts.test_points, width, depth, b, per_neuron),
                        "{test_points} (or {width})"),
    }, device, available)


def check_approx_size(cfg, device=None, available: int | None = None) -> int:
    """Memory of an ``approx`` run: two networks with Adam state, training and test activations."""
    b = 4 if cfg.run.dtype == "float32" else 8
    width, depth = cfg.network.width, cfg.network.depth
    params = mlp_parameters(cfg.dim, width, depth)
    return check_fits({
        "networks and optimizer": (10 * params * b, "{width} or {depth}"),
        "training points": (_activations(cfg.sampling.points, width, depth, b, 4), "{points} (or {width})"),
        "test points": (_activations(cfg.sampling.test_points, width, depth, b, 2),
                        "{test_points} (or {width})"),
    }, device, available)


def check_ntk_size(widths, n_points: int, dim: int, available: int | None = None) -> int:
    """Memory of the empirical Gram matrices: per-point gradients ``(n, parameters)``, a few copies."""
    if not widths:
        return 0
    m = max(widths)
    return check_fits({"Jacobian": (3 * n_points * (m * (dim + 2) + 1) * 8, "{widths}")}, None, available)
