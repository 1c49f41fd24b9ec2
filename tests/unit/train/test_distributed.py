"""Two gloo ranks on the CPU train exactly what one process trains (train.distributed)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dejavu_tune.config import ConfigError, TrainConfig
from dejavu_tune.method.redaction import build_redaction
from dejavu_tune.train.distributed import Ranks, ShardedBatches, shard_redaction
from dejavu_tune.train.trainer import Trainer

TINY = {
    # 15 validation images: the two shards differ in size; input noise: each image keeps
    # its own noise wherever its shard starts
    "data": {"image_size": 32, "num_train": 32, "num_val": 15, "num_classes": 4,
             "input_noise": 0.1},
    "model": {"width": 8},
    "optim": {"epochs": 1, "batch_size": 8},
    "dejavu": {"crm": {"kind": "crm_f", "stages": 2, "width": 8, "init": "scratch"},
               "redaction": {"block_size": 8}},
}
CASES = {
    "baseline": {"dejavu.enabled": False},
    "crm_f": {},
    "crm_r": {"dejavu.crm.kind": "crm_r", "dejavu.crm.steps": 2,
              "dejavu.redaction.kind": "checkerboard", "dejavu.loss.cl_weight": 0.1},
    "augment": {"dejavu.mode": "augment"},
    "unsynced": {"model.sync_batchnorm": False},
}


def _cfg(case: str) -> TrainConfig:
    return TrainConfig.from_dict(TINY).replace(**CASES[case])


def _one_epoch(trainer: Trainer) -> dict:
    metrics = trainer.train_epoch()
    metrics.update(trainer.evaluate())
    metrics.pop("sec_per_iter")
    return {"metrics": metrics, "state": trainer.state_dict()}


def _rank_main(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        torch.set_num_threads(1)
        results = {case: _one_epoch(Trainer(_cfg(case), ranks=Ranks.current()))
                   for case in CASES}
        torch.save(results, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank_main, args=(2, str(tmp / "init"), str(tmp / "result")), nprocs=2,
             join=True)
    return [torch.load(tmp / f"result.{r}", weights_only=False) for r in range(2)]


def _tensors(state: dict) -> dict[str, torch.Tensor]:
    out = {}
    for part in ("model", "crm"):
        for key, value in (state[part] or {}).items():
            out[f"{part}.{key}"] = value
    return out


@pytest.mark.parametrize("case", ["baseline", "crm_f", "crm_r", "augment"])
def test_two_ranks_train_and_score_what_one_process_does(two_ranks, case):
    single = _one_epoch(Trainer(_cfg(case)))
    for rank in two_ranks:
        got = rank[case]
        # the metric is the whole split's on every rank, from the summed confusion matrices
        assert got["metrics"]["val_miou"] == pytest.approx(single["metrics"]["val_miou"],
                                                            abs=1e-12)
        assert got["metrics"]["loss"] == pytest.approx(single["metrics"]["loss"], rel=1e-5)
        assert torch.equal(got["state"]["data_rng"], single["state"]["data_rng"])
        assert torch.equal(got["state"]["redact_rng"], single["state"]["redact_rng"])
        assert got["state"]["iteration"] == single["state"]["iteration"] == 4
        expected = _tensors(single["state"])
        weights = _tensors(got["state"])
        assert weights.keys() == expected.keys()
        for key, value in expected.items():
            torch.testing.assert_close(weights[key], value, rtol=1e-4, atol=1e-5,
                                       msg=lambda m, key=key: f"{case} {key}: {m}")


def test_ranks_hold_identical_weights_and_unsynced_batchnorm_differs(two_ranks):
    first, second = (_tensors(rank["unsynced"]["state"]) for rank in two_ranks)
    for key, value in first.items():
        if "running_" not in key and "num_batches" not in key:
            # the weights: DDP's all-reduce keeps them equal (each rank's BatchNorm buffers
            # are its own after its last step; rank 0's are the checkpoint's)
            assert torch.equal(value, second[key]), key
    # each rank normalised its own 4 rows: the running statistics are not the global
    # batch's, which is what model.sync_batchnorm=true (the default) is for
    single = _tensors(_one_epoch(Trainer(_cfg("unsynced")))["state"])
    key = next(k for k in single if k.endswith("running_var"))
    assert not torch.allclose(first[key], single[key], rtol=1e-4, atol=1e-5)


def test_rank_slices_of_a_global_batch_are_the_single_process_batch():
    data = list(range(10))
    slices = [list(ShardedBatches(data, 4, torch.Generator().manual_seed(3), Ranks(r, 2)))
              for r in range(2)]
    single = list(torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(
        data, generator=torch.Generator().manual_seed(3)), 4, drop_last=True))
    assert len(single) == len(slices[0]) == 2  # 10 // 4, the last 2 dropped
    assert [a + b for a, b in zip(*slices, strict=True)] == single
    assert all(len(batch) == 2 for batch in slices[0] + slices[1])


def test_a_global_batch_that_does_not_split_is_refused_early():
    with pytest.raises(ConfigError, match=r"optim.batch_size=8 is the global batch .* 3 "
                                          r"data-parallel workers: expected a multiple of 3"):
        Trainer(TrainConfig.from_dict(TINY), ranks=Ranks(0, 3))


def test_evaluation_shards_cover_the_split_once():
    assert [Ranks(r, 2).shard(15) for r in range(2)] == [range(0, 7), range(7, 15)]
    assert [len(Ranks(r, 4).shard(3)) for r in range(4)] == [0, 1, 1, 1]


def test_a_rank_redacts_its_rows_as_the_global_batch_would():
    redact = build_redaction(TrainConfig.from_dict(TINY).dejavu.redaction)
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    whole = redact(images, torch.Generator().manual_seed(5))
    for rank in range(2):
        rows = shard_redaction(redact, Ranks(rank, 2))(
            images[2 * rank:2 * rank + 2], torch.Generator().manual_seed(5))
        assert torch.equal(rows, whole[2 * rank:2 * rank + 2])


def test_model_sync_batchnorm_must_be_a_boolean():
    with pytest.raises(ConfigError, match=r"model.sync_batchnorm='yes' is not allowed: "
                                          "expected true or false"):
        TrainConfig.from_dict(TINY).replace(**{"model.sync_batchnorm": "yes"})

