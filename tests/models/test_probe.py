"""The latent-action probe on oracle latents (known answer) and the binding metrics by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from latentrl.models.base import LatentActions, States
from latentrl.probe import binding_metrics, latent_features, match_slots, probe
from latentrl.types import CodeBatch
from tests.models.tiny import GRID, TOKENS, random_batch, tiny_config, tiny_model

WINDOWS, T, AGENTS, ACTIONS = 40, 4, 2, 5


class Oracle(nn.Module):
    """A stand-in model whose slot attention and latent codes are given.

    Slot ``slot_of[b, j]`` attends to agent ``j``'s token in every frame of window ``b``, and its
    latent code at transition ``t`` is ``codes_of[b, t, j]``.
    """

    def __init__(self, factored: bool, positions, slot_of, codes_of) -> None:
        super().__init__()
        kind = "flam" if factored else "lam"
        self.config = tiny_config(kind, num_slots=AGENTS, action_levels=(ACTIONS,))
        self.positions, self.slot_of, self.codes_of = positions, slot_of, codes_of

    def encode_states(self, codes: torch.Tensor) -> States:
        b, t = codes.shape[:2]
        if not self.config.factored:
            return States(torch.zeros(b, t, TOKENS, 1), None)
        attn = torch.full((b, t, AGENTS, TOKENS), 0.01)
        tokens = self.positions[..., 1] * GRID + self.positions[..., 0]  # (b, t, a)
        for j in range(AGENTS):
            slot = self.slot_of[:, j][:, None].expand(b, t)
            attn[torch.arange(b)[:, None], torch.arange(t)[None], slot, tokens[..., j]] = 0.9
        return States(torch.zeros(b, t, AGENTS, 1), attn)

    def infer(self, states: torch.Tensor, true_actions: torch.Tensor | None) -> LatentActions:
        if not self.config.factored:
            idx = self.codes_of[..., :1]
        else:
            idx = torch.empty_like(self.codes_of)
            for j in range(AGENTS):
                idx.scatter_(
                    2,
                    self.slot_of[:, None, j : j + 1].expand(-1, T - 1, 1),
                    self.codes_of[..., j : j + 1],
                )
        return LatentActions(idx.float()[..., None], idx, torch.zeros(()))


def labelled_batch(agents: int = AGENTS) -> CodeBatch:
    gen = torch.Generator().manual_seed(0)
    codes = torch.zeros(WINDOWS, T, TOKENS, dtype=torch.long)
    actions = torch.randint(0, ACTIONS, (WINDOWS, T - 1, agents), generator=gen)
    # Distinct cells for the agents of a frame.
    cells = torch.stack(
        [torch.randperm(TOKENS, generator=gen)[:agents] for _ in range(WINDOWS * T)]
    )
    cells = cells.view(WINDOWS, T, agents)
    positions = torch.stack([cells % GRID, cells // GRID], dim=-1)
    return CodeBatch(codes, actions, positions)


def permuted_slots() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.stack([torch.randperm(AGENTS, generator=gen) for _ in range(WINDOWS)])


def test_flam_probe_reads_true_actions_from_matched_slots() -> None:
    batch = labelled_batch()
    slot_of = permuted_slots()
    oracle = Oracle(True, batch.positions, slot_of, batch.actions)
    result = probe(oracle, batch, cell_px=8, token_px=8)  # type: ignore[arg-type]
    assert result.accuracy == pytest.approx(1.0)
    assert result.per_agent == pytest.approx((1.0, 1.0))
    assert 0.15 < result.chance < 0.5
    assert result.own_slot == 1.0 and result.same_slot == 1.0
    assert result.samples == batch.actions.numel()
    assert result.as_dict()["probe_accuracy"] == result.accuracy


def test_flam_probe_falls_to_chance_with_the_wrong_slot() -> None:
    batch = labelled_batch()
    slot_of = permuted_slots()
    # The attention binds agent j to slot_of[j], but the codes sit in the other slot.
    oracle = Oracle(True, batch.positions, slot_of, batch.actions.flip(-1))
    oracle_attn = Oracle(True, batch.positions, slot_of, batch.actions)
    oracle.encode_states = oracle_attn.encode_states  # type: ignore[method-assign]
    result = probe(oracle, batch, cell_px=8, token_px=8)  # type: ignore[arg-type]
    assert result.accuracy < 0.5


def test_probe_is_near_chance_on_uninformative_codes() -> None:
    batch = labelled_batch()
    noise = torch.randint(
        0, ACTIONS, batch.actions.shape, generator=torch.Generator().manual_seed(2)
    )
    result = probe(Oracle(True, batch.positions, permuted_slots(), noise), batch, 8, 8)  # type: ignore[arg-type]
    assert result.accuracy < 0.5


def test_scene_probe_on_a_single_agent() -> None:
    batch = labelled_batch(agents=1)
    batch = batch._replace(positions=None)
    oracle = Oracle(False, None, None, batch.actions)
    result = probe(oracle, batch, cell_px=8, token_px=8)  # type: ignore[arg-type]
    assert result.accuracy == pytest.approx(1.0)
    assert math.isnan(result.own_slot) and math.isnan(result.same_slot)


def test_probe_token_geometry() -> None:
    # Cells of 4 px and tokens of 8 px: cell (2x + 1, 2y + 1) falls in token (x, y).
    batch = labelled_batch()
    slot_of = permuted_slots()
    oracle = Oracle(True, batch.positions, slot_of, batch.actions)
    in_cells = batch._replace(positions=batch.positions * 2 + 1)
    feats, match = latent_features(oracle, in_cells, cell_px=4, token_px=8)  # type: ignore[arg-type]
    assert feats.shape == (WINDOWS, T - 1, AGENTS, ACTIONS)
    assert match is not None and match.shape == (WINDOWS, T, AGENTS)
    torch.testing.assert_close(match, slot_of[:, None].expand(-1, T, -1))
    torch.testing.assert_close(feats.argmax(-1), batch.actions)


def test_match_slots_by_hand() -> None:
    attn = torch.tensor([[0.9, 0.1, 0.5, 0.2], [0.1, 0.9, 0.5, 0.8]]).view(1, 1, 2, 4)
    tokens = torch.tensor([0, 3, 1]).view(1, 1, 3)
    assert match_slots(attn, tokens).tolist() == [[[0, 1, 1]]]


def test_binding_metrics_by_hand() -> None:
    match = torch.tensor([[[0, 1, 2], [0, 0, 2], [0, 0, 2]]])  # (b=1, t=3, a=3)
    own, same = binding_metrics(match)
    # Own slot: 3 of 3, then 1 of 3 twice (agents 0 and 1 share slot 0).
    assert own == pytest.approx(5 / 9)
    # Same slot from t to t+1: agent 1 moves once out of 6 (agent, step) pairs.
    assert same == pytest.approx(5 / 6)
    assert binding_metrics(torch.tensor([[[2], [1]]])) == (1.0, 0.0)
    assert binding_metrics(torch.tensor([[[0, 1]]])) == (1.0, 1.0)


def test_probe_on_a_real_model_and_errors() -> None:
    model = tiny_model("flam", num_slots=3)
    batch = random_batch(b=4, t=3)
    result = probe(model, batch, cell_px=8, token_px=8)
    assert model.training  # restored
    # The figures of this model and batch, recomputed from their definitions.
    assert len(result.per_agent) == 2
    assert result.accuracy == pytest.approx(sum(result.per_agent) / 2)
    held_out = batch.actions[2:]  # the second half of the 4 windows is scored
    shares = [
        torch.bincount(held_out[..., j].flatten()).max() / held_out[..., j].numel() for j in (0, 1)
    ]
    assert result.chance == pytest.approx(float(sum(shares)) / 2)
    _, match = latent_features(model, batch, cell_px=8, token_px=8)
    assert match is not None
    assert (result.own_slot, result.same_slot) == pytest.approx(binding_metrics(match))
    assert result.samples == batch.actions.numel()
    # Each agent's accuracy is a share of its 2 x 2 held-out transitions.
    assert all(round(4 * a) == pytest.approx(4 * a) for a in result.per_agent)
    with pytest.raises(ValueError, match="true actions"):
        probe(model, batch._replace(actions=None), 8, 8)
    with pytest.raises(ValueError, match="positions"):
        probe(model, batch._replace(positions=None), 8, 8)
    with pytest.raises(ValueError, match="at least 2 windows"):
        probe(model, CodeBatch(*(x[:1] for x in batch)), 8, 8)
