"""The validation experiments (``validation/run.py``), quick profiles only.

Each quick profile runs once (module fixture, ~30-60 s in all on one core) into a temporary
folder; the tests check the written tables against the histories, against an independent
closed form, and against each other. The full profiles are not run here (see validation/README.md).
"""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from validation import approx_exp, common as C, gd_exp, pde_exp, report, second_order_exp, theorem_exp, ttt_exp  # noqa: E402
from validation.training import Method, make_config, paper_methods, run_method  # noqa: E402

METHODS = ["adam", "hrta_0.5", "hrta_1.5", "hrta_plateau"]


def _quiet(*_args, **_kw):
    pass


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run the quick profiles of approx, theorem, time-to-target and pde into one folder."""
    root = tmp_path_factory.mktemp("validation-results")
    threads = torch.get_num_threads()
    try:
        approx_exp.run("quick", C.out_dir(str(root / "approx-quick"), "approx", "quick"), log=_quiet)
        theorem_exp.run("quick", C.out_dir(str(root / "theorem-quick"), "theorem", "quick"), log=_quiet)
        ttt_exp.run("quick", C.out_dir(str(root / "time-to-target-quick"), "time-to-target", "quick"), log=_quiet)
        pde_exp.run("quick", C.out_dir(str(root / "pde-quick"), "pde", "quick"), log=_quiet)
        gd_exp.run("quick", C.out_dir(str(root / "gd-quick"), "gd", "quick"), log=_quiet)
        second_order_exp.run("quick", C.out_dir(str(root / "second-order-quick"), "second-order", "quick"),
                             log=_quiet)
    finally:
        torch.set_num_threads(threads)  # the experiments run single-threaded; restore for other tests
    return root


# --------------------------------------------------------------------------- approx
def test_approx_quick_table_rows_columns_and_finite_numbers(results):
    out = results / "approx-quick"
    runs = C.read_csv(out / "runs.csv")
    prof = approx_exp.PROFILES["quick"]
    assert {(int(r["seed"]), r["method"]) for r in runs} == {(s, m) for s in range(prof["seeds"]) for m in METHODS}
    for r in runs:
        assert (r["dim"], r["width"], r["depth"]) == ("1", "200", "1")
        assert r["status"] == "completed"
        assert int(r["iterations"]) == prof["total"]  # every method gets the same budget
        for k in ("final_train_loss", "test_rel_l2", "seconds"):
            assert math.isfinite(float(r[k])) and float(r[k]) > 0, (k, r[k])
    # the summary's medians are the medians of runs.csv
    summary = C.read_csv(out / "summary.csv")
    for m in METHODS:
        for metric in ("final_train_loss", "test_rel_l2"):
            s = next(x for x in summary if x["method"] == m and x["metric"] == metric)
            vals = [float(r[metric]) for r in runs if r["method"] == m]
            assert int(s["n"]) == len(vals)
            assert float(s["median"]) == pytest.approx(np.median(vals), rel=1e-12)
            assert float(s["min"]) == min(vals) and float(s["max"]) == max(vals)
    # Table 1: one row per width x depth, one column per method; cells "median [min, max]"
    md = (out / "table1.md").read_text()
    tables = [t for t in md.split("####") if t.strip()]
    assert len(tables) == 2  # training loss, test error (d = 1 only)
    for table, metric in zip(tables, ("final_train_loss", "test_rel_l2")):
        lines = [ln for ln in table.splitlines() if ln.startswith("|")]
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        assert header == ["width x hidden layers", "Adam (s=1)", "HRTA 0.5->1", "HRTA 1->1.5", "HRTA 0.5->1 (plateau)"]
        assert len(lines) == 3 and lines[2].startswith("| 200 x 1 |")
        cells = [c.strip() for c in lines[2].strip("|").split("|")][1:]
        for cell, m in zip(cells, METHODS):
            med, lo, hi = map(float, re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cell).groups())
            s = next(x for x in summary if x["method"] == m and x["metric"] == metric)
            assert med == pytest.approx(float(s["median"]), rel=1e-2)
            assert lo <= med <= hi
    assert (out / "loss_d1_w200_L1.png").stat().st_size > 10_000


def test_approx_histories_follow_the_schedules(results):
    out = results / "approx-quick"
    prof = approx_exp.PROFILES["quick"]
    for r in C.read_csv(out / "runs.csv"):
        h = C.read_curve(approx_exp.history_path(out, r))
        it, s = h["iteration"].astype(int), h["s"]
        sw = [int(x) for x in r["switches"].split()]
        if r["method"] == "adam":
            assert sw == [] and np.all(s == 1.0)
        elif r["method"] in ("hrta_0.5", "hrta_1.5"):
            assert sw == [prof["first"] + 1]
            first, second = (0.5, 1.0) if r["method"] == "hrta_0.5" else (1.0, 1.5)
            assert np.all(s[it <= prof["first"]] == first) and np.all(s[it > prof["first"]] == second)
        else:  # plateau: switch no earlier than 2 windows, no later than the cap
            assert len(sw) == 1 and 2 * prof["window"] < sw[0] <= prof["cap"] + 1
            assert np.all(s[it < sw[0]] == 0.5) and np.all(s[it >= sw[0]] == 1.0)
        assert it[-1] == prof["total"]


def test_validation_runs_match_run_approx():
    """Same seed -> same points and initial network as hrta_pde.approx.run_approx (the API)."""
    from hrta_pde.approx import run_approx

    cfg = make_config(3, 40, 2, seed=7).replace(hrta="0.5:15,1:25", baseline="1:40")
    rep = run_approx(cfg).report
    mine = run_method(cfg, Method("h", "h", cfg.hrta), 10)
    base = run_method(cfg, Method("b", "b", cfg.baseline), 10)
    assert mine["final_train_loss"] == rep["runs"]["hrta"]["final_train_loss"]
    assert mine["test_rel_l2"] == rep["runs"]["hrta"]["test_rel_l2"]
    assert base["final_train_loss"] == rep["runs"]["baseline"]["final_train_loss"]


def test_plateau_method_has_the_full_budget():
    plateau = paper_methods(120, 30, 60, 10, threshold=0.5)[-1]
    r = run_method(make_config(1, 30, 1, seed=0), plateau, 1)
    assert r["iterations"] == 120 and len(r["switches"]) == 1
    assert 20 < r["switches"][0] <= 61
    assert r["history"]["iteration"] == list(range(1, 121))


# --------------------------------------------------------------------------- theorem
def _closed_form_h(X: np.ndarray, s: float) -> np.ndarray:
    """Independent H_s = Ka_s + Kw_s, K_s = s^2 K_1 + (1 - s) K_0 (arc-cosine kernels of ReLU)."""
    Xb = np.hstack([X, np.ones((len(X), 1))])
    K0 = Xb @ Xb.T
    nrm = np.linalg.norm(Xb, axis=1)
    cos = np.clip(K0 / np.outer(nrm, nrm), -1, 1)
    theta = np.arccos(cos)
    theta[np.diag_indices_from(theta)] = 0.0
    kw1 = K0 * (np.pi - theta) / (2 * np.pi)
    ka1 = np.outer(nrm, nrm) * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)
    H = s * s * (ka1 + kw1) + 2 * (1 - s) * K0
    return (H + H.T) / 2


def _closed_form_lambda_min(X: np.ndarray, s: float) -> float:
    return float(np.linalg.eigvalsh(_closed_form_h(X, s))[0])


def test_theorem_quick_matches_independent_closed_form(results):
    out = results / "theorem-quick"
    rows = C.read_csv(out / "theorem.csv")
    facts = C.read_csv(out / "facts.csv")
    grids = {1: np.linspace(0, 1, 100)[:, None],
             3: np.stack(np.meshgrid(*[np.linspace(0, 1, 5)] * 3, indexing="ij"), -1).reshape(-1, 3)}
    for d, X in grids.items():
        mine = [r for r in rows if r["d"] == str(d)]
        s = [float(r["s"]) for r in mine]
        assert s == theorem_exp.S_VALUES
        lam = [_closed_form_lambda_min(X, v) for v in s]
        got = [float(r["lambda_min_closed"]) for r in mine]
        np.testing.assert_allclose(got, lam, rtol=1e-7)
        f = next(x for x in facts if x["d"] == str(d) and x["column"] == "lambda_min_closed")
        assert (f["strictly_increasing"] == "True") == bool(np.all(np.diff(lam) > 0))
        assert f["strictly_increasing"] == "True"  # the theorem's claim, on the closed form
        # every empirical column's monotone flag agrees with its own numbers
        for col in (k for k in mine[0] if k.startswith("lambda_min_m")):
            vals = np.array([float(r[col]) for r in mine])
            fc = next(x for x in facts if x["d"] == str(d) and x["column"] == col)
            singular = bool(np.any(vals < theorem_exp.SINGULAR))
            assert (fc["numerically_singular"] == "True") == singular
            assert (fc["strictly_increasing"] == "True") == (not singular and bool(np.all(np.diff(vals) > 0)))
    assert (out / "theorem_d1.png").exists() and (out / "theorem_d3.png").exists()


def test_theorem_scaling_facts_agree_with_the_eigenvalue_table(results):
    """scaling.csv says lambda_min(H_s) = s^2 lambda_min(H_1); theorem.csv's own numbers must show it."""
    out = results / "theorem-quick"
    rows = C.read_csv(out / "theorem.csv")
    for r in C.read_csv(out / "scaling.csv"):
        d = int(r["d"])
        assert int(r["rank_K0"]) == d + 1 and int(r["points"]) == (100 if d == 1 else 125)
        assert float(r["component_in_range_K0"]) < 1e-3
        mine = {float(x["s"]): float(x["lambda_min_closed"]) for x in rows if x["d"] == str(d)}
        dev = max(abs(lam / (s * s * mine[1.0]) - 1) for s, lam in mine.items())
        np.testing.assert_allclose(float(r["max_rel_deviation_from_s2"]), dev, rtol=1e-3, atol=1e-12)
        assert dev < 1e-3


