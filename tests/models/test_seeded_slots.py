"""Seeded first-frame slots: farthest-point seeds land on distinct-looking tokens, and an
untrained seeded factorizer already gives each entity its own slot where learned init does not."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from latentrl.models import build_model
from latentrl.models.config import ModelConfig
from latentrl.nn.slot_attention import SlotAttention, farthest_point_seeds
from latentrl.probe import binding_metrics, match_slots

GRID = 8
LOOKS = 8  # 0 floor, 1 wall, 2.. entities


def scene(batch: int, entities: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes ``(b, 1, 64)`` of walled rooms with ``entities`` distinct-looking entities on the
    floor, and the entities' token indices ``(b, 1, entities)``."""
    gen = torch.Generator().manual_seed(seed)
    codes = torch.zeros(batch, GRID, GRID, dtype=torch.long)
    codes[:, 0], codes[:, -1], codes[:, :, 0], codes[:, :, -1] = 1, 1, 1, 1
    inner = torch.tensor([r * GRID + c for r in range(1, GRID - 1) for c in range(1, GRID - 1)])
    where = torch.stack(
        [inner[torch.randperm(len(inner), generator=gen)[:entities]] for _ in range(batch)]
    )
    flat = codes.flatten(1)
    flat.scatter_(1, where, torch.arange(2, 2 + entities).expand(batch, -1))
    return flat[:, None], where[:, None]


def test_farthest_point_seeds_take_every_distinct_look_first() -> None:
    looks = torch.eye(LOOKS)
    codes, where = scene(16, 4, seed=0)
    coords = torch.stack(torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij"), -1)
    pos = coords.reshape(-1, 2).float() * (0.5 / GRID)
    feats = torch.cat([looks[codes[:, 0]], pos.expand(16, -1, -1)], dim=-1)
    seeds = farthest_point_seeds(feats, 6)  # 4 entities + floor + wall
    for b in range(16):
        assert set(where[b, 0].tolist()) <= set(seeds[b].tolist())
    assert torch.equal(seeds, farthest_point_seeds(feats, 6))  # deterministic


def test_more_seeds_than_tokens_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at most 4 slots"):
        farthest_point_seeds(torch.randn(1, 4, 3), 5)


def test_seeded_init_needs_seed_features() -> None:
    sa = SlotAttention(num_slots=3, dim=8, d_in=8, init="seeded")
    with pytest.raises(ValueError, match="seed_features"):
        sa(torch.randn(1, 5, 8), None, iters=1)


@pytest.mark.parametrize("entities", [4, 8])
def test_untrained_seeded_factorizer_gives_each_entity_its_own_slot(entities: int) -> None:
    cfg = ModelConfig(
        num_slots=entities + 8,
        slot_iters_first=2,
        codebook_size=LOOKS + 8,
        code_dim=16,
        grid=GRID,
        subtokens=(4, 4),
    )
    features = torch.randn(LOOKS + 8, 16, generator=torch.Generator().manual_seed(1))
    codes, where = scene(64, entities, seed=2)
    own = {}
    for init in ("learned", "seeded"):
        torch.manual_seed(0)
        model = build_model(dataclasses.replace(cfg, slot_init=init), features).eval()
        with torch.no_grad():
            attn = model.encode_states(codes).attn
        assert attn is not None
        own[init] = binding_metrics(match_slots(attn, where))[0]
    assert own["seeded"] >= 0.97, own
    assert own["seeded"] > own["learned"] + 0.2, own
