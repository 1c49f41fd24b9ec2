import sys
import types

import pytest
import torch
from torch import nn

from dejavu_tune.models import MODELS, build_model, count_parameters
from dejavu_tune.models.attention import SharedAttention
from dejavu_tune.models.hrnet import hrnet_config, hrnet_features
from dejavu_tune.models.weights import WeightsError
from dejavu_tune.plugins import PluginError

# heads={"seg": 19}; the trunks' sizes are those of the published networks
# (HRNet-W18 ~9.6M, HRNet-W48 ~65.9M, PoolFormer-M48 ~73M, ViT-B ~86M, Swin-T ~28M,
# ResNet-50 ~23.5M), plus this project's heads; HRNet-W19/W20 lie between W18 and W48.
PARAMETERS = {
    "small": (100_000, 120_000), "segnet": (25_000_000, 35_000_000),
    "hrnet_w18": (9_000_000, 10_500_000), "hrnet_w48": (64_000_000, 68_000_000),
    "hrnet_w19": (10_500_000, 11_000_000), "hrnet_w20": (11_500_000, 12_100_000),
    "hrnet_w18_ocr": (9_500_000, 11_000_000), "poolformer_m48_fpn": (72_000_000, 75_000_000),
    "vit_b_upernet": (86_000_000, 92_000_000), "swin_t_upernet": (28_000_000, 32_000_000),
    "resnet50_fpn": (23_500_000, 26_000_000),
}
FAST = ("small", "segnet", "hrnet_w18", "hrnet_w19", "hrnet_w20")


def test_every_model_has_a_size_check():
    assert set(MODELS) == set(PARAMETERS)


def _check(name: str, size: int = 64) -> None:
    width = 64 if name == "segnet" else 16  # SegNet at VGG16's widths, as for NYUD-v2
    model = build_model(name, {"seg": 19}, width=width)
    low, high = PARAMETERS[name]
    print(name, count_parameters(model))
    assert low <= count_parameters(model) <= high
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert set(out) == {"seg"} and out["seg"].shape == (2, 19, size, size)
    out["seg"].square().mean().backward()
    first = next(p for p in model.trunk.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0  # reaches the backbone


@pytest.mark.parametrize("name", FAST)
def test_fast_models_forward_backward(name):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(MODELS) - set(FAST)))
def test_large_models_forward_backward(name):
    _check(name)


def test_small_keeps_its_size_and_multitask_adds_heads_only():
    single = count_parameters(build_model("small", {"seg": 5}))
    assert single == 107_045  # the U-Net of the core issue, unchanged
    multi = build_model("small", {"seg": 13, "depth": 1, "normals": 3})
    # heads are 1x1 convolutions on 16 channels: (16 + 1) per output channel
    assert count_parameters(multi) == single - 17 * 5 + 17 * 17
    out = multi(torch.zeros(1, 3, 32, 48))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "seg": (1, 13, 32, 48), "depth": (1, 1, 32, 48), "normals": (1, 3, 32, 48)}


def test_shared_attention_parameters_by_hand():
    base = count_parameters(build_model("small", {"seg": 5}))
    with_sa = count_parameters(build_model("small", {"seg": 5}, attention=32))
    c, d = 64, 32  # the small network's deepest features, the embedding dim
    expected = (c * d + d) + 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * c + c)
    assert with_sa - base == expected == 8480
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    sa = build_model("hrnet_w18", {"seg": 3}, attention=64)
    assert sa(x)["seg"].shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="attention=48 is not allowed: expected one of 0, 32"):
        build_model("small", {"seg": 5}, attention=48)


def test_pretrained_round_trip_and_mismatch(tmp_path):
    source = build_model("resnet50_fpn", {"seg": 2})
    path = tmp_path / "resnet50.pt"
    torch.save({"state_dict": source.trunk.backbone.state_dict()}, path)
    loaded = build_model("resnet50_fpn", {"seg": 2}, pretrained=str(path))
    for (k, a), b in zip(source.trunk.backbone.state_dict().items(),
                         loaded.trunk.backbone.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="does not fit the backbone: .* keys missing"):
        build_model("resnet50_fpn", {"seg": 2}, pretrained=str(tmp_path / "wrong.pt"))
    with pytest.raises(ValueError, match="does not exist: expected a local weights file"):
        build_model("small", {"seg": 2}, pretrained=str(tmp_path / "none.pt"))
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match=r"list.pt' is not a PyTorch state dict of tensors "
                                           r"\(it holds a list\)"):
        build_model("small", {"seg": 2}, pretrained=str(tmp_path / "list.pt"))


def test_a_plugin_that_is_no_network_function_is_named_with_its_contract():
    with pytest.raises(PluginError, match=r"model.name='os:getcwd' does not take the "
                                          r"arguments .*: expected a function\(heads, width"):
        build_model("os:getcwd", {"seg": 2})
    with pytest.raises(PluginError, match=r"model.name='builtins:dict' returned a dict: "
                                          "expected a function"):
        build_model("builtins:dict", {"seg": 2})


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="model 'unet' is not known: expected one of small, "
                                         "segnet, hrnet_w18"):
        build_model("unet", {"seg": 2})