def test_identity_behind_the_s2_law():
    """H_s / s^2 = H_2 / 4 + (2 - s)^2 / (2 s^2) K_0 exactly (the report's explanation), with the package's closed form."""
    from hrta_pde.ntk import augment, gram_closed_form

    X = np.random.default_rng(0).uniform(size=(40, 2))
    K0 = augment(X) @ augment(X).T
    H2 = gram_closed_form(X, 2.0)["H"]
    lam = []
    for s in (0.25, 0.5, 1.0, 1.3, 1.75):
        Hs = gram_closed_form(X, s)["H"]
        np.testing.assert_allclose(Hs / s**2, H2 / 4 + (2 - s) ** 2 / (2 * s**2) * K0, atol=1e-12)
        lam.append(np.linalg.eigvalsh(Hs)[0] / s**2)
    assert np.all(np.diff(lam) <= 1e-12) and lam[-1] >= np.linalg.eigvalsh(H2)[0] / 4 - 1e-12


def test_scaling_facts_detect_a_component_in_the_linear_range():
    """On 3 points in 1-D (n = d + 2) the check must not report a pure s^2 law by construction."""
    f = theorem_exp.scaling_facts(np.array([[0.0], [0.5], [1.0]]), [0.5, 1.0, 2.0])
    assert f["rank_K0"] == 2 and f["points"] == 3
    lam = {s: np.linalg.eigvalsh(_closed_form_h(np.array([[0.0], [0.5], [1.0]]), s))[0] for s in (0.5, 1.0, 2.0)}
    expect = max(abs(lam[s] / (s * s * lam[1.0]) - 1) for s in lam)
    np.testing.assert_allclose(f["max_rel_deviation_from_s2"], expect, rtol=1e-9, atol=1e-14)


