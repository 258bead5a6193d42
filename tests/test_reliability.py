"""Issue 11: untrusted run folders, inputs that hang, tracebacks, lost work.

Each case reproduces an input named in the issue and checks the exit status, the one-line
message, that no traceback is printed and that nothing else happens (no payload marker file, no
run folder).
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hrta_pde.io.checkpoint import load_checkpoint, read_plain, save_checkpoint
from hrta_pde.cli import main
from hrta_pde.history import History

SMALL = ["--schedule", "1:20", "--width", "8", "--depth", "1", "--points", "50", "--boundary-points", "8",
         "--test-points", "100", "--eval-every", "10", "--device", "cpu", "--quiet"]
HRTA = [str(Path(sys.executable).parent / "hrta-pde")]  # the installed console script


def run_cli(args, capsys):
    """``main(args)``: (exit status, stderr); the error must be at most one line, no traceback."""
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip()


def one_line(code, err, status, *fragments):
    assert code == status, err
    assert len(err.splitlines()) == 1 and err.startswith("hrta-pde: error: "), err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A small completed solve run folder (shared; tests copy what they change)."""
    out = tmp_path_factory.mktemp("runs") / "done"
    assert main(["solve", "poisson_1d", *SMALL, "--out", str(out)]) == 0
    return out


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


# ------------------------------------------------------------------ 1. run folders do not run code

class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("command", ["resume", "export"])
def test_checkpoint_with_a_pickled_payload_is_refused_and_not_run(command, tmp_path, capsys):
    marker = tmp_path / "payload_ran"
    run = tmp_path / "shared_run"
    run.mkdir()
    torch.save({"format": "hrta_pde-checkpoint-2", "net": Payload(marker)}, run / "checkpoint.pt")
    args = ["solve", "--resume", str(run)] if command == "resume" else ["export", str(run)]
    code, err = run_cli(args, capsys)
    one_line(code, err, 2, "needs more than tensors and plain data", "posix.system", "refused")
    assert not marker.exists()


def test_checkpoints_hold_only_plain_data(finished_run):
    data = read_plain(finished_run / "checkpoint.pt")  # weights_only=True: would raise otherwise
    assert {"net", "optimizer", "position", "history", "rng", "config", "problem", "points"} <= set(data)
    assert isinstance(data["rng"]["numpy"]["keys"], torch.Tensor)
    assert set(read_plain(finished_run / "model.pt")) == {"state_dict", "config"}


@pytest.mark.parametrize("key", ["net", "position", "problem", "rng"])
def test_checkpoint_missing_an_entry_is_one_line(key, finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "r")
    data = read_plain(run / "checkpoint.pt")
    del data[key]
    save_checkpoint(run / "checkpoint.pt", data)
    code, err = run_cli(["solve", "--resume", str(run)], capsys)
    one_line(code, err, 2, f"has no {key!r}", "damaged")


@pytest.mark.parametrize("outer,inner", [("rng", "numpy"), ("points", "x"), ("position", "iteration")])
def test_checkpoint_missing_a_nested_entry_is_one_line(outer, inner, finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "r")
    data = read_plain(run / "checkpoint.pt")
    del data[outer][inner]
    save_checkpoint(run / "checkpoint.pt", data)
    code, err = run_cli(["solve", "--resume", str(run)], capsys)
    one_line(code, err, 2, f"has no '{outer}.{inner}'", "damaged")


def test_checkpoint_of_another_width_is_one_line(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "r")
    data = read_plain(run / "checkpoint.pt")
    data["config"]["width"] = 9
    save_checkpoint(run / "checkpoint.pt", data)
    for args in (["solve", "--resume", str(run)], ["export", str(run)]):
        code, err = run_cli(args, capsys)
        one_line(code, err, 2, "the saved network does not match its settings")


# ------------------------------------------------------------------ 2./3. inputs that hung or crashed

def problem_file(tmp_path, u="sin(pi*x)", solver="", boundary="dirichlet"):
    path = tmp_path / "p.toml"
    path.write_text(f'name = "p"\n[domain]\ntype = "interval"\nxmin = 0.0\nxmax = 1.0\n'
                    f'[solution]\nu = "{u}"\n[boundary]\ntype = "{boundary}"\n'
                    + (f"[solver]\n{solver}\n" if solver else ""))
    return str(path)