def test_plugin_network_returning_a_tensor_is_wrapped(monkeypatch):
    module = types.ModuleType("my_networks")

    def build(heads, width, pretrained):
        (channels,) = heads.values()
        return nn.Conv2d(3, channels, 1)

    module.build = build
    monkeypatch.setitem(sys.modules, "my_networks", module)
    model = build_model("my_networks:build", {"depth": 1})
    assert model(torch.zeros(2, 3, 8, 8))["depth"].shape == (2, 1, 8, 8)


def test_a_plugin_network_receives_its_options(monkeypatch):
    module = types.ModuleType("my_options_networks")
    seen = {}

    def build(heads, width, pretrained, depth=1):
        seen.update(width=width, depth=depth)
        return nn.Sequential(*[nn.Conv2d(3, 3, 1) for _ in range(depth - 1)],
                             nn.Conv2d(3, sum(heads.values()), 1))

    module.build = build
    monkeypatch.setitem(sys.modules, "my_options_networks", module)
    model = build_model("my_options_networks:build", {"seg": 4}, width=8, options={"depth": 3})
    assert seen == {"width": 8, "depth": 3}
    assert model(torch.zeros(1, 3, 8, 8))["seg"].shape == (1, 4, 8, 8)


def test_hrnet_at_any_width_is_timms_hrnet_family():
    from timm.models.hrnet import cfg_cls

    # every width timm names is W18's layout with only the branch widths scaled
    for width in (18, 30, 32, 40, 44, 48, 64):
        assert hrnet_config(width) == cfg_cls[f"hrnet_w{width}"], width
    assert [hrnet_config(19)[s]["num_channels"] for s in ("stage2", "stage3", "stage4")] == [
        (19, 38), (19, 38, 76), (19, 38, 76, 152)]
    import timm

    ours, theirs = hrnet_features(18), timm.create_model(
        "hrnet_w18", pretrained=False, features_only=True, feature_location="",
        out_indices=(1, 2, 3, 4))
    # the same keys and shapes: a hrnet_w18 weights file fits both
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()}
    with pytest.raises(ValueError, match="HRNet width=0 is not allowed: expected an integer"):
        hrnet_config(0)


@pytest.mark.parametrize("name, width", [("hrnet_w19", 19), ("hrnet_w20", 20)])
def test_hrnet_w19_w20_features_and_output(name, width):
    model = build_model(name, {"seg": 19})
    x = torch.randn(1, 3, 64, 96)
    feats = model.trunk.backbone(x)
    # branches of C, 2C, 4C, 8C channels at strides 4, 8, 16, 32
    assert [tuple(f.shape[1:]) for f in feats] == [
        (width * 2 ** i, 64 // 4 // 2 ** i, 96 // 4 // 2 ** i) for i in range(4)]
    assert model.trunk.deepest_channels == 8 * width
    assert model(x)["seg"].shape == (1, 19, 64, 96)


def test_sa_capacity_against_the_wider_hrnets():
    """Seed Figure 8: HRNet18-DejaVu-SA against HRNet18/19/20 (docs/presets.md)."""
    sizes = {n: count_parameters(build_model(n, {"seg": 19}))
             for n in ("hrnet_w18", "hrnet_w19", "hrnet_w20", "hrnet_w48")}
    sa = {d: count_parameters(SharedAttention(8 * 18, d)) for d in (32, 64, 128)}
    c = 144  # HRNet-W18's deepest branch
    for d, n in sa.items():  # 1x1 in, layer norm, attention (in + out projections), 1x1 out
        assert n == (c * d + d) + 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * c + c)
    assert sa == {32: 13_680, 64: 35_408, 128: 103_440}
    assert (sizes["hrnet_w18"] < sizes["hrnet_w18"] + sa[128] < sizes["hrnet_w19"]
            < sizes["hrnet_w20"] < sizes["hrnet_w48"])
    assert sizes["hrnet_w19"] == 10_695_294 and sizes["hrnet_w20"] == 11_806_255
    sa64 = count_parameters(build_model("hrnet_w18", {"seg": 19}, attention=64))
    assert sa64 == sizes["hrnet_w18"] + sa[64] == 9_676_257


def test_one_weights_file_for_several_networks(tmp_path):
    w19, w20 = build_model("hrnet_w19", {"seg": 2}), build_model("hrnet_w20", {"seg": 2})
    path = tmp_path / "hrnets.pth"
    torch.save({"hrnet_w19": w19.trunk.backbone.state_dict(),
                "hrnet_w20": {"state_dict": w20.trunk.backbone.state_dict()}}, path)
    for name, source in (("hrnet_w19", w19), ("hrnet_w20", w20)):
        loaded = build_model(name, {"seg": 2}, pretrained=str(path))
        for (k, a), b in zip(source.trunk.backbone.state_dict().items(),
                             loaded.trunk.backbone.state_dict().values(), strict=True):
            assert torch.equal(a, b), (name, k)
    with pytest.raises(ValueError, match=r"does not fit the backbone: .* maps each model.name "
                                         r"\('hrnet_w18' here\) to its state dict"):
        build_model("hrnet_w18", {"seg": 2}, pretrained=str(path))
