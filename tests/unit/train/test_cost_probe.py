"""Each trial's cost next to the baseline's, measured in the trial, leaving no trace."""

import pytest
import torch

from dejavu_tune.config import TrainConfig
from dejavu_tune.train import cost_probe
from dejavu_tune.train.landscape import LandscapeTrainer
from dejavu_tune.train.trainer import Trainer

TINY = {"device": "cpu", "data": {"num_train": 8, "num_val": 4, "image_size": 32},
        "optim": {"batch_size": 4}, "dejavu": {"crm": {"init": "scratch"}}}


def _trainer(**dejavu):
    raw = {**TINY, "dejavu": {**TINY["dejavu"], **dejavu}}
    return Trainer(TrainConfig.from_dict(raw))


def test_the_baseline_costs_exactly_one():
    trainer = _trainer(enabled=False)
    assert cost_probe.measure(trainer, trainer.first_batch(4)) == {
        "step_time_ratio": 1.0, "mem_ratio": 1.0}


def test_a_larger_crm_costs_more_memory_and_the_probe_changes_nothing():
    small, large = (_trainer(crm={"init": "scratch", "kind": "crm_r", "steps": k})
                    for k in (1, 12))
    batch = large.first_batch(4)
    weights = {k: v.clone() for k, v in large.model.state_dict().items()}  # BN stats too
    rng = large.redact_rng.get_state()
    global_rng = torch.random.get_rng_state()
    cost_small = cost_probe.measure(small, small.first_batch(4))
    cost_large = cost_probe.measure(large, batch)
    # every CRM-R step keeps its activations for the backward pass
    assert 1.0 < cost_small["mem_ratio"] < cost_large["mem_ratio"]
    assert cost_large["step_time_ratio"] > 1.0
    assert all(torch.equal(weights[k], v) for k, v in large.model.state_dict().items())
    assert torch.equal(large.redact_rng.get_state(), rng)
    assert torch.equal(torch.random.get_rng_state(), global_rng)
    assert all(p.grad is None for p in large.model.parameters())
    assert large.iteration == 0 and large.scheduler.last_epoch == 0


def test_the_landscape_states_a_cost_that_grows_with_the_crm():
    def cost(**dejavu):
        return LandscapeTrainer(TrainConfig.from_dict({"dejavu": dejavu})).cost_ratios()

    assert cost(enabled=False) == {"step_time_ratio": 1.0, "mem_ratio": 1.0}
    # 1 + 0.05 x 8 steps + 0.2 for LPIPS (gamma1 > 0 by default)
    assert cost(crm={"kind": "crm_r", "steps": 8})["step_time_ratio"] == 1.6
    assert cost(crm={"kind": "crm_f", "stages": 2}, loss={"gamma1": 0.0}) == {
        "step_time_ratio": 1.3, "mem_ratio": 1.18}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_memory_is_the_allocators_peak_and_the_probe_changes_nothing():
    def trainer(steps):
        raw = {**TINY, "device": "cuda",
               "dejavu": {"crm": {"init": "scratch", "kind": "crm_r", "steps": steps}}}
        return Trainer(TrainConfig.from_dict(raw))

    small, large = trainer(1), trainer(12)
    weights = {k: v.clone() for k, v in large.model.state_dict().items()}
    rng = large.redact_rng.get_state()
    cost_small = cost_probe.measure(small, small.first_batch(4))
    cost_large = cost_probe.measure(large, large.first_batch(4))
    assert 1.0 < cost_small["mem_ratio"] < cost_large["mem_ratio"]
    assert cost_large["step_time_ratio"] > 1.0
    assert all(torch.equal(weights[k], v) for k, v in large.model.state_dict().items())
    assert torch.equal(large.redact_rng.get_state(), rng)
    assert all(p.grad is None for p in large.model.parameters())
