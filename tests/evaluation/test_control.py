"""Controllable generation mechanics on tiny untrained models (fast); the behaviour of a trained
FLAM is checked in test_control_trained.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from latentrl.control import (
    Entity,
    HeldOutRun,
    bind_agents,
    code_actions,
    control_actions,
    controlled_rollout,
    dilate_tokens,
    figure_rows,
    generate,
    load_scene,
    locality,
    locality_survey,
    name_slots,
    owned_tokens,
    rollout_attention,
    roomiest_entity,
    scene_entities,
)
from latentrl.data.codes import CodeCache
from latentrl.data.recipes import DatasetSpec
from latentrl.views import labelled_strip, labelled_video
from tests.evaluation.tiny import tiny_tokenizer
from tests.models.tiny import AGENTS, GRID, SLOTS, TOKENS, random_batch, tiny_model


def window(model_kind: str = "flam", steps: int = 4) -> tuple[torch.nn.Module, torch.Tensor]:
    model = tiny_model(model_kind).eval()
    codes = random_batch(b=2, t=steps + 1).codes
    return model, codes


@pytest.mark.parametrize("kind", ["flam", "lam", "oclam"])
def test_uncontrolled_rollout_is_the_models_rollout(kind: str) -> None:
    model, codes = window(kind)
    inferred = model.infer_latent_actions(codes).actions
    ours = controlled_rollout(model, codes[:, :1], inferred)
    theirs = model.rollout(codes[:, :1], inferred)
    assert torch.equal(ours, theirs)


def test_only_the_controlled_slots_get_the_given_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    model, codes = window("flam")
    inferred = model.infer_latent_actions(codes).actions  # (2, 4, K, d_a)
    given = code_actions(model, torch.tensor([[1, 2, 3, 4]] * 2))  # (2, 4, d_a)
    seen: list[torch.Tensor] = []
    original = model.predict_next

    def spy(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        seen.append(actions.clone())
        return original(states, actions)

    monkeypatch.setattr(model, "predict_next", spy)
    controlled_rollout(model, codes[:, :1], inferred, (1,), given)
    steps = torch.stack(seen, dim=1)  # (2, 4, K, d_a)
    assert torch.equal(steps[:, :, 1], given)
    for k in (0, 2):
        assert torch.equal(steps[:, :, k], inferred[:, :, k])


def test_rollout_attention_is_the_rollouts_own_recursion() -> None:
    model, codes = window("flam")
    inferred = model.infer_latent_actions(codes).actions
    generated = controlled_rollout(model, codes[:, :1], inferred)
    attn = rollout_attention(model, codes[:, :1], generated)
    assert attn is not None and attn.shape == (2, 5, SLOTS, TOKENS)
    # Step by step as the rollout encodes: slots of frame i + 1 start from frame i's.
    tokens = model.embed_tokens(generated[:, 0])
    prev = model.encode_states(codes[:, :1]).states[:, -1][..., :-2]
    _, expected = model.factorizer.step(tokens, prev)
    assert torch.allclose(attn[:, 1], expected, atol=1e-6)


def test_clear_errors_for_slots_codes_and_models_without_latent_actions() -> None:
    model, codes = window("flam")
    inferred = model.infer_latent_actions(codes).actions
    given = torch.zeros(2, 4, inferred.shape[-1])
    with pytest.raises(ValueError, match=rf"slot {SLOTS} does not exist.*0\.\.{SLOTS - 1}"):
        controlled_rollout(model, codes[:, :1], inferred, (SLOTS,), given)
    with pytest.raises(ValueError, match=r"code 5 is out of range.*0\.\.4"):
        code_actions(model, torch.tensor([5]))
    with pytest.raises(ValueError, match="one code or 4 codes"):
        control_actions(model, 4, [1, 2])
    lam = tiny_model("lam")
    with pytest.raises(ValueError, match="one scene latent"):
        controlled_rollout(lam, codes[:, :1], lam.infer_latent_actions(codes).actions, (1,), given)
    with pytest.raises(ValueError, match="flam, lam or oclam"):
        code_actions(tiny_model("wm"), torch.tensor([0]))
    with pytest.raises(ValueError, match="continuous"):
        code_actions(tiny_model("flam", action_kind="gaussian"), torch.tensor([0]))


def test_control_actions_repeat_one_code_and_sample_the_prior_reproducibly() -> None:
    model = tiny_model("flam")
    acts, labels = control_actions(model, 3, [2])
    assert labels == ("2", "2", "2")
    assert torch.equal(acts[0], code_actions(model, torch.tensor([2, 2, 2])))
    first = control_actions(model, 6, None, torch.Generator().manual_seed(3))
    again = control_actions(model, 6, None, torch.Generator().manual_seed(3))
    assert first[1] == again[1] and torch.equal(first[0], again[0])
    assert all(0 <= int(c) < 5 for c in first[1])


def test_empirical_prior_draws_only_codes_it_gives_mass() -> None:
    model = tiny_model("flam")
    probs = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0])
    _, labels = control_actions(model, 50, None, torch.Generator().manual_seed(0), probs)
    assert set(labels) == {"1", "3"}


def test_roomiest_entity_prefers_free_cells_then_fewer_slots() -> None:
    entities = [
        Entity("agent 0", (0, 1), 0),
        Entity("agent 1", (2,), 1),
        Entity("agent 2", (3,), 2),
    ]
    # 8 x 8 room (interior cells 1..6): agent 0 in the middle, 1 and 2 in corners.
    cells = torch.tensor([[3, 3], [6, 1], [1, 6]])
    assert roomiest_entity(entities, cells, 8) == 0
    cells = torch.tensor([[3, 3], [6, 1], [4, 4]])  # agent 2 touches agent 0: nobody has room
    assert roomiest_entity(entities, cells, 8) == 1  # first of the one-slot entities
    assert roomiest_entity(entities, None, 8) == 0


def test_bind_agents_groups_the_slots_sharing_an_agent() -> None:
    attn = torch.zeros(4, TOKENS)
    attn[3] = 1.0  # slot 3: the background, every token ...
    attn[:, 5] = torch.tensor([0.0, 0.7, 0.3, 0.0])  # ... but agent 0's, split 0.7 / 0.3 ...
    attn[:, 10] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # ... and agent 1's, alone in slot 0
    tokens = torch.tensor([5, 10])
    grouped = bind_agents(attn, tokens)
    assert [e.slots for e in grouped] == [(1, 2), (0,)]
    assert [e.agent for e in grouped] == [0, 1]
    assert [e.slots for e in bind_agents(attn, tokens, single=True)] == [(1,), (0,)]
    # A near-empty slot whose centroid sits on agent 0 joins it; the big background slot never.
    centroids = torch.tensor([[2.0, 2.0], [1.0, 1.0], [1.0, 1.0], [1.2, 1.1]])
    attn[3] = 0.001
    with_ghost = bind_agents(attn, tokens, centroids=centroids, grid=GRID)
    assert with_ghost[0].slots == (1, 2, 3)
    attn[3] = 1.0
    attn[3, tokens] = 0.0  # the background again: 14 tokens of mass, none of them an agent's
    assert bind_agents(attn, tokens, centroids=centroids, grid=GRID)[0].slots == (1, 2)
    names = [e.name for e in name_slots(attn, tokens, [0, 1, 3])]
    assert names == ["slot 0 (agent 1)", "slot 1 (agent 0)", "slot 3 (background)"]


def test_owned_tokens_and_dilation() -> None:
    attn = torch.zeros(1, 3, TOKENS)
    attn[0, 0] = 1.0
    attn[0, 1, 5] = 2.0
    assert owned_tokens(attn, [1]).nonzero()[:, 1].tolist() == [5]
    grown = dilate_tokens(owned_tokens(attn, [1]), GRID, 1)
    # Token 5 is (row 1, col 1) on the 4 x 4 grid: its 8-neighbourhood is rows/cols 0-2.
    assert sorted(grown.nonzero()[:, 1].tolist()) == [0, 1, 2, 4, 5, 6, 8, 9, 10]


def test_locality_counts_changed_pixels_outside_the_mask() -> None:
    reference = np.zeros((2, 16, 16, 3), np.uint8)
    controlled = reference.copy()
    controlled[:, 4:8, 4:8] = 200  # token 5 of the 4 x 4 token grid changed
    here = torch.zeros(2, TOKENS, dtype=torch.bool)
    here[:, 5] = True
    local = locality(controlled, reference, here, GRID, radius=0)
    assert local.changed_outside == 0.0 and local.changed_inside == 1.0
    elsewhere = torch.zeros(2, TOKENS, dtype=torch.bool)
    elsewhere[:, 15] = True
    far = locality(controlled, reference, elsewhere, GRID, radius=0)
    assert far.changed_outside == pytest.approx(1 / 15)
    # One token of margin covers a neighbour; the far corner is two tokens away.
    assert locality(controlled, reference, elsewhere, GRID, radius=1).changed_outside > 0


def held_out_run(kind: str, tmp_path: Path) -> HeldOutRun:
    """A tiny model and tokenizer with a random code cache of 2 episodes of 7 frames."""
    batch = random_batch(b=2, t=7, seed=4)
    cache = CodeCache(
        codes=batch.codes.flatten(0, 1).numpy(),
        episode_starts=np.array([0, 7, 14]),
        actions=torch.cat([batch.actions, -torch.ones(2, 1, AGENTS, dtype=torch.long)], 1)
        .flatten(0, 1)
        .numpy(),
        positions=batch.positions.flatten(0, 1).numpy(),
    )
    data = DatasetSpec(env="multigrid", agents=AGENTS, size=GRID, tile_size=4)
    return HeldOutRun(tmp_path, tiny_model(kind).eval(), tiny_tokenizer(), data, cache, "test")


@pytest.mark.parametrize("kind", ["flam", "lam"])
def test_generation_rows_and_figures(kind: str, tmp_path: Path) -> None:
    run = held_out_run(kind, tmp_path)
    scene = load_scene(run, episode=1, start=1, steps=4)
    entities = scene_entities(run, scene, ["agents"])
    gen = generate(run, scene, entities, seed=0)
    if kind == "lam":
        assert [e.slots for e in entities] == [(0,)] and "one latent action per scene" in gen.note
    else:
        assert [e.agent for e in entities] == list(range(AGENTS))
    assert len(gen.per_code) == 5  # the tiny models' FSQ [5]
    entity_rows, code_rows = figure_rows(gen, run.model.config.factored)
    assert len(entity_rows) == 2 + len(entities) and len(code_rows) == 1 + 5
    assert all(r.frames.shape == (5, 16, 16, 3) for r in entity_rows + code_rows)
    video, strip = labelled_video(entity_rows), labelled_strip(entity_rows, title="t")
    assert video.dtype == np.uint8 and video.shape[0] == 5 and video.shape[-1] == 3
    assert strip.ndim == 3 and strip.shape[1] > 5 * 16 * 4
    with pytest.raises(ValueError, match=r"--start 3 --steps 4"):
        load_scene(run, episode=0, start=3, steps=4)
    with pytest.raises(ValueError, match=r"--episode 0\.\.1"):
        load_scene(run, episode=2, start=0, steps=2)


def test_entities_from_slot_indices(tmp_path: Path) -> None:
    run = held_out_run("flam", tmp_path)
    scene = load_scene(run, episode=0, start=0, steps=3)
    assert [e.slots for e in scene_entities(run, scene, ["all"])] == [(k,) for k in range(SLOTS)]
    assert [e.slots for e in scene_entities(run, scene, ["2"])] == [(2,)]
    with pytest.raises(ValueError, match="slot 7 does not exist"):
        scene_entities(run, scene, ["7"])
    with pytest.raises(ValueError, match="'agents', 'all' or slot indices"):
        scene_entities(run, scene, ["x"])
    assert isinstance(Entity("e", (0,)), Entity)


def test_locality_survey_averages_agents_and_the_every_slot_contrast(tmp_path: Path) -> None:
    survey = locality_survey(held_out_run("flam", tmp_path), episodes=5, steps=3)
    assert survey["episodes"] == 2 and survey["steps"] == 3
    for key in ("one_entity", "every_slot"):
        assert set(survey[key]) == {"changed_inside", "changed_outside", "mask_fraction"}
        # None: a region that is always empty (on a 4 x 4 grid, one token of margin around an
        # untrained slot's tokens often covers the whole frame: no "outside" to average).
        assert all(v is None or 0.0 <= v <= 1.0 for v in survey[key].values())
        assert survey[key]["mask_fraction"] is not None
    # Same samples, same masks: the masks cover the same share of the frame in both.
    assert survey["one_entity"]["mask_fraction"] == survey["every_slot"]["mask_fraction"]
    with pytest.raises(ValueError, match="no slots"):
        locality_survey(held_out_run("lam", tmp_path), episodes=1, steps=2)