# --------------------------------------------------------------------------- time to target
def test_time_to_target_quick_consistent_with_histories(results):
    out = results / "time-to-target-quick"
    prof = ttt_exp.PROFILES["quick"]
    rows = C.read_csv(out / "time_to_target.csv")
    assert {(int(r["seed"]), r["method"]) for r in rows} == {(s, m) for s in range(prof["seeds"]) for m in METHODS}
    approx_runs = C.read_csv(results / "approx-quick" / "runs.csv")
    for r in rows:
        seed, method = int(r["seed"]), r["method"]
        curve = ttt_exp.read_curve(out, seed, method)
        adam = ttt_exp.read_curve(out, seed, "adam")
        target = float(r["target_loss"])
        assert target == adam["loss"][-1]  # the target is Adam's final loss of the same seed
        np.testing.assert_array_equal(curve["updates"], np.arange(prof["total"] + 1))
        hit = np.flatnonzero(curve["loss"] <= target)
        if r["reached"] == "True":
            k = int(hit[0])
            assert float(r["steps"]) == k and float(r["seconds"]) == curve["seconds"][k]
        else:
            assert hit.size == 0 and math.isinf(float(r["steps"]))
        if method == "adam":
            assert r["reached"] == "True" and float(r["steps"]) <= prof["total"]
        # the same setting in the approx quick profile: identical deterministic run, so its history
        # (loss at iteration i = after i - 1 updates) is this curve, and the final losses agree
        a = next(x for x in approx_runs if int(x["seed"]) == seed and x["method"] == method)
        assert float(a["final_train_loss"]) == curve["loss"][-1] == float(r["final_train_loss"])
        h = C.read_curve(approx_exp.history_path(results / "approx-quick", a))
        np.testing.assert_array_equal(h["loss"], curve["loss"][h["iteration"].astype(int) - 1])
    summary = C.read_csv(out / "summary.csv")
    for s in summary:
        mine = [float(r["steps"]) for r in rows if r["method"] == s["method"]]
        assert float(s["median_steps"]) == np.median(mine)
        assert int(s["reached"]) == sum(math.isfinite(v) for v in mine)


