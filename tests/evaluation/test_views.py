"""Latent-action views: DCI and correspondence on inputs with known answers, overlays, grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from envs.multigrid.core import Action
from latentrl.views import (
    MULTIGRID_ACTION_NAMES,
    UNBOUND,
    Row,
    SlotLatents,
    align_factors,
    attention_overlay,
    bound_agent,
    code_action_counts,
    code_meanings,
    dci,
    dci_scores,
    labelled_strip,
    labelled_video,
    match_fraction,
    slot_colours,
    slot_latents,
    training_views,
)
from tests.evaluation.tiny import tiny_tokenizer
from tests.models.tiny import random_batch, tiny_model


def test_dci_scores_of_known_importance_matrices() -> None:
    d, c, per = dci_scores(np.eye(4))
    assert d == pytest.approx(1.0) and c == pytest.approx(1.0) and per == pytest.approx([1.0] * 4)
    d, c, _ = dci_scores(np.ones((4, 4)))
    assert d == pytest.approx(0.0, abs=1e-12) and c == pytest.approx(0.0, abs=1e-12)
    # Spare factors that explain nothing do not count; a permutation is still disentangled.
    spare = np.zeros((6, 4))
    spare[[5, 0, 3, 1], [0, 1, 2, 3]] = 1.0
    assert dci_scores(spare)[:2] == pytest.approx((1.0, 1.0))
    # One factor explaining every agent: not disentangled, but complete.
    mono = np.zeros((3, 4))
    mono[0] = 1.0
    assert dci_scores(mono)[:2] == pytest.approx((0.0, 1.0), abs=1e-12)
    # Half of factor 0 on agent 0, half on agent 1, the rest one-to-one: D = 1 - weight * H.
    mixed = np.eye(3)
    mixed[0] = [0.5, 0.5, 0.0]
    d, _, per = dci_scores(mixed)
    h = 1.0 / np.log2(3)  # entropy of (1/2, 1/2) in log base 3
    assert per[0] == pytest.approx(1 - h)
    assert d == pytest.approx((1.0 * (1 - h) + 1.0 + 1.0) / 3.0)
    assert all(np.isnan(v) for v in dci_scores(np.zeros((2, 2)))[:2])


def synthetic_latents(b: int, s: int, perfect: bool, seed: int = 0) -> SlotLatents:
    """3 factors, 2 agents, FSQ codes: factor k < 2 copies agent k's action (perfect) or every
    factor sees a mix; factor 2 is noise."""
    gen = torch.Generator().manual_seed(seed)
    actions = torch.randint(0, 5, (b, s, 2), generator=gen)
    noise = torch.randint(0, 5, (b, s), generator=gen)
    if perfect:
        codes = torch.stack([actions[..., 0], actions[..., 1], noise], dim=-1)
    else:
        # Each factor carries both agents' actions (a joint code): entangled.
        joint = actions[..., 0] * 5 + actions[..., 1]
        codes = torch.stack([joint, joint, noise], dim=-1) % 25
    return SlotLatents(
        features=F.one_hot(codes, 25).float(),
        actions=F.one_hot(codes, 25).float(),
        codes=codes,
        attn=None,
        match=None,
        true_actions=actions,
        agent_tokens=torch.zeros(b, s + 1, 2, dtype=torch.long),
        factored=True,
        num_codes=25,
    )


@pytest.mark.parametrize("predictor", ["gbt", "logistic"])
def test_dci_recovers_a_disentangled_code_and_flags_an_entangled_one(predictor: str) -> None:
    good = dci(synthetic_latents(40, 8, True), aligned=False, predictor=predictor)  # type: ignore[arg-type]
    assert good.importance.shape == (3, 2)
    assert np.allclose(good.importance.sum(0), 1.0)
    assert good.disentanglement > 0.9 and min(good.informativeness) > 0.95
    assert all(0.2 <= c < 0.5 for c in good.chance)  # 5 uniform actions
    assert good.importance[0, 0] > 0.9 and good.importance[1, 1] > 0.9
    bad = dci(synthetic_latents(40, 8, False), aligned=False, predictor=predictor)  # type: ignore[arg-type]
    assert bad.disentanglement < 0.5


def test_match_fraction_columns_sum_to_one() -> None:
    match = torch.tensor([[[0, 2], [0, 2], [1, 2], [0, 0]]])  # (b=1, t=4, a=2)
    frac = match_fraction(match, 3)
    assert frac.shape == (3, 2)
    assert np.allclose(frac.sum(0), 1.0)
    assert frac[:, 0] == pytest.approx([0.75, 0.25, 0.0])
    assert frac[:, 1] == pytest.approx([0.25, 0.0, 0.75])


def test_align_factors_is_one_to_one_even_when_agents_prefer_one_slot() -> None:
    attn0 = torch.zeros(1, 4, 6)
    attn0[0, 2, 0] = 0.9  # agent 0 (token 0): slot 2 ...
    attn0[0, 2, 1] = 0.6  # agent 1 (token 1): also slot 2 most, but slot 0 next
    attn0[0, 0, 1] = 0.4
    order = align_factors(attn0, torch.tensor([[0, 1]]))
    assert order.tolist() == [[2, 0, 1, 3]]
    with pytest.raises(ValueError, match="K >= agents"):
        align_factors(torch.zeros(1, 1, 6), torch.tensor([[0, 1]]))


def test_bound_agent_and_code_counts() -> None:
    # 1 window, 2 frames, 3 slots, 2 agents on tokens 0 and 1; slot 1 holds agent 0, slot 2
    # holds agent 1, slot 0 nobody.
    attn = torch.zeros(1, 2, 3, 4)
    attn[:, :, 1, 0] = 1.0
    attn[:, :, 2, 1] = 1.0
    attn[:, :, 0, 2:] = 1.0
    lat = SlotLatents(
        features=torch.zeros(1, 1, 3, 4),
        actions=torch.zeros(1, 1, 3, 2),
        codes=torch.tensor([[[7, 3, 3]]]),
        attn=attn,
        match=torch.tensor([[[1, 2], [1, 2]]]),
        true_actions=torch.tensor([[[4, 1]]]),
        agent_tokens=torch.tensor([[[0, 1], [0, 1]]]),
        factored=True,
        num_codes=9,
    )
    assert bound_agent(lat).tolist() == [[[UNBOUND, 0, 1]]]
    counts = code_action_counts(lat, 9, 5)
    assert counts[3].tolist() == [0, 1, 0, 0, 1, 0] and counts[7].tolist() == [0] * 5 + [1]
    meanings = code_meanings(counts, MULTIGRID_ACTION_NAMES)
    assert meanings[3] == "up 50%, n=2" and meanings[7] == "unused by agents"


def test_action_names_follow_the_environment() -> None:
    assert tuple(a.name.lower() for a in Action) == MULTIGRID_ACTION_NAMES


def test_attention_overlay_tints_each_slots_pixels_with_its_colour() -> None:
    frames = np.full((2, 8, 8, 3), 100, np.uint8)
    attn = torch.zeros(2, 3, 4)  # a 2 x 2 token grid: 4 px per token
    attn[:, 0, 0] = attn[:, 1, 1] = attn[:, 2, 2:] = 1.0
    out = attention_overlay(frames, attn, alpha=0.5)
    colours = slot_colours(3).astype(np.float32)
    assert out.shape == frames.shape and out.dtype == np.uint8
    expected = np.round(0.5 * 100 + 0.5 * colours)
    assert np.array_equal(out[0, 0, 0], expected[0])  # top-left token: slot 0
    assert np.array_equal(out[1, 0, 7], expected[1])  # top-right token: slot 1
    assert np.array_equal(out[0, 7, 3], expected[2])  # bottom row: slot 2


def test_labelled_grids_have_one_frame_per_step() -> None:
    video = np.zeros((3, 8, 8, 3), np.uint8)
    rows = [Row("a", video, ("x", "y", "z")), Row("b\nc", video)]
    strip = labelled_strip(rows, scale=2, label_width=50, title="title")
    assert strip.dtype == np.uint8 and strip.shape[1] == 50 + 3 * (16 + 4)
    animated = labelled_video(rows, scale=2, label_width=50)
    assert animated.shape == (3, 2 * (16 + 4), 50 + 16, 3)


@pytest.mark.parametrize("kind", ["flam", "lam"])
def test_training_views_are_images(kind: str) -> None:
    model, tok = tiny_model(kind), tiny_tokenizer()
    batch = random_batch(b=6, t=3)
    views = training_views(model, tok, batch, cell_px=4, token_px=4)
    assert ("attention" in views) == (kind == "flam")
    image = views["correspondence"]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
    if kind == "flam":
        assert views["attention"].shape[0] == 3 and views["attention"].shape[-1] == 3


def test_slot_latents_need_labels() -> None:
    with pytest.raises(ValueError, match="true actions and agent positions"):
        slot_latents(tiny_model("flam"), random_batch().without_labels(), 4, 4)
    with pytest.raises(ValueError, match="flam, lam or oclam"):
        slot_latents(tiny_model("wm"), random_batch(), 4, 4)
