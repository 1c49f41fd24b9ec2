import pytest
import torch

from dejavu_tune.train.checkpoint_io import CheckpointError, load, load_first_good, save


class Payload:  # unpickling it would import and build an arbitrary object
    pass


STATE = {"epoch": 3, "weights": torch.arange(6.0).reshape(2, 3), "lr": [0.1, 0.01]}


def _checkpoint(root, name, state=STATE):
    directory = root / name
    directory.mkdir()
    save(state, directory)
    return directory


def test_round_trip(tmp_path):
    state = load(_checkpoint(tmp_path, "c1"))
    assert state["epoch"] == 3 and state["lr"] == [0.1, 0.01]
    assert torch.equal(state["weights"], STATE["weights"])


def test_truncated_checkpoint_is_refused_by_name(tmp_path):
    directory = _checkpoint(tmp_path, "c1")
    path = directory / "trainer.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"c1/trainer.pt: damaged checkpoint \(SHA-256"):
        load(directory)


def test_checkpoint_without_digest_is_incomplete(tmp_path):
    directory = _checkpoint(tmp_path, "c1")
    (directory / "trainer.pt.sha256").unlink()
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        load(directory)


def test_code_in_a_checkpoint_is_never_run(tmp_path):
    # A pickle that would build an arbitrary object: weights_only refuses it, even with a
    # matching digest.
    directory = _checkpoint(tmp_path, "c1", {"x": Payload()})
    with pytest.raises(CheckpointError, match=r"c1/trainer.pt: cannot be loaded \(Unpickling"):
        load(directory)


def test_falls_back_to_the_newest_intact_checkpoint(tmp_path):
    old = _checkpoint(tmp_path, "checkpoint_000001", {"epoch": 1})
    new = _checkpoint(tmp_path, "checkpoint_000002", {"epoch": 2})
    (new / "trainer.pt").write_bytes(b"garbage")
    state, used, skipped = load_first_good([new, old])
    assert state == {"epoch": 1} and used == old
    assert len(skipped) == 1 and "checkpoint_000002/trainer.pt: damaged" in skipped[0]
    (old / "trainer.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no usable checkpoint: .*000002.*; .*000001"):
        load_first_good([new, old])
