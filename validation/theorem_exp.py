"""Experiment ``theorem``: the smallest eigenvalue of the Gram matrix H_s against s (Theorem 3.1).

On the paper's point sets (``paper_grid(1)``: 100 points of [0, 1]; ``paper_grid(3)``: the 5^3
grid of [0, 1]^3), for ``s = 0.25, 0.5, ..., 2``: ``lambda_min`` of the infinite-width closed
form ``H_s`` and of the empirical Gram matrix ``J J^T`` of one two-layer network per width
(``hrta_pde.ntk.min_eigenvalue_table``; the same weights for every ``s``). Output:
``theorem.csv``, ``facts.csv`` (per grid and column: strictly increasing in s?, ratio
lambda(2) / lambda(0.25), fitted exponent p of lambda ~ s^p), ``scaling.csv`` (why p = 2, see
:func:`scaling_facts`), ``theorem.md`` and one figure per grid.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from validation import common as C

PROFILES = {"quick": {"widths": [200, 1000]}, "full": {"widths": [200, 1000, 10000]}}
S_VALUES = [0.25 * k for k in range(1, 9)]
GRIDS = {1: "paper_grid(1): 100 points on [0, 1]", 3: "paper_grid(3): 5^3 = 125 points on [0, 1]^3"}
#: |lambda_min| below this (the Gram entries are O(1)) is rounding noise: the matrix is singular.
SINGULAR = 1e-10


def column_facts(s: list[float], lam: list[float]) -> dict:
    """Monotonicity and growth facts of one ``lambda_min(s)`` column."""
    lam = np.asarray(lam, dtype=float)
    singular = bool(np.any(lam < SINGULAR))
    increasing = bool(np.all(np.diff(lam) > 0))
    fact = {"numerically_singular": singular, "strictly_increasing": increasing and not singular,
            "ratio_last_first": float(lam[-1] / lam[0]) if not singular else math.nan,
            "exponent": math.nan}
    if not singular:
        fact["exponent"] = float(np.polyfit(np.log(s), np.log(lam), 1)[0])
    return fact


def scaling_facts(X, s_values) -> dict:
    """How closely the closed form obeys ``lambda_min(H_s) = s^2 lambda_min(H_1)``, and why.

    For phi = ReLU, ``H_s = s^2 H_1 + 2 (1 - s) K0`` with ``K0 = Xbar Xbar^T`` of rank at most
    d + 1. If the eigenvector v of ``lambda_min(H_1)`` has no component in the range of K0, then
    ``H_s v = s^2 H_1 v`` and the smallest eigenvalue scales exactly like s^2. Returns the rank of
    K0, the norm of v's component in its range (0 = exactly outside), and the largest relative
    deviation of ``lambda_min(H_s) / (s^2 lambda_min(H_1))`` from 1 over ``s_values``.
    """
    from hrta_pde.ntk import augment, gram_closed_form

    Xb = augment(X)
    H1 = gram_closed_form(X, 1.0)["H"]
    w, V = np.linalg.eigh(H1)
    basis, _ = np.linalg.qr(Xb)  # orthonormal basis of range(K0) = range(Xbar)
    rank = int(np.linalg.matrix_rank(Xb))
    dev = max(abs(np.linalg.eigvalsh(gram_closed_form(X, s)["H"])[0] / (s * s * w[0]) - 1.0) for s in s_values)
    return {"points": int(Xb.shape[0]), "rank_K0": rank,
            "component_in_range_K0": float(np.linalg.norm(basis[:, :rank].T @ V[:, 0])),
            "max_rel_deviation_from_s2": float(dev)}


def run(profile_name: str, out: Path, *, seed: int = 0, log=print) -> dict:
    from hrta_pde.ntk import min_eigenvalue_table, paper_grid, plot_min_eigenvalue

    C.init_worker()
    prof = PROFILES[profile_name]
    manifest = C.Manifest(out, "theorem", profile_name, {
        "s_values": S_VALUES, "widths": prof["widths"], "grids": GRIDS, "seed": seed,
        "network": "two-layer, phi = ReLU, a ~ N(0,1), w ~ N(0, I), both layers trained (hrta_pde.ntk.two_layer_net)",
        "singular_threshold": SINGULAR})
    rows, facts, figures, scaling = [], [], [], []
    for d in (1, 3):
        scaling.append({"d": d, **scaling_facts(paper_grid(d), S_VALUES)})
        table = min_eigenvalue_table(paper_grid(d), S_VALUES, widths=prof["widths"], seed=seed)
        for r in table:
            rows.append({"d": d, **r})
        columns = [k for k in table[0] if k != "s"]
        for col in columns:
            f = column_facts(S_VALUES, [r[col] for r in table])
            facts.append({"d": d, "column": col, **f})
        path = out / f"theorem_d{d}.png"
        plot_min_eigenvalue(table, path)
        figures.append(path)
        log(f"d={d}: " + ", ".join(f"{f['column']}: {'increasing' if f['strictly_increasing'] else 'NOT increasing'}"
                                    for f in facts if f["d"] == d))
    columns = ["d", "s"] + [k for k in rows[0] if k not in ("d", "s")]
    C.write_csv(out / "theorem.csv", rows, columns)
    C.write_csv(out / "facts.csv", facts, ["d", "column", "strictly_increasing", "numerically_singular",
                                           "ratio_last_first", "exponent"])
    C.write_csv(out / "scaling.csv", scaling, ["d", "points", "rank_K0", "component_in_range_K0",
                                               "max_rel_deviation_from_s2"])
    C.write_text(out / "theorem.md", markdown(rows, facts, prof, scaling))
    manifest.finish(figures=[p.name for p in figures])
    return {"rows": rows, "facts": facts, "figures": figures, "scaling": scaling}


def _colname(col: str) -> str:
    return "closed form (m = inf)" if col == "lambda_min_closed" else f"m = {col.removeprefix('lambda_min_m')}"


def markdown(rows: list[dict], facts: list[dict], prof, scaling: list[dict] = ()) -> str:
    parts = []
    for d in (1, 3):
        mine = [r for r in rows if r["d"] == d]
        cols = [k for k in mine[0] if k not in ("d", "s")]
        table = C.markdown_table(["s"] + [_colname(c) for c in cols],
                                 [[f"{r['s']:g}"] + [f"{r[c]:.4e}" for c in cols] for r in mine])
        ftab = C.markdown_table(
            ["Gram matrix", "strictly increasing in s", "lambda(2) / lambda(0.25)", "fitted p in lambda ~ s^p"],
            [[_colname(f["column"]),
              "numerically singular (lambda_min < %g): not meaningful" % SINGULAR if f["numerically_singular"]
              else ("yes" if f["strictly_increasing"] else "no"),
              "n/a" if math.isnan(f["ratio_last_first"]) else f"{f['ratio_last_first']:.2f}",
              "n/a" if math.isnan(f["exponent"]) else f"{f['exponent']:.2f}"]
             for f in facts if f["d"] == d])
        parts.append(f"#### {GRIDS[d]}: smallest eigenvalue of H_s\n\n{table}\n\n{ftab}")
    if scaling:
        parts.append("#### Closed form: lambda_min(H_s) against s^2 lambda_min(H_1)\n\n" + C.markdown_table(
            ["grid", "points", "rank of K0", "component of the lambda_min(H_1) eigenvector in range(K0)",
             "max over s of |lambda_min(H_s) / (s^2 lambda_min(H_1)) - 1|"],
            [[f"paper_grid({r['d']})", r["points"], r["rank_K0"], f"{r['component_in_range_K0']:.2e}",
              f"{r['max_rel_deviation_from_s2']:.2e}"] for r in scaling]))
    return "\n\n".join(parts)
