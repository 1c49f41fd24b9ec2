import pytest
import torch

from dejavu_tune.config import CRMConfig
from dejavu_tune.method.crm import CRMR, CRMWeightsError, build_crm, load_crm_weights, save_crm


@pytest.mark.parametrize("stages", [1, 2, 3, 4])
@pytest.mark.parametrize("downsample", [1, 2, 4])
def test_crm_f_output_shape_every_stage_count(stages, downsample):
    crm = build_crm(CRMConfig(init="scratch", kind="crm_f", stages=stages, width=8, downsample=downsample), 5)
    redacted, cond = torch.randn(2, 3, 48, 40), torch.rand(2, 5, 48, 40)
    assert crm(redacted, cond).shape == (2, 3, 48, 40)
    assert len(crm.down) == stages and len(crm.up) == stages - 1


@pytest.mark.parametrize("steps", [1, 2, 5, 20])
def test_crm_r_output_shape_every_step_count(steps):
    crm = build_crm(CRMConfig(init="scratch", kind="crm_r", steps=steps, width=8, downsample=2), 5)
    assert crm(torch.randn(2, 3, 32, 32), torch.rand(2, 5, 32, 32)).shape == (2, 3, 32, 32)
    assert crm.step_embed.num_embeddings == steps


@pytest.mark.parametrize("kind", ["crm_f", "crm_r"])
def test_sizes_not_multiple_of_downsample(kind):
    crm = build_crm(CRMConfig(init="scratch", kind=kind, steps=2, stages=3, width=8, downsample=4), 2)
    assert crm(torch.randn(1, 3, 37, 29), torch.rand(1, 2, 37, 29)).shape == (1, 3, 37, 29)


def test_crm_r_applies_one_shared_step_k_times_with_step_index():
    crm = CRMR(in_channels=5, steps=3, width=8, downsample=1)
    calls = []
    original = crm._step

    def spy(est, feats, k):
        calls.append(int(k))
        return original(est, feats, k)

    crm._step = spy
    crm(torch.randn(1, 3, 8, 8), torch.rand(1, 2, 8, 8))
    assert calls == [0, 1, 2]


def test_crm_r_starts_near_identity():
    # Small init of the update head: the untrained estimate stays near the redacted input.
    crm = build_crm(CRMConfig(init="scratch", kind="crm_r", steps=20, width=8), 5)
    redacted = torch.randn(1, 3, 32, 32)
    out = crm(redacted, torch.rand(1, 5, 32, 32))
    assert (out - redacted).abs().max().item() < 0.1


def test_gradient_checkpointing_gives_identical_gradients():
    torch.manual_seed(0)
    plain = build_crm(CRMConfig(init="scratch", kind="crm_r", steps=4, width=8, downsample=2), 3)
    ckpt = build_crm(CRMConfig(init="scratch", kind="crm_r", steps=4, width=8, downsample=2,
                               checkpointing=True), 3)
    ckpt.load_state_dict(plain.state_dict())
    redacted = torch.randn(2, 3, 16, 16)
    cond = torch.rand(2, 3, 16, 16, requires_grad=True)
    grads = []
    for crm in (plain, ckpt):
        cond.grad = None
        crm(redacted, cond).square().mean().backward()
        grads.append(cond.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert grads[0].abs().sum() > 0  # the conditioning really receives gradient


def test_crm_checkpoint_round_trip_and_mismatch(tmp_path):
    cfg = CRMConfig(init="scratch", kind="crm_f", stages=2, width=8)
    crm = build_crm(cfg, 4)
    path = tmp_path / "crm.pt"
    save_crm(crm, path, cfg, cond_channels=4)
    loaded = build_crm(CRMConfig(init="scratch", kind="crm_f", stages=2, width=8, weights=str(path)), 4)
    for key, value in crm.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    with pytest.raises(CRMWeightsError, match="were stored for .*'stages': 2.*'stages': 3"):
        build_crm(CRMConfig(init="scratch", kind="crm_f", stages=3, width=8, weights=str(path)), 4)
    with pytest.raises(CRMWeightsError, match="missing.pt' does not exist"):
        load_crm_weights(crm, tmp_path / "missing.pt", cfg, 4)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CRMWeightsError, match="junk.pt' is not a PyTorch state dict of tensors"):
        load_crm_weights(crm, tmp_path / "junk.pt", cfg, 4)


class _Opaque:
    """Not a tensor: a weights-only unpickler refuses to build it."""


def test_crm_weights_of_objects_or_other_checkpoints_are_one_clear_error(tmp_path):
    cfg = CRMConfig(init="scratch", kind="crm_f", stages=2, width=8)
    crm = build_crm(cfg, 4)
    torch.save({"format": "dejavu-crm/1", "architecture": _Opaque()}, tmp_path / "obj.pt")
    with pytest.raises(CRMWeightsError, match=r"not a PyTorch state dict of tensors \(it "
                                              r"holds a [\w.]*_Opaque\)") as info:
        load_crm_weights(crm, tmp_path / "obj.pt", cfg, 4)
    assert "weights_only" not in str(info.value)
    torch.save({"format": "dejavu-crm/1"}, tmp_path / "bare.pt")
    with pytest.raises(CRMWeightsError, match="not a dejavu-crm/1 checkpoint"):
        load_crm_weights(crm, tmp_path / "bare.pt", cfg, 4)
    save_crm(crm, tmp_path / "crm.pt", cfg, cond_channels=4)
    payload = torch.load(tmp_path / "crm.pt", weights_only=True)
    payload["state_dict"].popitem()
    torch.save(payload, tmp_path / "cut.pt")
    with pytest.raises(CRMWeightsError, match="the stored tensors do not fit"):
        load_crm_weights(crm, tmp_path / "cut.pt", cfg, 4)


def test_unknown_crm_kind_lists_valid_ones():
    cfg = CRMConfig()
    object.__setattr__(cfg, "kind", "crm_x")  # bypass config validation to reach the factory
    with pytest.raises(ValueError, match="'crm_x' is not known: expected one of crm_f, crm_r"):
        build_crm(cfg, 3)