# --------------------------------------------------------------------------- pde
def test_pde_quick_same_initial_network_and_finite_errors(results):
    out = results / "pde-quick"
    runs = C.read_csv(out / "runs.csv")
    assert {r["loss"] for r in runs if r["part"] == "losses"} == {"ritz", "sobolev", "pinn"}
    assert all(r["status"] == "completed" and 0 < float(r["rel_l2"]) < 10 for r in runs)
    same = C.read_csv(out / "same_init.csv")
    assert same and all(r["same_initial_network"] == "True" for r in same)
    methods = pde_exp.PROFILES["quick"]["losses"]["methods"]
    assert {r["method"] for r in runs if r["part"] == "losses"} == set(methods)


def test_pde_resume_keeps_completed_runs_and_retrains_a_missing_one(results, tmp_path):
    """--resume: completed rows are kept as they are; a row missing from runs.csv is trained again
    and, the runs being deterministic, comes out the same."""
    import shutil

    out = tmp_path / "pde-quick"
    shutil.copytree(results / "pde-quick", out)
    rows = C.read_csv(out / "runs.csv")
    dropped = next(r for r in rows if r["part"] == "losses" and r["loss"] == "sobolev" and r["method"] == "hrta_1.5")
    C.write_csv(out / "runs.csv", [r for r in rows if r is not dropped], list(rows[0].keys()))
    messages = []
    threads = torch.get_num_threads()
    try:
        pde_exp.run("quick", out, resume=True, log=messages.append)
    finally:
        torch.set_num_threads(threads)
    assert f"({len(rows) - 1} already done)" in messages[0]
    again = C.read_csv(out / "runs.csv")
    assert len(again) == len(rows)
    key = ("part", "problem", "loss", "method", "seed")
    by_key = {tuple(r[k] for k in key): r for r in again}
    for r in rows:
        new = by_key[tuple(r[k] for k in key)]
        for m in ("rel_l2", "rel_h1_semi", "max_error", "final_loss"):
            assert float(new[m]) == pytest.approx(float(r[m]), rel=1e-9), (r["method"], m)
        assert new["init_hash"] == r["init_hash"]
    assert C.read_json(out / "manifest.json")["runs_kept_from_earlier_call"] == len(rows) - 1


