"""Checkpoints: exact model + optimizer round trip, and a failed save leaves the old one whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import latentrl.checkpoint as checkpoint
from latentrl.checkpoint import load_checkpoint, save_checkpoint
from tests.models.tiny import random_batch, tiny_model


def trained_pair(steps: int = 2):
    model = tiny_model("lam")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for i in range(steps):
        opt.zero_grad()
        model.loss(random_batch(seed=i))[0].backward()
        opt.step()
    return model, opt


def test_model_and_optimizer_round_trip(tmp_path: Path) -> None:
    model, opt = trained_pair()
    save_checkpoint(tmp_path / "latest", model, opt, {"step": 2, "note": "x"})
    assert json.loads((tmp_path / "latest" / "state.json").read_text())["state"]["step"] == 2
    other = tiny_model("lam", seed=1)
    other_opt = torch.optim.AdamW(other.parameters(), lr=1e-2)
    assert load_checkpoint(tmp_path / "latest", other, other_opt) == {"step": 2, "note": "x"}
    for (name, a), (_, b) in zip(
        model.state_dict().items(), other.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    # One more identical step from both: the optimizer moments came back exactly.
    for m, o in ((model, opt), (other, other_opt)):
        o.zero_grad()
        m.loss(random_batch(seed=9))[0].backward()
        o.step()
    for (name, a), (_, b) in zip(
        model.state_dict().items(), other.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_failed_save_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, opt = trained_pair(1)
    folder = tmp_path / "latest"
    save_checkpoint(folder, model, opt, {"step": 1})
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    model2, opt2 = trained_pair(2)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", broken)  # every write into the new folder fails
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(folder, model2, opt2, {"step": 2})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]  # no half-written sibling
    restored = tiny_model("lam", seed=3)
    assert load_checkpoint(folder, restored) == {"step": 1}
    for name, value in reference.items():
        assert torch.equal(restored.state_dict()[name], value), name


def test_overwrite_replaces_the_checkpoint(tmp_path: Path) -> None:
    model, opt = trained_pair(1)
    save_checkpoint(tmp_path / "latest", model, opt, {"step": 1})
    save_checkpoint(tmp_path / "latest", model, None, {"step": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]
    assert not (tmp_path / "latest" / "optimizer.safetensors").exists()
    assert load_checkpoint(tmp_path / "latest", tiny_model("lam")) == {"step": 2}