@pytest.mark.parametrize("u,fragment", [
    ("(10^400)^(10^400)*x", "more than 400 digits, the limit"),
    ("sin(exp(exp(exp(5))))*x", "not finite in double precision"),
    ("sin(" * 100 + "x" + ")" * 100, "nests more than 10 function calls"),
    ("sin(" * 150 + "x" + ")" * 150, "nests more than 10 function calls"),
    ("^".join(["x"] * 40), "nests more than 10 function calls"),
], ids=["power", "sin_exp", "sin100", "sin150", "tower40"])
def test_problem_file_expressions_are_refused_within_seconds(u, fragment, tmp_path, capsys):
    t0 = time.perf_counter()
    code, err = run_cli(["solve", problem_file(tmp_path, u), *SMALL, "--out", str(tmp_path / "o")], capsys)
    assert time.perf_counter() - t0 < 10
    one_line(code, err, 2, fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("solver,fragment", [
    ('beta = "x"', "beta='x' must be a number"),
    ('seed = "x"', "seed='x' must be an integer"),
    ("seed = 1e20", "seed=1e+20 must be an integer, not a float"),
    ("seed = 9223372036854775807", "must be an integer from 0 to 2^62"),
    ('reset_optimizer = "no"', "reset_optimizer='no' must be true or false"),
    ('hard_bc = "false"', "hard_bc='false' must be true or false"),
    ("width = 8.5", "width=8.5 must be an integer"),
    ('lr = true', "lr=True must be a number"),
])
def test_solver_table_types_are_checked(solver, fragment, tmp_path, capsys):
    code, err = run_cli(["solve", problem_file(tmp_path, solver=solver), "--quiet", "--out",
                         str(tmp_path / "o")], capsys)
    one_line(code, err, 2, fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,fragment", [
    (["solve", "poisson_1d", "--width", "1000000", "--depth", "3"], "lower --width or --depth"),
    (["solve", "poisson_1d", "--points", "1e9"], "lower --points"),
    (["solve", "poisson_1d", "--test-points", "1e9"], "lower --test-points"),
    (["compare", "poisson_1d", "--width", "1000000", "--depth", "3"], "lower --width or --depth"),
    (["approx", "--width", "1e10"], "lower --"),
    (["ntk", "--widths", "1e11"], "lower --widths"),
])
def test_sizes_beyond_memory_are_refused_before_allocating(args, fragment, tmp_path, capsys):
    t0 = time.perf_counter()
    code, err = run_cli([*args, "--out", str(tmp_path / "o")], capsys)
    assert time.perf_counter() - t0 < 10
    one_line(code, err, 2, "this run needs about", "of memory", "available", fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,fragment", [
    (["solve", "poisson_1d", "--seed", "1e20"], "invalid int value: '1e20'"),
    (["solve", "poisson_1d", "--seed", str(2**64)], "must be an integer from 0 to 2^62"),
    (["approx", "--seed", str(2**64)], "must be an integer from 0 to 2^62"),
    (["ntk", "--seed", str(2**64)], "must be an integer from 0 to 2^62"),
])
def test_seed_overflow_is_one_line(args, fragment, tmp_path, capsys):
    code, err = run_cli([*args, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and fragment in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", [["solve", "poisson_1d"], ["approx"]])
def test_depth_100000_is_refused_at_once(command, tmp_path, capsys):
    t0 = time.perf_counter()
    code, err = run_cli([*command, "--depth", "100000", "--out", str(tmp_path / "o")], capsys)
    assert time.perf_counter() - t0 < 10
    one_line(code, err, 2, "depth=100000 is above the limit of 100 hidden layers")


def test_full_disk_while_writing_a_plot_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    import hrta_pde.poisson.plotting

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o" / "loss.png"))

    monkeypatch.setattr(hrta_pde.poisson.plotting, "plot_loss_histories", full)
    code, err = run_cli(["solve", "poisson_1d", *SMALL, "--out", str(tmp_path / "o")], capsys)
    one_line(code, err, 1, "cannot write", "loss.png", "No space left on device", "--out")


def test_full_disk_while_writing_a_checkpoint_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    def full(obj, fh, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    code, err = run_cli(["solve", "poisson_1d", *SMALL, "--out", str(tmp_path / "o")], capsys)
    one_line(code, err, 1, "No space left on device")
    assert not list((tmp_path / "o").glob(".*.tmp"))


def test_unexpected_error_is_one_line_pointing_to_debug(tmp_path, capsys, monkeypatch):
    import hrta_pde.poisson.runfolder

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(hrta_pde.poisson.runfolder, "format_metrics", broken)
    code, err = run_cli(["solve", "poisson_1d", *SMALL, "--out", str(tmp_path / "o")], capsys)
    one_line(code, err, 1, "internal error: KeyError", "--debug")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(how, tmp_path):
    env = dict(os.environ, HRTA_PDE_DEBUG="1" if how == "env" else "0")
    args = HRTA + ["solve", "no_such_problem"] + (["--debug"] if how == "flag" else [])
    plain = subprocess.run(HRTA + ["solve", "no_such_problem"], capture_output=True, text=True,
                           env=dict(os.environ, HRTA_PDE_DEBUG="0"), cwd=tmp_path)
    debug = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ProblemError" in debug.stderr


# ------------------------------------------------------------------ 5. --out does not overwrite

def test_out_refuses_a_folder_with_other_files_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "history.csv").write_text("my own data\n")
    code, err = run_cli(["solve", "poisson_1d", *SMALL, "--out", str(out)], capsys)
    one_line(code, err, 2, "is not empty", "not a run folder of hrta-pde", "--overwrite")
    assert (out / "history.csv").read_text() == "my own data\n"
    assert main(["solve", "poisson_1d", *SMALL, "--out", str(out), "--overwrite"]) == 0
    assert (out / "history.csv").read_text().startswith("iteration,")


def test_out_accepts_the_same_run_again_and_refuses_other_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["solve", "poisson_1d", *SMALL, "--out", str(out)]) == 0
    assert main(["solve", "poisson_1d", *SMALL, "--out", str(out)]) == 0  # the same run again
    capsys.readouterr()
    code, err = run_cli(["solve", "poisson_1d", *SMALL, "--lr", "0.01", "--out", str(out)], capsys)
    one_line(code, err, 2, "holds a run of other settings or another problem")
    code, err = run_cli(["approx", "--out", str(out)], capsys)
    one_line(code, err, 2, "holds a run of other settings or another problem")


# ------------------------------------------------------------------ 6. SIGTERM, resumable approx and compare

def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(HRTA + ["solve", "poisson_1d", "--schedule", "1:200000", "--width", "16", "--depth",
                                    "1", "--points", "100", "--out", str(run), "--quiet", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 90
    while not (run / "problem.toml").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "resume with: hrta-pde solve --resume" in err
    assert 0 < load_checkpoint(run)["position"]["iteration"] < 200000


@pytest.fixture
def sigterm_at(monkeypatch):
    """``sigterm_at(n)``: the n-th history row recorded in this process sends SIGTERM to itself.

    A real signal, at a reproducible point: the handler sets the stop flag, and the training loop
    stops after that very iteration.
    """
    def arm(n):
        original = History.append
        calls = {"n": 0}

        def append(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n:
                os.kill(os.getpid(), signal.SIGTERM)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(History, "append", append)
        return monkeypatch.undo

    return arm


def losses(path):
    return History.read_csv(path).column("loss")


def same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_solve_resumed_after_sigterm_equals_the_uninterrupted_run(tmp_path, sigterm_at, capsys):
    args = ["solve", "poisson_1d", *SMALL, "--schedule", "0.5:60,1:<=200,1.5:40", "--eval-every", "25"]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    undo = sigterm_at(9)  # iteration 90: in stage 2
    assert main([*args, "--out", str(tmp_path / "part")]) == 143
    undo()
    assert "resume with: hrta-pde solve --resume" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "part")["position"]["iteration"] == 90
    (tmp_path / "part" / ".checkpoint.pt.tmp").write_bytes(b"half written")  # a killed write
    assert main(["solve", "--resume", str(tmp_path / "part")]) == 0
    assert not (tmp_path / "part" / ".checkpoint.pt.tmp").exists()
    full, part = read_plain(tmp_path / "full" / "checkpoint.pt"), read_plain(tmp_path / "part" / "checkpoint.pt")
    same_tensors(full["net"], part["net"])
    assert full["position"]["iteration"] == part["position"]["iteration"]
    assert losses(tmp_path / "full" / "history.csv") == losses(tmp_path / "part" / "history.csv")


APPROX = ["approx", "--width", "20", "--points", "30", "--test-points", "50", "--hrta", "0.5:100,1:100",
          "--baseline", "1:200", "--device", "cpu", "--quiet"]


def test_approx_resumed_after_sigterm_equals_the_uninterrupted_run(tmp_path, sigterm_at, capsys):
    assert main([*APPROX, "--out", str(tmp_path / "full")]) == 0
    undo = sigterm_at(20 + 1 + 13)  # the baseline's 13th row: hrta is done, the baseline half way
    assert main([*APPROX, "--out", str(tmp_path / "part")]) == 143
    undo()
    assert "resume with: hrta-pde approx --resume" in capsys.readouterr().err
    part = tmp_path / "part"
    assert (part / "config.json").exists() and (part / "checkpoint_baseline.pt").exists()
    assert not (part / "metrics.json").exists()
    code, err = run_cli(["approx", "--resume", str(part), "--width", "30"], capsys)
    one_line(code, err, 2, "drop --width")
    assert main(["approx", "--resume", str(part)]) == 0
    for label in ("hrta", "baseline"):
        a, b = read_plain(tmp_path / "full" / f"model_{label}.pt"), read_plain(part / f"model_{label}.pt")
        same_tensors(a["state_dict"], b["state_dict"])
        assert losses(tmp_path / "full" / f"history_{label}.csv") == losses(part / f"history_{label}.csv")
    fm = json.loads((tmp_path / "full" / "metrics.json").read_text())["runs"]
    pm = json.loads((part / "metrics.json").read_text())["runs"]
    assert [fm[k]["test_rel_l2"] for k in fm] == [pm[k]["test_rel_l2"] for k in fm]


COMPARE = ["compare", "poisson_1d", "--losses", "sobolev,l2", "--seeds", "2", "--schedule", "1:40",
           "--width", "8", "--depth", "1", "--points", "50", "--boundary-points", "8", "--test-points", "100",
           "--eval-every", "10", "--device", "cpu", "--quiet"]


def test_compare_stops_as_a_whole_and_resumes_where_it_stopped(tmp_path, sigterm_at, capsys):
    assert main([*COMPARE, "--out", str(tmp_path / "full")]) == 0
    undo = sigterm_at(4 + 4 + 2)  # rows of 4 per run: the third run (sobolev, seed 1) at iteration 20
    assert main([*COMPARE, "--out", str(tmp_path / "part")]) == 143
    undo()
    assert "resume with: hrta-pde compare --resume" in capsys.readouterr().err
    part = tmp_path / "part"
    state = json.loads((part / "compare_state.json").read_text())
    assert [d["key"] for d in state["done"]] == ["sobolev_seed0", "l2_seed0"]
    assert not (part / "runs" / "l2_seed1").exists()  # the rest did not train on
    assert load_checkpoint(part / "runs" / "sobolev_seed1")["position"]["iteration"] == 20
    assert main(["compare", "--resume", str(part)]) == 0
    full_rows = json.loads((tmp_path / "full" / "summary.json").read_text())["rows"]
    part_rows = json.loads((part / "summary.json").read_text())["rows"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(full_rows) == strip(part_rows)
    for key in ("sobolev_seed1", "l2_seed1"):
        same_tensors(read_plain(tmp_path / "full" / "runs" / key / "checkpoint.pt")["net"],
                     read_plain(part / "runs" / key / "checkpoint.pt")["net"])


# ------------------------------------------------------------------ 7. smaller items

def test_export_of_a_folder_without_checkpoint_names_export(tmp_path, capsys):
    code, err = run_cli(["export", str(tmp_path)], capsys)
    one_line(code, err, 2, f"export {str(tmp_path)!r}: not a run folder")
    assert "--resume" not in err


def test_export_with_a_corrupt_metrics_json_names_the_file(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "r")
    (run / "metrics.json").write_text('{"metrics": {')
    code, err = run_cli(["export", str(run), "--to", str(tmp_path / "u.vtu")], capsys)
    one_line(code, err, 2, str(run / "metrics.json"), "not valid JSON")


def test_boundary_data_derived_from_u_must_be_finite_and_numpy_warnings_stay_quiet(tmp_path):
    proc = subprocess.run(HRTA + ["solve", problem_file(tmp_path, "x*log(x)"), "--quiet", "--out",
                                  str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [  # and no RuntimeWarning before it
        f"hrta-pde: error: {tmp_path / 'p.toml'}: Dirichlet data g = u is not finite at [0.0] on the "
        "boundary; fix solution.u there or give the boundary data explicitly"]
    assert not (tmp_path / "o").exists()


def test_neumann_data_derived_from_u_must_be_finite(tmp_path, capsys):
    code, err = run_cli(["solve", problem_file(tmp_path, "x^2*log(x)", boundary="neumann"), "--quiet"], capsys)
    one_line(code, err, 2, "Neumann data h = du/dn is not finite at [0.0] on the boundary")


def test_library_config_types_are_checked_too():
    from hrta_pde.approx import ApproxConfig
    from hrta_pde.poisson.solve import SolveConfig

    from hrta_pde.options import NetworkOptions, TrainingOptions

    with pytest.raises(ValueError, match="reset_optimizer='no' must be true or false"):
        SolveConfig.from_dict({"reset_optimizer": "no"})
    with pytest.raises(ValueError, match="reset_optimizer='no' must be true or false"):
        SolveConfig(training=TrainingOptions(reset_optimizer="no"))
    with pytest.raises(ValueError, match="width=True must be an integer"):
        ApproxConfig.from_dict({"width": True})
    with pytest.raises(ValueError, match="width=True must be an integer"):
        NetworkOptions(width=True)
    cfg = SolveConfig.from_dict({"lr": 1, "beta": 100})
    assert cfg.training.lr == 1.0 and isinstance(cfg.training.lr, float) and isinstance(cfg.beta, float)