# --------------------------------------------------------------------------- report
def test_report_from_quick_results_contains_the_tables(results, tmp_path):
    output = tmp_path / "REPORT.md"
    text = report.build_report(results, "quick", output)
    for exp, name in (("approx-quick", "table1.md"), ("theorem-quick", "theorem.md"),
                      ("time-to-target-quick", "time_to_target.md"), ("pde-quick", "pde.md"), ("gd-quick", "gd.md"),
                      ("second-order-quick", "second_order.md")):
        assert (results / exp / name).read_text().strip() in text
    # statements generated from the numbers
    runs = C.read_csv(results / "approx-quick" / "summary.csv")
    med = {(r["method"], r["metric"]): float(r["median"]) for r in runs}
    k = int(med[("hrta_0.5", "final_train_loss")] < med[("adam", "final_train_loss")])
    assert f"HRTA 0.5->1 had a lower median final training loss than Adam in {k} of 1 settings" in text
    assert "lambda_min increases strictly with s" in text
    # the verdicts: one word per claim, from the same counts
    verdicts = text.split("## Where HRTA helps and where it does not", 1)[1].split("## Summary", 1)[0]
    ratio = med[("hrta_0.5", "final_train_loss")] / med[("adam", "final_train_loss")]
    word = "does not help" if k == 0 else ("helps slightly" if ratio > 0.9 else "helps")
    assert f"final training loss (1 settings, " in verdicts
    assert f"HRTA 0.5->1 **{word}** -- lower than Adam in {k} of 1 settings" in verdicts
    assert "Theorem 3.1 (lambda_min of the Gram matrix H_s increases with s): **confirmed**" in verdicts
    assert verdicts.count("- ") >= 12
    assert ("Gradient descent (the theorem's setting), d = 1, width 200, one learning rate for all methods (the "
            "paper's protocol): HRTA 1->1.5 **") in verdicts
    assert "each stage at 0.75 of its own stability limit: HRTA 1->1.5, best lr **" in verdicts
    assert "Why the exponent is 2" in text
    assert "validation/run.py approx" not in text or "Command" in text
    assert "torch" in text and "cores" in text
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (output.parent / link).resolve().exists(), link
    assert text.count("![") >= 6
    assert "## 6. Does HRTA help a second-order optimizer?" in text
    for v in C.read_csv(results / "second-order-quick" / "verdicts.csv"):
        opt, label = second_order_exp.OPT_LABELS[v["optimizer"]], second_order_exp.LABELS[v["method"]]
        assert (f"Second-order optimizer {opt} (1 Poisson problem/loss pairs x 1 seeds, phi = tanh): {label} "
                f"**{v['verdict']}** -- final relative L2 error lower than {opt} at s = 1 with the same iterations in "
                f"{v['wins']} of {v['n']} seed-paired runs") in verdicts


# --------------------------------------------------------------------------- gradient descent
def test_gd_learning_rates_come_from_the_independent_closed_form():
    X = np.linspace(0, 1, 100)[:, None]
    lmax = {s: np.linalg.eigvalsh(_closed_form_h(X, s))[-1] for s in (0.5, 1.0, 1.5)}
    rates = gd_exp.learning_rates(1)
    np.testing.assert_allclose(rates["common"], 100 / max(lmax.values()), rtol=1e-10)
    assert max(lmax, key=lmax.get) == 0.5  # lambda_max(H_0.5) is the largest: it sets the common rate


def test_gd_best_schedule_uses_the_empirical_gram_matrix_per_stage():
    from hrta_pde.networks import homotopy_activations, set_s
    from hrta_pde.ntk import empirical_gram_module
    from validation.training import build, make_config

    x, _, _, _, net = build(make_config(1, 30, 1, 0))
    sched = gd_exp.best_schedule("1:10,1.5:20", net, x)
    parts = [p.split(":") for p in sched.split(",")]
    assert [(p[0], p[1]) for p in parts] == [("1", "10"), ("1.5", "20")]
    assert float(homotopy_activations(net)[0].s) == 1.0  # left at its s
    for (s_val, _, lr) in parts:
        set_s(net, float(s_val))
        lam = np.linalg.eigvalsh(empirical_gram_module(net, x).detach().numpy())[-1]
        np.testing.assert_allclose(float(lr), gd_exp.BEST_FRACTION * 2 * 100 / lam, rtol=1e-5)


def test_gd_task_is_plain_gradient_descent():
    """The recorded losses equal a hand-written loop p <- p - lr * grad from the same network."""
    task = {"dim": 1, "seed": 3, "method": "hrta_1.5", "schedule": "1:10,1.5:10", "width": 40, "lr": 0.5,
            "protocol": "common"}
    r = gd_exp.task_fn(task)
    from hrta_pde.networks import set_s
    from validation.training import build, make_config

    x, y, _, _, net = build(make_config(1, 40, 1, 3, lr=0.5))
    losses = []
    for it in range(20):
        set_s(net, 1.0 if it < 10 else 1.5)
        loss = 0.5 * ((net(x) - y) ** 2).mean()
        losses.append(float(loss.detach()))
        grads = torch.autograd.grad(loss, list(net.parameters()))
        with torch.no_grad():
            for p, g in zip(net.parameters(), grads):
                p -= 0.5 * g
    np.testing.assert_allclose(r["history"]["loss"], [losses[9], losses[19]], rtol=1e-10)
    with torch.no_grad():
        np.testing.assert_allclose(r["final_train_loss"], float(0.5 * ((net(x) - y) ** 2).mean()), rtol=1e-10)
    assert r["switches"] == [11]  # the first iteration of stage 2 (1-based)


