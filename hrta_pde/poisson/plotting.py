"""Figures with matplotlib (imported here only, on the Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hrta_pde.history import History
from hrta_pde.io.atomic import atomic_write


def _quiet(fn):
    """Draw without matplotlib's and numpy's warnings (a loss that is nan throughout, an axis with
    nothing to label): a plot of a failed run is drawn as far as it goes, and the command's one
    line says what failed."""
    import functools
    import warnings

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return wrapper


def _figure(figsize=(7.0, 4.5)):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _save(fig, path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))


@_quiet
def plot_loss_histories(histories: dict[str, History], path, *, title: str = "Training loss",
                        terms: bool = False, show_s: bool = True) -> Path:
    """Loss against iteration for each run (log scale; symlog if a loss is negative).

    Stage switches are marked with dotted vertical lines in the run's colour; with ``show_s``,
    ``s`` of each run is drawn as a step line on a second axis. With ``terms``, each loss term
    is drawn too (dashed).
    """
    fig, ax = _figure()
    negative = False
    scale = 0.0
    colors = {}
    for k, (label, hist) in enumerate(histories.items()):
        if not hist.rows:
            continue
        it = np.asarray(hist.column("iteration"))
        loss = np.asarray(hist.column("loss"), dtype=float)
        negative |= bool(np.nanmin(loss) <= 0)
        finite = np.abs(loss[np.isfinite(loss)])
        scale = max(scale, float(np.median(finite)) if finite.size else 0.0)
        (line,) = ax.plot(it, loss, lw=1.2, label=label)
        colors[label] = line.get_color()
        if terms and len(hist.term_names) > 1:
            for name in hist.term_names:
                ax.plot(it, np.asarray(hist.column(name), dtype=float), lw=0.8, ls="--",
                        color=line.get_color(), alpha=0.6, label=f"{label}: {name}")
        for sw in hist.switches:
            ax.axvline(sw, color=line.get_color(), ls=":", lw=1.0)
    if negative:
        # linear within a few decades below the typical |loss|, logarithmic beyond
        ax.set_yscale("symlog", linthresh=max(1e-12, 1e-3 * scale))
    else:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss" + (" (symlog)" if negative else " (log scale)"))
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if show_s:
        ax2 = ax.twinx()
        for label, hist in histories.items():
            if hist.rows:
                ax2.step(hist.column("iteration"), hist.column("s"), where="post",
                         color=colors.get(label), alpha=0.35, lw=1.0)
        ax2.set_ylabel("homotopy parameter s (thin lines)")
        ax2.set_ylim(-0.05, 2.05)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


@_quiet
def plot_error_history(curves: dict[str, tuple[np.ndarray, np.ndarray]], path, *,
                       ylabel: str = "relative L2 error", title: str = "Error against iteration") -> Path:
    """Error curves ``{label: (iterations, errors)}`` on a log scale."""
    fig, ax = _figure()
    for label, (it, err) in curves.items():
        ax.plot(it, err, marker=".", lw=1.2, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


@_quiet
def plot_1d(x: np.ndarray, curves: dict[str, np.ndarray], path, *, title: str = "Solution",
            error: np.ndarray | None = None) -> Path:
    """Lines over a 1-D grid (prediction, exact...), and the pointwise error on a second panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 6.0 if error is not None else 4.0), layout="constrained")
    axes = fig.subplots(2 if error is not None else 1, 1, squeeze=False)[:, 0]
    order = np.argsort(x)
    for label, y in curves.items():
        axes[0].plot(x[order], y[order], lw=1.4, label=label)
    axes[0].set_xlabel("x")
    axes[0].set_ylabel("u")
    axes[0].set_title(title)
    axes[0].legend(fontsize=8)
    axes[0].grid(True, alpha=0.3)
    if error is not None:
        axes[1].plot(x[order], error[order], lw=1.0, color="C3")
        axes[1].set_xlabel("x")
        axes[1].set_ylabel("prediction - exact")
        axes[1].grid(True, alpha=0.3)
    return _save(fig, path)


