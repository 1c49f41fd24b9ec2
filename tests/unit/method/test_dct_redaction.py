import math

import pytest
import torch

from dejavu_tune.config import RedactionConfig
from dejavu_tune.method.dct import block_dct, block_idct, dct_matrix, frequency_radius
from dejavu_tune.method.redaction import (
    REDACTIONS,
    build_redaction,
    checkerboard,
    random_blocks,
    spectral,
    spectral_keep_mask,
)


def test_dct_matrix_is_orthonormal_and_matches_hand_values():
    d = dct_matrix(4, torch.float64)
    assert torch.allclose(d @ d.T, torch.eye(4, dtype=torch.float64), atol=1e-12)
    # Row 0 is the constant 1/sqrt(n); row 1 at n=4: sqrt(1/2) * cos(pi (2i+1) / 8).
    assert torch.allclose(d[0], torch.full((4,), 0.5, dtype=torch.float64))
    expected = [math.sqrt(0.5) * math.cos(math.pi * (2 * i + 1) / 8) for i in range(4)]
    assert torch.allclose(d[1], torch.tensor(expected, dtype=torch.float64))


def test_block_dct_round_trip_and_parseval():
    x = torch.randn(2, 3, 16, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    coef = block_dct(x, 8)
    assert coef.shape == (2, 3, 2, 3, 8, 8)
    assert torch.allclose(block_idct(coef), x, atol=1e-12)
    # Orthonormal transform preserves energy.
    assert torch.allclose(coef.square().sum(), x.square().sum())


def test_constant_block_has_only_dc():
    x = torch.full((1, 1, 4, 4), 2.0, dtype=torch.float64)
    coef = block_dct(x, 4)[0, 0, 0, 0]
    assert coef[0, 0].item() == pytest.approx(8.0)  # 2 * 4 (sum / sqrt(16) * 4)
    coef[0, 0] = 0
    assert coef.abs().max().item() < 1e-12


def test_frequency_radius_corners():
    r = frequency_radius(8)
    assert r[0, 0] == 0 and r[7, 7] == 1 and r[0, 7] == pytest.approx(0.5)


def test_checkerboard_exact_pattern_b2_phase0_and_phase1():
    images = torch.ones(2, 1, 4, 6)
    out = checkerboard(images, block_size=2, fill=0.0, phase=torch.tensor([0, 1]))
    # Block (i, j) redacted when (i + j) % 2 == phase.
    phase0 = torch.tensor([[0, 0, 1, 1, 0, 0],
                           [0, 0, 1, 1, 0, 0],
                           [1, 1, 0, 0, 1, 1],
                           [1, 1, 0, 0, 1, 1]], dtype=torch.float32)
    assert torch.equal(out[0, 0], phase0)
    assert torch.equal(out[1, 0], 1 - phase0)


def test_checkerboard_partial_edge_blocks():
    # 5x5 with b=2: the last row/column are half blocks of the 3x3 block grid.
    out = checkerboard(torch.ones(1, 1, 5, 5), block_size=2, phase=torch.tensor([0]))
    assert out[0, 0, 4].tolist() == [0, 0, 1, 1, 0]
    assert out[0, 0, :, 4].tolist() == [0, 0, 1, 1, 0]


def test_checkerboard_phase_is_drawn_per_image_and_seeded():
    images = torch.ones(64, 1, 4, 4)
    a = checkerboard(images, torch.Generator().manual_seed(3), block_size=2)
    b = checkerboard(images, torch.Generator().manual_seed(3), block_size=2)
    assert torch.equal(a, b)
    phases = a[:, 0, 0, 0]  # pixel (0, 0) is redacted exactly when phase == 0
    assert 0 < int((phases == 0).sum()) < 64


def test_random_blocks_fraction_converges_to_threshold():
    images = torch.ones(256, 1, 64, 64)
    gen = torch.Generator().manual_seed(0)
    for t in (0.0, 0.25, 0.4, 1.0):
        out = random_blocks(images, gen, block_size=8, threshold=t, fill=0.0)
        fraction = (out == 0).float().mean().item()
        assert fraction == pytest.approx(t, abs=0.01)  # 16384 blocks: sd ~ 0.004


def test_random_blocks_masks_whole_blocks_with_fill_and_is_reproducible():
    images = torch.randn(4, 3, 32, 32)
    a = random_blocks(images, torch.Generator().manual_seed(1), block_size=8, threshold=0.5,
                      fill=-1.0)
    b = random_blocks(images, torch.Generator().manual_seed(1), block_size=8, threshold=0.5,
                      fill=-1.0)
    assert torch.equal(a, b)
    redacted = (a == -1.0).all(dim=1)  # all channels filled
    blocks = redacted.view(4, 4, 8, 4, 8)
    per_block = blocks.float().mean(dim=(2, 4))
    assert set(per_block.unique().tolist()) <= {0.0, 1.0}  # never part of a block
    kept = ~redacted.unsqueeze(1).expand_as(a)
    assert torch.equal(a[kept], images[kept])


@pytest.mark.parametrize("kind", ["lowpass", "highpass", "bandstop"])
def test_spectral_filters_zero_in_band_and_keep_out_of_band(kind):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = spectral(x, kind=kind, block_size=8, cutoff=0.3, band_low=0.2, band_high=0.6)
    keep = spectral_keep_mask(kind, 8, cutoff=0.3, band_low=0.2, band_high=0.6).bool()
    before, after = block_dct(x, 8), block_dct(out, 8)
    assert torch.allclose(after[..., keep], before[..., keep], atol=1e-10)
    assert after[..., ~keep].abs().max().item() < 1e-10
    assert 0 < int(keep.sum()) < 64


def test_spectral_band_edges_by_hand():
    r = frequency_radius(4)  # (u + v) / 6
    assert torch.equal(spectral_keep_mask("lowpass", 4, cutoff=0.5).bool(), r < 0.5)
    assert torch.equal(spectral_keep_mask("highpass", 4, cutoff=0.5).bool(), r >= 0.5)
    stop = spectral_keep_mask("bandstop", 4, band_low=1 / 6, band_high=3 / 6)
    # u + v in {1, 2} removed: 2 + 3 coefficients.
    assert int((stop == 0).sum()) == 5 and stop[0, 0] == 1 and stop[0, 3] == 1


def test_spectral_on_size_not_multiple_of_block():
    x = torch.randn(1, 3, 19, 23)
    out = spectral(x, kind="lowpass", block_size=8, cutoff=0.0)
    assert out.shape == x.shape
    # cutoff 0 removes every coefficient, DC included: everything becomes 0.
    assert out.abs().max().item() < 1e-5


def test_lowpass_keeping_only_dc_gives_block_means():
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    out = spectral(x, kind="lowpass", block_size=4, cutoff=1e-9)
    means = x.view(1, 1, 2, 4, 2, 4).mean(dim=(3, 5))
    assert torch.allclose(out.view(1, 1, 2, 4, 2, 4), means[:, :, :, None, :, None]
                          .expand(1, 1, 2, 4, 2, 4))


def test_every_kind_builds_and_keeps_shape():
    assert sorted(REDACTIONS) == sorted(["random_blocks", "checkerboard", "lowpass",
                                         "highpass", "bandstop"])
    x = torch.randn(2, 3, 30, 30)
    for kind in REDACTIONS:
        out = build_redaction(RedactionConfig(kind=kind, block_size=8))(x,
                                                                        torch.Generator())
        assert out.shape == x.shape and out.dtype == x.dtype