def test_gd_quick_tables_agree_with_runs_and_curves(results):
    out = results / "gd-quick"
    prof = gd_exp.PROFILES["quick"]
    runs = C.read_csv(out / "runs.csv")
    assert {(r["method"], int(r["seed"])) for r in runs} == {(m, k) for m in gd_exp.LABELS for k in range(prof["seeds"])}
    for r in runs:
        assert r["status"] == "completed" and int(r["iterations"]) == prof["total"]
        c = gd_exp.read_curve(out, 1, int(r["seed"]), r["method"])
        assert c["updates"][-1] == prof["total"] and c["loss"][-1] == pytest.approx(float(r["final_train_loss"]))
        hit = np.flatnonzero(c["loss"] <= float(r["target_loss"]))
        assert float(r["steps_to_target"]) == (c["updates"][hit[0]] if hit.size else math.inf)
        if r["method"] in ("gd", "gd_best"):  # a baseline reaches its own final loss at the end at the latest
            assert float(r["steps_to_target"]) <= prof["total"]
    summary = C.read_csv(out / "summary.csv")
    for s in summary:
        mine = [r for r in runs if r["method"] == s["method"]]
        assert float(s["median_final_train_loss"]) == pytest.approx(np.median([float(r["final_train_loss"]) for r in mine]))
        if s["method"] not in gd_exp.BASELINE:
            assert s["baseline"] == ""
            continue
        assert s["baseline"] == gd_exp.BASELINE[s["method"]]
        base = {r["seed"]: float(r["final_train_loss"]) for r in runs if r["method"] == s["baseline"]}
        assert int(s["lower_than_baseline"]) == sum(float(r["final_train_loss"]) < base[r["seed"]] for r in mine)
        for r in mine:  # the target is the final loss of the same protocol's baseline, same seed
            assert float(r["target_loss"]) == pytest.approx(base[r["seed"]])
    kernel = C.read_csv(out / "kernel.csv")
    lam = [float(k["lambda_min"]) for k in kernel]
    np.testing.assert_allclose(np.array(lam) / np.array([0.25, 1, 2.25]), lam[1], rtol=1e-6)  # the s^2 law
    assert (out / "gd_d1.png").exists()


def test_verdict_thresholds():
    assert report._verdict(2, 3) == "helps" and report._verdict(6, 9) == "helps"
    assert report._verdict(1, 3) == "does not help" and report._verdict(0, 1) == "does not help"
    assert report._verdict(4, 9) == "mixed" and report._verdict(0, 0) == "not measured"
    assert report._verdict(4, 5, 0.95) == "helps slightly" and report._verdict(4, 5, 0.5) == "helps"
    assert report._verdict(1, 5, 0.5) == "does not help"


def test_recorded_commands_are_shown_with_a_portable_interpreter():
    assert C.portable_command("/tmp/venv/bin/python validation/run.py pde --profile full") == \
        "python validation/run.py pde --profile full"
    inside = str(C.ROOT / ".venv" / "bin" / "python")
    assert C.portable_command(f"{inside} validation/run.py report") == ".venv/bin/python validation/run.py report"
    assert C.portable_command("sh validation/full_profile.sh") == "sh validation/full_profile.sh"


def test_report_cli_marks_missing_experiments(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "validation" / "run.py"), "report", "--profile", "quick",
                           "--results", str(tmp_path / "none"), "--output", str(tmp_path / "R.md")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "R.md").read_text()
    assert text.count("Not run") == 6


