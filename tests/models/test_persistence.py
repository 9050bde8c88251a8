"""Save/load, same-seed determinism and input immutability of every latent action model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from latentrl.errors import ArtifactError
from latentrl.models import LatentActionModel
from latentrl.types import CodeBatch
from tests.models.tiny import KINDS, random_batch, tiny_model


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_gives_identical_rollouts_and_losses(kind: str, tmp_path: Path) -> None:
    model = tiny_model(kind, aggregator="autoregressive" if kind == "flam" else "parallel").eval()
    batch = random_batch(b=2, t=3)
    actions = model.sample_latent_actions(2, 3, torch.Generator().manual_seed(5))
    model.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"config.json", "model.safetensors"}
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"] == kind
    loaded = LatentActionModel.load(tmp_path / "m")
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    assert not loaded.training
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    # The code feature table travels with the weights (load builds with zeros).
    assert loaded.aggregator.code_features.abs().sum() > 0
    assert torch.equal(
        loaded.rollout(batch.codes[:, :2], actions), model.rollout(batch.codes[:, :2], actions)
    )
    with torch.no_grad():
        assert torch.equal(loaded.loss(batch)[0], model.loss(batch)[0])


def test_load_refuses_a_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no model config"):
        LatentActionModel.load(tmp_path)


def test_load_refuses_weights_of_another_architecture(tmp_path: Path) -> None:
    tiny_model("flam").save(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(
        (tmp_path / "m" / "config.json").read_text().replace('"flam"', '"lam"')
    )
    with pytest.raises(ArtifactError, match=re.escape(str(tmp_path / "m" / "model.safetensors"))):
        LatentActionModel.load(tmp_path / "m")


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_first_losses(kind: str) -> None:
    batch = random_batch(b=2, t=3)
    losses = []
    for seed in (0, 0, 1):
        model = tiny_model(kind, seed=seed, action_kind="gaussian")
        torch.manual_seed(7)  # the bottleneck's sampling noise
        losses.append(model.loss(batch)[0].item())
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]


def test_same_seed_same_gaussian_noise_only() -> None:
    model = tiny_model("flam", action_kind="gaussian")
    batch = random_batch(b=2, t=3)
    torch.manual_seed(3)
    a = model.loss(batch)[0]
    torch.manual_seed(3)
    b = model.loss(batch)[0]
    torch.manual_seed(4)
    c = model.loss(batch)[0]
    assert a.item() == b.item() != c.item()


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_rollout(kind: str) -> None:
    codes = random_batch(b=2, t=2).codes
    outs = []
    for _ in range(2):
        model = tiny_model(kind, seed=3).eval()
        actions = model.sample_latent_actions(2, 3, torch.Generator().manual_seed(9))
        outs.append(model.rollout(codes, actions))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("kind", KINDS)
def test_loss_does_not_modify_its_input_batch(kind: str) -> None:
    model = tiny_model(kind, pred_steps=2)
    batch = random_batch(b=2, t=4)
    before = CodeBatch(*(x.clone() for x in batch))
    loss, _ = model.loss(batch)
    loss.backward()
    model.rollout(batch.codes[:, :2], model.sample_latent_actions(2, 2))
    model.infer_latent_actions(batch.codes, batch.actions)
    for name, x, y in zip(CodeBatch._fields, batch, before, strict=True):
        assert torch.equal(x, y), name
