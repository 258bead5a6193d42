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
