"""The planner's goal distance, its search, and its errors (the trained case is in
``test_pipeline_script.py``)."""

from __future__ import annotations

import dataclasses
import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch
from einops import repeat

import envs  # noqa: F401  (registers the MultiGrid ids)
from agents.goal import GoalFrame
from agents.planner import LatentPlanner, PlannerConfig, goal_distance
from latentrl.models import build_model
from latentrl.stages import code_features
from latentrl.tokenizer import Tokenizer, TokenizerConfig
from tests.models.tiny import TINY


def as_float(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1).float() / 255


def test_goal_distance_falls_with_every_step_toward_the_goal() -> None:
    # 4 agents; agent 0 walks along a straight line onto its goal while the others stand still:
    # the distance must fall at every step and reach its minimum on the goal.
    env = gym.make("MultiGrid-Goal-8x8-N4-v0", tile_size=4).unwrapped
    goals = np.array([[6, 3], [1, 1], [1, 6], [6, 6]])
    others = [[2, 2], [2, 5], [5, 5]]
    goal = as_float(env.set_state([[6, 3], *[g.tolist() for g in goals[1:]]], goals)[0])
    dists = []
    for x in range(1, 7):
        frame = env.set_state([[x, 3], *others], goals)[0]
        dists.append(goal_distance(as_float(frame)[None], goal, 4.0).item())
    assert all(b < a for a, b in itertools.pairwise(dists)), dists


