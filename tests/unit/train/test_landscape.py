"""The landscape trainer: a known truth for testing the search's statistics."""

import math
import time

import pytest

from dejavu_tune.config import TrainConfig
from dejavu_tune.train.landscape import LandscapeTrainer


def _final(cfg, **kw):
    trainer = LandscapeTrainer(cfg, **kw)
    for _ in range(4):
        trainer.train_epoch()
    return trainer.evaluate()["val_miou"]


def test_curve_effect_and_noise_by_construction():
    cfg = TrainConfig().replace(seed=3)
    exact = LandscapeTrainer(cfg, seed_noise=0.0, run_noise=0.0, tau=2.0)
    exact.train_epoch()
    # epoch 1: 0.8 * (1 - e^(-1/2)); the training loss is one minus it
    assert exact.evaluate()["val_miou"] == pytest.approx(0.8 * (1 - math.exp(-0.5)))
    assert exact.train_epoch()["task_loss"] == pytest.approx(1 - 0.8 * (1 - math.exp(-1.0)))
    gain = lambda c: 0.05  # noqa: E731
    base = cfg.replace(**{"dejavu.enabled": False})
    # the effect applies to DejaVu runs only; with the same seed the seed term is shared
    assert _final(cfg, effect=gain, run_noise=0.0) - _final(base, run_noise=0.0) == \
        pytest.approx(0.05 * (1 - math.exp(-2.0)))
    # deterministic, and different seeds differ
    assert _final(cfg) == _final(cfg) != _final(cfg.replace(seed=4))


def test_state_round_trip():
    trainer = LandscapeTrainer(TrainConfig())
    trainer.train_epoch()
    other = LandscapeTrainer(TrainConfig())
    other.load_state_dict(trainer.state_dict())
    assert other.epoch == 1 and other.evaluate() == trainer.evaluate()


def test_the_landscape_from_the_environment(monkeypatch):
    from dejavu_tune.train.landscape import LANDSCAPE_ENV, from_env

    monkeypatch.setenv(LANDSCAPE_ENV, '{"seed_noise": 0, "run_noise": 0, "tau": 0.25, '
                                      '"effect": 0.01}')
    cfg = TrainConfig().replace(seed=3)
    dejavu, base = from_env(cfg), from_env(cfg.replace(**{"dejavu.enabled": False}))
    for trainer in (dejavu, base):
        trainer.train_epoch()
        trainer.train_epoch()
    # after 2 epochs at tau 0.25 the metric is its ceiling times 1 - e^-8 (0.99966)
    assert dejavu.evaluate()["val_miou"] == pytest.approx(0.81 * (1 - math.exp(-8)))
    assert base.evaluate()["val_miou"] == pytest.approx(0.80 * (1 - math.exp(-8)))
    monkeypatch.setenv(LANDSCAPE_ENV, '{"epoch_s": 0.2}')
    paced = from_env(cfg)
    start = time.perf_counter()
    paced.train_epoch()
    assert paced.epoch_s == 0.2 and time.perf_counter() - start >= 0.2
    monkeypatch.setenv(LANDSCAPE_ENV, '{"run_nose": 0}')
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['run_nose'\]"):
        from_env(cfg)
    monkeypatch.delenv(LANDSCAPE_ENV)
    with pytest.raises(ValueError, match="must hold a JSON object"):
        from_env(cfg)