# --------------------------------------------------------------------------- second-order optimizers
def test_second_order_quick_writes_its_files_from_one_initial_network(results):
    out = results / "second-order-quick"
    prof = second_order_exp.PROFILES["quick"]
    for name in ("runs.csv", "summary.csv", "same_init.csv", "verdicts.csv", "second_order.md", "manifest.json"):
        assert (out / name).exists(), name
    assert (out / "second_order.png").stat().st_size > 10_000
    assert C.read_json(out / "manifest.json")["status"] == "completed"
    runs = C.read_csv(out / "runs.csv")
    expected = {(opt, m) for opt in second_order_exp.OPTIMIZERS for m in second_order_exp.METHODS}
    assert {(r["optimizer"], r["method"]) for r in runs} == expected and len(runs) == len(expected)
    for r in runs:
        assert r["status"] == "completed" and 0 < float(r["rel_l2"]) < 10
        n = prof["iterations"][r["optimizer"]]
        assert r["schedule"] == second_order_exp.schedules(r["optimizer"], n)[r["method"]]
        assert all(st.endswith("@" + second_order_exp.OPT_SPEC[r["optimizer"]][0]) for st in r["schedule"].split(","))
        assert int(r["planned_iterations"]) == n and 0 < int(r["iterations"]) <= n
        per_stage = [int(x) for x in r["stage_iterations"].split()]
        assert sum(per_stage) == int(r["iterations"])  # iterations actually run, per stage
        if r["optimizer"] == "lbfgs":  # L-BFGS never stops early here: the full budget
            assert int(r["iterations"]) == n
        loss = C.read_curve(out / "histories" / f"{second_order_exp.run_stem(r)}_loss.csv.gz")
        assert int(loss["iteration"][-1]) == int(r["iterations"])
    # same initial network (and points) for every optimizer and schedule of the seed
    same = C.read_csv(out / "same_init.csv")
    assert len(same) == 1 and same[0]["same_initial_network"] == "True" and int(same[0]["runs"]) == len(runs)
    assert len({r["init_hash"] for r in runs}) == 1
    summary = C.read_csv(out / "summary.csv")
    for s in summary:
        vals = [float(r[s["metric"]]) for r in runs if (r["optimizer"], r["method"]) == (s["optimizer"], s["method"])]
        assert float(s["median"]) == pytest.approx(np.median(vals), rel=1e-12)


def test_second_order_verdict_counts_come_from_the_rows(results):
    runs = C.read_csv(results / "second-order-quick" / "runs.csv")
    written = C.read_csv(results / "second-order-quick" / "verdicts.csv")
    assert {(v["optimizer"], v["method"]) for v in written} == {(o, m) for o in second_order_exp.OPTIMIZERS
                                                               for m in second_order_exp.VARIANTS}
    for v in written:
        base = next(float(r["rel_l2"]) for r in runs if (r["optimizer"], r["method"]) == (v["optimizer"], "fixed"))
        mine = next(float(r["rel_l2"]) for r in runs if (r["optimizer"], r["method"]) == (v["optimizer"], v["method"]))
        assert (int(v["wins"]), int(v["n"])) == (int(mine < base), 1)
        assert float(v["median_ratio_rel_l2"]) == pytest.approx(mine / base)

    # synthetic rows: HRTA 0.5->1 lower in 4 of 5 seeds by half, HRTA 1->1.5 higher in every seed
    def row(method, seed, err, hash_="h"):
        return {"problem": "p", "loss": "pinn", "optimizer": "engd", "method": method, "seed": seed, "rel_l2": err,
                "seconds": 1.0, "iterations": 10, "status": "completed", "init_hash": hash_}

    rows = []
    for seed in range(5):
        rows += [row("fixed", seed, 1.0), row("hrta_0.5", seed, 0.5 if seed else 2.0), row("hrta_1.5", seed, 1.2)]
    got = {v["method"]: v for v in second_order_exp.verdicts(rows)}
    assert (got["hrta_0.5"]["wins"], got["hrta_0.5"]["n"], got["hrta_0.5"]["verdict"]) == (4, 5, "helps")
    assert got["hrta_0.5"]["median_ratio_rel_l2"] == pytest.approx(0.5)
    assert (got["hrta_1.5"]["wins"], got["hrta_1.5"]["verdict"]) == (0, "does not help")
    # the comparison inverted (HRTA and baseline swapped) inverts the verdict
    swapped = [{**r, "method": {"fixed": "hrta_0.5", "hrta_0.5": "fixed"}.get(r["method"], r["method"])} for r in rows]
    inv = {v["method"]: v for v in second_order_exp.verdicts(swapped)}["hrta_0.5"]
    assert (inv["wins"], inv["verdict"]) == (1, "does not help") and inv["median_ratio_rel_l2"] == pytest.approx(2.0)
    # a failed run is left out of the pairing; a different initial network is flagged
    rows[1] = {**rows[1], "status": "nonfinite"}
    assert {v["method"]: v for v in second_order_exp.verdicts(rows)}["hrta_0.5"]["n"] == 4
    rows[0] = {**rows[0], "init_hash": "other"}
    flags = {r["seed"]: r["same_initial_network"] for r in C.same_init_groups(rows, second_order_exp.SAME_KEYS)}
    assert flags == {0: False, 1: True, 2: True, 3: True, 4: True}
