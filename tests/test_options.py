"""Typed options: checked when made, one flat form, errors that name settings or flags."""
import dataclasses

import pytest

from hrta_pde.approx import ApproxConfig
from hrta_pde.options import NetworkOptions, RunOptions, SamplingOptions, SettingError, TrainingOptions
from hrta_pde.poisson.settings import SolveConfig


@pytest.mark.parametrize("make,match", [
    (lambda: NetworkOptions(width=0), "width=0 must be a positive integer"),
    (lambda: NetworkOptions(depth=101), "depth=101 is above the limit of 100 hidden layers: lower depth"),
    (lambda: NetworkOptions(net="cnn"), "net='cnn' is unknown: use 'fnn' or 'paper'"),
    (lambda: SamplingOptions(points=2.5), "points=2.5 must be an integer"),
    (lambda: TrainingOptions(plateau_threshold=0), "plateau threshold=0.0 must be a positive number"),
    (lambda: RunOptions(seed=-1), "seed=-1 must be an integer from 0 to 2^62"),
    (lambda: RunOptions(dtype="float16"), "float16"),
    (lambda: SolveConfig(loss="sobol"), "unknown loss 'sobol'"),
    (lambda: SolveConfig(sampling=SamplingOptions(sampler="grid")),
     "sampler='grid' is unknown: use 'auto', 'random', 'uniform', 'sobol' or 'gauss'"),
    (lambda: ApproxConfig.from_dict({"sampler": "sobol"}), "sampler='sobol' is unknown"),
    (lambda: ApproxConfig.from_dict({"net": "paper"}), "unknown key(s) ['net']"),
    (lambda: SolveConfig.from_dict({"widht": 8}), "unknown solver key(s) ['widht']"),
])
def test_options_are_checked_when_made(make, match):
    with pytest.raises(ValueError) as info:
        make()
    assert match in str(info.value)


def test_flat_form_round_trips_and_fills_groups():
    cfg = SolveConfig.from_dict({"loss": " Ritz", "width": 32, "lr": 1, "seed": 3, "points": 50})
    assert cfg.loss == "ritz" and cfg.network == NetworkOptions(width=32)
    assert cfg.training.lr == 1.0 and isinstance(cfg.training.lr, float) and cfg.run.seed == 3
    assert cfg.sampling == SamplingOptions(points=50, sampler="auto")
    flat = cfg.to_dict()
    assert list(flat) == list(SolveConfig.keys()) and flat["width"] == 32 and flat["sampler"] == "auto"
    assert SolveConfig.from_dict(flat) == cfg
    assert cfg.replace(depth=2) == dataclasses.replace(cfg, network=NetworkOptions(width=32, depth=2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.network.width = 8
    # approx: the paper's network, other defaults, no net/init/boundary_points keys
    a = ApproxConfig.from_dict({"width": 20})
    assert a.network == NetworkOptions(width=20, phi="relu", net="paper")
    assert set(ApproxConfig.keys()) & {"net", "init", "boundary_points"} == set()
    assert [s.total_iterations for s in a.schedules()] == [16000, 16000]


def test_setting_errors_name_keys_in_python_and_flags_on_the_command_line():
    err = SettingError("use {phi:=}relu2, or {loss:=}ritz; drop {hard_bc}; choose another{out: with | folder}")
    assert str(err) == "use phi=relu2, or loss=ritz; drop hard_bc; choose another folder"
    assert err.with_flags() == "use --phi relu2, or --loss ritz; drop --hard-bc; choose another with --out"
