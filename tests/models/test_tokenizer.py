"""The frame tokenizer: shapes, FSQ index -> feature round trip, safetensors persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from latentrl.checkpoint import load_weights, save_weights
from latentrl.tokenizer import Tokenizer, TokenizerConfig

TINY_TOK = TokenizerConfig(frame_size=16, stage_channels=(4, 8), z_channels=8, fsq_levels=(4, 4))


def test_config_geometry() -> None:
    assert TINY_TOK.downsample == 4
    assert TINY_TOK.grid == 4 and TINY_TOK.num_tokens == 16
    assert TINY_TOK.codebook_size == 16
    with pytest.raises(ValueError, match="not divisible"):
        TokenizerConfig(frame_size=18, stage_channels=(4, 8))


def test_encode_decode_shapes() -> None:
    tok = Tokenizer(TINY_TOK)
    frames = torch.rand(3, 3, 16, 16)
    z_q, idx = tok.encode(frames)
    assert z_q.shape == (3, 16, 8)
    assert idx.shape == (3, 16) and idx.dtype == torch.long
    assert idx.min() >= 0 and idx.max() < 16
    assert tok.decode(z_q).shape == (3, 3, 16, 16)
    recon, idx2 = tok(frames)
    assert recon.shape == frames.shape
    torch.testing.assert_close(idx2, idx)
    images = tok.decode_indices(idx)
    assert images.shape == (3, 3, 16, 16)
    assert images.min() >= 0.0 and images.max() <= 1.0


def test_features_from_indices_equal_the_quantized_features() -> None:
    tok = Tokenizer(TINY_TOK)
    z_q, idx = tok.encode(torch.rand(3, 3, 16, 16))
    torch.testing.assert_close(tok.features_from_indices(idx), z_q, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(tok.decode_indices(idx), tok.decode(z_q).clamp(0, 1))


def test_features_from_indices_keep_leading_axes() -> None:
    tok = Tokenizer(TINY_TOK)
    idx = torch.randint(0, 16, (2, 3, 16))  # (b, t, n): three axes, not an image
    feats = tok.features_from_indices(idx)
    assert feats.shape == (2, 3, 16, 8)
    torch.testing.assert_close(feats[1, 2], tok.features_from_indices(idx[1, 2]))
    table = tok.features_from_indices(torch.arange(16))
    assert table.shape == (16, 8)
    torch.testing.assert_close(feats, table[idx])


def test_loss_and_metrics() -> None:
    tok = Tokenizer(TINY_TOK)
    frames = torch.rand(2, 3, 16, 16)
    loss, metrics = tok.loss(frames)
    recon, idx = tok(frames)
    assert loss.item() == pytest.approx(((recon - frames) ** 2).mean().item(), rel=1e-5)
    assert all(isinstance(v, torch.Tensor) and v.shape == () for v in metrics.values())
    assert metrics["mse"].item() == pytest.approx(loss.item())
    assert metrics["codebook_usage"].item() == pytest.approx(idx.unique().numel() / 16)
    clamped = ((recon.clamp(0, 1) - frames) ** 2).mean().item()
    assert metrics["psnr"].item() == pytest.approx(
        -10 * torch.log10(torch.tensor(clamped)).item(), rel=1e-4
    )


def test_save_load_weights_identical(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tok = Tokenizer(TINY_TOK).eval()
    path = tmp_path / "tok" / "model.safetensors"
    save_weights(tok, path)
    assert path.is_file() and not list(path.parent.glob(".*tmp*"))
    torch.manual_seed(1)
    other = Tokenizer(TINY_TOK).eval()
    frames = torch.rand(2, 3, 16, 16)
    assert not torch.allclose(other(frames)[0], tok(frames)[0])
    load_weights(other, path)
    for (name, a), (_, b) in zip(tok.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    recon_a, idx_a = tok(frames)
    recon_b, idx_b = other(frames)
    assert torch.equal(idx_a, idx_b)
    assert torch.equal(recon_a, recon_b)


def test_load_weights_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_weights(Tokenizer(TINY_TOK), tmp_path / "absent.safetensors")
