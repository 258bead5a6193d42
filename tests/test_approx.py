"""End-to-end function approximation and the CLI's handling of bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from hrta_pde.approx import ApproxConfig, grid_side, run_approx, sample_points, write_approx_config, write_approx_run
from hrta_pde.cli import main
from hrta_pde.history import History


def test_small_approx_run_reaches_error_bound_and_writes_run_folder(tmp_path):
    cfg = ApproxConfig.from_dict(dict(width=200, hrta="0.5:500,1:1500", baseline="1:2000", lr=1e-2,
                                      test_points=500, record_every=10))
    run = tmp_path / "run"
    run.mkdir()
    write_approx_config(run, cfg)
    result = run_approx(cfg, checkpoint_dir=run)
    write_approx_run(result, run)
    report = result.report
    for label in ("hrta", "baseline"):
        r = report["runs"][label]
        assert r["status"] == "completed" and r["iterations"] == 2000
        assert r["test_rel_l2"] < 0.05, (label, r["test_rel_l2"])
    assert report["runs"]["hrta"]["stage_switches"] == [501]
    for name in ("history_hrta.csv", "history_baseline.csv", "metrics.json", "config.json", "loss.png"):
        assert (run / name).stat().st_size > 0
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hist = History.read_csv(run / "history_hrta.csv")
    # rows every 10: the last s = 0.5 row is iteration 500, the first s = 1 row 510, where the
    # switch read back from the file is (the run itself switched at 501)
    assert hist.column("iteration")[49:51] == [500, 510] and hist.column("s")[49:51] == [0.5, 1.0]
    assert hist.switches == [510]
    assert hist.column("s")[-1] == 1.0 and hist.column("iteration")[-1] == 2000
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["runs"]["hrta"]["final_train_loss"] == pytest.approx(report["runs"]["hrta"]["final_train_loss"])


def test_both_methods_start_from_the_same_network(tmp_path):
    cfg = ApproxConfig.from_dict(dict(width=50, hrta="1:1", baseline="1:1", lr=1e-3, test_points=10,
                                      record_every=1))
    report = run_approx(cfg).report
    h, b = report["runs"]["hrta"], report["runs"]["baseline"]
    assert h["final_train_loss"] == b["final_train_loss"]  # same init, same points, same step


def test_grid_points_are_the_papers():
    cfg = ApproxConfig.from_dict(dict(dim=3, points=125))
    x = sample_points(cfg, 125, "grid", torch.Generator(), torch.float64)
    assert x.shape == (125, 3)
    assert sorted(set(np.round(x[:, 0].numpy(), 12))) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert grid_side(100, 1) == 100 and grid_side(125, 3) == 5
    with pytest.raises(ValueError, match="k\\^2"):
        grid_side(50, 2)


def run_cli(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "hrta_pde.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("args,needle", [
    (["--target", "sin(2*pi*x"], "could not parse"),
    (["--target", "q*x"], "unknown symbol 'q'"),
    (["--target", "x3", "--dim", "2"], "2-dimensional"),
    (["--hrta", "2.5:100"], "0 <= s <= 2"),
    (["--hrta", ""], "empty"),
    (["--baseline", "1:0"], "positive"),
    (["--width", "0"], "positive"),
    (["--points", "50", "--dim", "2"], "grid size"),
    (["--target", "__import__('os').system('touch PWNED')"], "unsupported syntax"),
])
def test_cli_bad_input_is_one_line_exit_2(args, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["approx", *args, "--out", str(tmp_path / "r"), "--quiet"])
    except SystemExit as exc:  # argparse's own checks
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "r").exists()


def test_cli_subprocess_bad_input_has_no_traceback(tmp_path):
    proc = run_cli("approx", "--target", "foo(x)", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "unknown function 'foo'" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_cli_small_run(tmp_path):
    proc = run_cli("approx", "--width", "20", "--hrta", "0.5:20,1:20", "--baseline", "1:40",
                   "--test-points", "50", "--out", str(tmp_path / "r"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "test rel L2" in proc.stdout and "hrta" in proc.stdout and "metrics.json" in proc.stdout


def test_nonfinite_loss_in_cli_is_reported_and_outputs_are_written(tmp_path, capsys):
    code = main(["approx", "--dtype", "float32", "--target", "exp(100*x)", "--width", "10",
                 "--hrta", "0.5:5,1:5", "--baseline", "1:10", "--test-points", "20",
                 "--out", str(tmp_path / "r"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "the loss became inf at iteration 1 (stage 1, s=0.5" in out
    for name in ("history_hrta.csv", "metrics.json", "model_hrta.pt", "loss.png"):
        assert (tmp_path / "r" / name).exists()
    assert History.read_csv(tmp_path / "r" / "history_hrta.csv").column("iteration") == [1]