def _values(net, problem, pts: np.ndarray):
    import torch

    from hrta_pde.poisson.metrics import net_values

    p = next(net.parameters())
    x = torch.as_tensor(pts, dtype=p.dtype, device=p.device)
    u = net_values(net, x, gradient=False)[0].cpu().numpy()
    exact = problem.u_numpy(pts) if problem.has_exact else None
    return u, exact


@_quiet
def plot_solution(net, problem, path, *, title: str | None = None) -> Path | None:
    """The solution, the exact solution and the error: lines (1-D), filled triangle plots on a
    conforming mesh of the domain (2-D), or the three mid-plane slices (3-D). ``None`` for d > 3."""
    from hrta_pde.poisson.export import default_resolution
    from hrta_pde.poisson.mesh import mesh_shape

    title = title or f"{problem.name}: solution"
    if problem.dim == 1:
        mesh = mesh_shape(problem.shape, default_resolution(problem))
        x = np.asarray(mesh.points[:, 0], dtype=float)
        u, exact = _values(net, problem, x[:, None])
        curves = {"network u": u} | ({"exact u*": exact} if exact is not None else {})
        return plot_1d(x, curves, path, title=title, error=None if exact is None else u - exact)
    if problem.dim == 2:
        from matplotlib.figure import Figure
        from matplotlib.tri import Triangulation

        mesh = mesh_shape(problem.shape, default_resolution(problem) / 1.5)
        pts = np.asarray(mesh.points[:, :2], dtype=float)
        tri = Triangulation(pts[:, 0], pts[:, 1], mesh.cells[0].data)
        u, exact = _values(net, problem, pts)
        panels = [("network u", u)] + ([("exact u*", exact), ("error u - u*", u - exact)] if exact is not None else [])
        fig = Figure(figsize=(4.2 * len(panels), 3.8), layout="constrained")
        for ax, (label, v) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            im = ax.tripcolor(tri, v, shading="gouraud", cmap="RdBu_r" if label.startswith("error") else "viridis")
            fig.colorbar(im, ax=ax, shrink=0.85)
            ax.set_aspect("equal")
            ax.set_title(label)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        fig.suptitle(title)
        return _save(fig, path)
    if problem.dim == 3:
        from matplotlib.figure import Figure

        lo, hi = problem.shape.lo, problem.shape.hi
        mid = 0.5 * (lo + hi)
        n = 80
        rows = []
        for axis, name in ((2, "z"), (1, "y"), (0, "x")):
            free = [i for i in range(3) if i != axis]
            a, b = np.meshgrid(np.linspace(lo[free[0]], hi[free[0]], n), np.linspace(lo[free[1]], hi[free[1]], n))
            pts = np.empty((n * n, 3))
            pts[:, axis] = mid[axis]
            pts[:, free[0]], pts[:, free[1]] = a.ravel(), b.ravel()
            inside = problem.shape.classify(pts) <= 0  # the closed domain
            u, exact = _values(net, problem, pts)
            fields = [("network u", u)] + ([("exact u*", exact), ("error u - u*", u - exact)] if exact is not None else [])
            rows.append((f"{name} = {mid[axis]:.3g}", free, lo, hi, [(lab, np.where(inside, v, np.nan)) for lab, v in fields]))
        ncol = len(rows[0][4])
        fig = Figure(figsize=(4.0 * ncol, 3.6 * 3), layout="constrained")
        axes = fig.subplots(3, ncol, squeeze=False)
        for r, (plane, free, lo_, hi_, fields) in enumerate(rows):
            for c, (label, v) in enumerate(fields):
                ax = axes[r, c]
                im = ax.imshow(v.reshape(n, n), origin="lower", extent=(lo_[free[0]], hi_[free[0]], lo_[free[1]], hi_[free[1]]),
                               cmap="RdBu_r" if label.startswith("error") else "viridis")
                fig.colorbar(im, ax=ax, shrink=0.85)
                ax.set_title(f"{label}, slice {plane}")
                ax.set_xlabel("xyz"[free[0]])
                ax.set_ylabel("xyz"[free[1]])
        fig.suptitle(title)
        return _save(fig, path)
    return None