def test_goal_distance_is_zero_at_the_goal_and_counts_a_lost_colour_as_far() -> None:
    env = gym.make("MultiGrid-Goal-8x8-N2-v0", tile_size=4).unwrapped
    env.reset(seed=3)
    goal = as_float(env.goal_frame())
    assert goal_distance(goal[None], goal, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    blank = torch.zeros_like(goal)[None]  # every agent colour missing
    frame = as_float(env.set_state(env.agent_pos, env.goal_pos)[0])[None]
    assert goal_distance(blank, goal, 4.0).item() > goal_distance(frame, goal, 4.0).item()


def test_goal_frame_wrapper_gives_the_solved_picture() -> None:
    env = GoalFrame(gym.make("MultiGrid-Goal-8x8-N2-v0", tile_size=4))
    _obs, info = env.reset(seed=0)
    solved = env.unwrapped.set_state(info["goal_pos"], info["goal_pos"])[0]
    assert np.array_equal(info["goal_frame"], solved)
    _, _, _, _, info = env.step(np.zeros(2, np.int64))
    assert np.array_equal(info["goal_frame"], solved)
    with pytest.raises(TypeError, match="goal_frame"):
        GoalFrame(gym.make("CartPole-v1"))


def _tiny_planner(frame_size: int = 16) -> LatentPlanner:
    tok = Tokenizer(
        TokenizerConfig(
            encoder="patch",
            frame_size=frame_size,
            stage_channels=(8, 8),
            z_channels=8,
            fsq_levels=(4, 4),
        )
    )
    cfg = dataclasses.replace(
        TINY,
        grid=tok.config.grid,
        codebook_size=tok.config.codebook_size,
        code_dim=tok.config.z_channels,
    )
    model = build_model(cfg, code_features(tok))  # untrained: the search mechanics only

    def decoder(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return torch.zeros(states.shape[0], 2, 5)

    return LatentPlanner(model, tok, decoder, PlannerConfig(), cell_px=4)


def test_planner_refuses_frames_of_another_size() -> None:
    planner = _tiny_planner(frame_size=16)
    planner.reset(0)
    frame = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="trained on 16x16 frames"):
        planner.act(frame, {"goal_frame": frame})


def test_planner_needs_the_goal_image() -> None:
    planner = _tiny_planner()
    with pytest.raises(KeyError, match="GoalFrame"):
        planner.act(np.zeros((16, 16, 3), np.uint8), {})


def test_per_slot_search_keeps_the_null_action_unless_a_code_scores_better() -> None:
    planner = _tiny_planner()
    planner.reset(0)
    frame = np.zeros((16, 16, 3), np.uint8)
    codes, state = planner._encode(frame)
    null = planner._null_actions(codes, state)
    goal = as_float(frame)
    chosen = planner.plan(state, null, goal)
    assert chosen.shape == null.shape
    best = planner._score(state, chosen, goal)[0]
    assert best <= planner._score(state, null, goal)[0]
    action = planner.act(frame, {"goal_frame": frame})
    assert action.shape == (2,)


def test_only_slots_that_change_a_decoded_action_are_searched() -> None:
    # A decoder that reads slot 1's latent action alone: every other slot cannot change what is
    # executed, so the search must leave them at their null action whatever the score says.
    planner = _tiny_planner()
    # An untrained model's slots all sit at the frame's centre and would form one entity group:
    # grouping off, so that each slot is tried alone (grouping has its own test below).
    planner.config = dataclasses.replace(planner.config, group_cells=0.0)
    scale = torch.arange(5, dtype=torch.float32) - 2.0

    def slot_one_decoder(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        logits = actions[:, 1, :1] * scale  # (b, v): the sign of slot 1's first value decides
        return repeat(logits, "b v -> b a v", a=2)

    planner.decoder = slot_one_decoder
    planner.reset(0)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    codes, state = planner._encode(frame)
    null = planner._null_actions(codes, state)
    active = planner.acting_slots(state, null)
    assert active.tolist() == [k == 1 for k in range(null.shape[1])]
    goal_frame = np.zeros((16, 16, 3), np.uint8)
    goal_frame[4:8, 8:12] = (255, 0, 0)
    goal = as_float(goal_frame)
    chosen = planner.plan(state, null, goal)
    others = [k for k in range(null.shape[1]) if k != 1]
    torch.testing.assert_close(chosen[:, others], null[:, others])


def test_controller_executes_the_real_action_whose_plan_scores_best() -> None:
    # The decoder reads slot 1 alone (a positive first value means action 4, negative action 0);
    # a score that prefers a large first value in slot 1 must make every agent execute 4.
    planner = _tiny_planner()
    planner.config = dataclasses.replace(planner.config, search="controller")
    scale = torch.arange(5, dtype=torch.float32) - 2.0

    def slot_one_decoder(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return repeat(actions[:, 1, :1] * scale, "b v -> b a v", a=2)

    def prefers_slot_one_up(state: torch.Tensor, plans: torch.Tensor, goal: torch.Tensor):
        return -plans[:, 1, 0]

    planner.decoder = slot_one_decoder
    planner._score = prefers_slot_one_up  # type: ignore[method-assign]
    planner.reset(0)
    frame = np.zeros((16, 16, 3), np.uint8)
    frame[4:8, 8:12] = (255, 0, 0)
    action = planner.act(frame, {"goal_frame": frame})
    assert action.tolist() == [4, 4]
    # With the opposite preference the same controller picks action 0.
    planner._score = lambda state, plans, goal: plans[:, 1, 0]  # type: ignore[method-assign]
    assert planner.act(frame, {"goal_frame": frame}).tolist() == [0, 0]


def test_slots_on_one_entity_are_switched_together() -> None:
    # Slots 0 and 1 sit on the same cell (one agent held by two slots), slot 2 elsewhere.
    planner = _tiny_planner()
    d = planner.model.config.d_model
    state = torch.zeros(1, 3, d + 2)
    state[0, :, -2:] = torch.tensor([[1.0, 1.0], [1.2, 1.1], [3.0, 3.0]])
    groups = planner.entity_groups(state)
    assert groups.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    null = torch.zeros(1, 3, planner.codebook.shape[1])
    swaps = planner.single_swaps(null, groups)
    c = planner.codebook.shape[0]
    assert swaps.shape == (3 * c, 3, planner.codebook.shape[1])
    for j in range(c):
        torch.testing.assert_close(swaps[j, 0], planner.codebook[j])  # slot 0 ...
        torch.testing.assert_close(swaps[j, 1], planner.codebook[j])  # ... takes its twin along
        torch.testing.assert_close(swaps[j, 2], null[0, 2])
        torch.testing.assert_close(swaps[2 * c + j, 2], planner.codebook[j])
        torch.testing.assert_close(swaps[2 * c + j, :2], null[0, :2])
    # Without centroid grouping every slot is its own entity.
    planner.config = dataclasses.replace(planner.config, group_cells=0.0)
    assert planner.entity_groups(state).tolist() == torch.eye(3, dtype=torch.bool).tolist()
