"""The small commands: problems, ntk."""
import csv
import tomllib

import numpy as np
import pytest

from hrta_pde.cli import main
from hrta_pde.ntk import gram_closed_form, paper_grid
from hrta_pde.poisson.catalog import list_builtin_problems
from hrta_pde.poisson.spec import problem_from_dict


def test_problems_lists_and_shows_loadable_files(capsys):
    assert main(["problems"]) == 0
    names = capsys.readouterr().out.split()
    assert names == list_builtin_problems() and "poisson_2d_sin" in names
    assert main(["problems", "--show", "poisson_lshape"]) == 0
    text = capsys.readouterr().out
    assert text.lstrip().startswith("#")  # commented for new users
    assert problem_from_dict(tomllib.loads(text)).name == "poisson_lshape"


def test_ntk_command_table_matches_closed_form(tmp_path, capsys):
    assert main(["ntk", "--dim", "1", "--s", "0.5,1,1.5", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "increases with s" in out
    with open(tmp_path / "min_eigenvalue.csv") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        H = gram_closed_form(paper_grid(1), float(row["s"]))["H"]
        assert float(row["lambda_min_closed"]) == pytest.approx(np.linalg.eigvalsh(H)[0], rel=1e-10)
    assert (tmp_path / "min_eigenvalue.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args", [["ntk", "--s", "3"], ["ntk", "--s", "a,b"], ["ntk", "--dim", "2"]])
def test_ntk_bad_input(args, tmp_path, capsys):
    try:
        code = main(args + ["--out", str(tmp_path / "n")])
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_another_deepxde_backend_is_refused_clearly():
    import os
    import subprocess
    import sys

    env = dict(os.environ, DDE_BACKEND="jax")
    lib = subprocess.run([sys.executable, "-c", "import hrta_pde"], capture_output=True, text=True, env=env)
    assert lib.returncode != 0 and "BackendError" in lib.stderr and "DDE_BACKEND='jax'" in lib.stderr
    from pathlib import Path

    script = Path(sys.executable).parent / "hrta-pde"  # the installed console script
    cli = subprocess.run([str(script), "problems"], capture_output=True, text=True, env=env)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert cli.stderr.strip().startswith("hrta-pde: error: DDE_BACKEND='jax'")


@pytest.mark.parametrize("value", ["100000", "2147483648", "0"])
def test_thread_counts_beyond_the_machine_are_refused_in_one_line(value, tmp_path, capsys):
    # 10000 threads on 2 cores hung for minutes, 100000 crashed the OpenMP runtime (exit 139)
    try:
        code = main(["solve", "--threads", value, "--out", str(tmp_path / "t")])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "--threads" in err[-1] and "per CPU" in err[-1]
    assert not (tmp_path / "t").exists()


def test_a_plot_of_a_run_whose_loss_is_nan_throughout_warns_nothing(tmp_path):
    import warnings

    from hrta_pde.history import History
    from hrta_pde.poisson.plotting import plot_loss_histories

    hist = History()
    for k in range(1, 4):
        hist.append(k, 1, 1.0, 1e-3, float("nan"), [], 0.1 * k, "adam")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = plot_loss_histories({"pinn": hist}, tmp_path / "loss.png")
        plot_loss_histories({"pinn": History()}, tmp_path / "empty.png")
    assert caught == [] and path.exists() and (tmp_path / "empty.png").exists()


@pytest.mark.parametrize("h", ["1e-9", "1e9"])
def test_an_export_resolution_the_domain_cannot_take_is_refused_before_training(h, tmp_path, capsys):
    try:
        code = main(["solve", "poisson_2d_sin", "--schedule", "1:3@engd", "--points", "100", "--test-points", "100",
                     "--quiet", "--export", "u.vtu", "--resolution", h, "--out", str(tmp_path / "r")])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "h=" in err[0]
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_the_export_mesh_made_before_training_survives_the_fem_reference():
    # the FEM reference meshes the domain at up to 5 levels, more than the meshes kept
    from hrta_pde.poisson import mesh as mesh_module
    from hrta_pde.poisson.catalog import builtin_problem
    from hrta_pde.poisson.export import check_export_targets

    p = builtin_problem("poisson_square_holes")
    check_export_targets(["u.vtu"], p, 0.05)
    for h in (0.3, 0.2, 0.15, 0.1, 0.07, 0.06):
        mesh_module.mesh_shape(p.shape, h)
    calls = []
    original = mesh_module._mesh_2d
    try:
        mesh_module._mesh_2d = lambda *a: calls.append(a) or original(*a)
        mesh_module.mesh_shape(p.shape, 0.05)
    finally:
        mesh_module._mesh_2d = original
    assert calls == []
