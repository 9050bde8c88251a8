"""The planner's goal distance, its search, and its errors (the trained case is in
``test_pipeline_script.py``)."""

from __future__ import annotations

import dataclasses
import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch
from einops import rearrange, repeat

import envs  # noqa: F401  (registers the MultiGrid ids)
from agents.entities import entity_goal
from agents.goal import GoalFrame
from agents.planner import LatentPlanner, PlanGoal, PlannerConfig, goal_distance, goal_palette
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


def _entity_frames(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A frame with one red agent in cell (1, 1) and its goal image with it in cell (1, 3)
    (4-pixel cells, the agent filling the middle 2 x 2 pixels)."""
    frame = np.zeros((size, size, 3), np.uint8)
    goal = frame.copy()
    frame[5:7, 5:7] = (255, 45, 0)
    goal[5:7, 13:15] = (255, 45, 0)
    return frame, goal


def _tiny_planner(frame_size: int = 16) -> LatentPlanner:
    torch.manual_seed(0)
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
    planner.config = dataclasses.replace(planner.config, search="per-slot")
    planner.reset(0)
    frame, goal_frame = _entity_frames()
    state = planner.encode(frame)
    null = planner.null_actions(state)
    for score in ("slots", "pixels"):
        planner.config = dataclasses.replace(planner.config, score=score)
        goal = planner.goal_of(frame, state, null, goal_frame)
        chosen = planner.plan(state, goal)
        assert chosen.shape == null.shape
        best = planner.score(state, chosen, goal)[0]
        assert best <= planner.score(state, null, goal)[0]
        action = planner.act(frame, {"goal_frame": goal_frame})
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
    planner.config = dataclasses.replace(planner.config, search="per-slot", score="pixels")
    planner.reset(0)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    state = planner.encode(frame)
    null = planner.null_actions(state)
    active = planner.acting_slots(state, null)
    assert active.tolist() == [k == 1 for k in range(null.shape[1])]
    goal_frame = np.zeros((16, 16, 3), np.uint8)
    goal_frame[4:8, 8:12] = (255, 0, 0)
    chosen = planner.plan(state, planner.goal_of(frame, state, null, goal_frame))
    others = [k for k in range(null.shape[1]) if k != 1]
    torch.testing.assert_close(chosen[:, others], null[:, others])


def _two_slot_decoder(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Agent 0 reads slot 1, agent 1 reads slot 2: a positive first value means action 4, a
    negative one action 0, and no value means 1-3 (use with grouping off: the untrained model's
    slots share a centroid)."""
    scale = torch.tensor([-8.0, -8.0, -8.0, -8.0, 8.0])
    never = torch.tensor([1.0, -20.0, -20.0, -20.0, 0.0])  # a zero value reads as 0
    return actions[:, 1:3, :1] * scale + never


def _shift_right(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Forward dynamics of a known world: each slot's centroid moves right by its latent
    action's first value."""
    out = states.clone()
    out[..., -1] = states[..., -1] + actions[..., 0]
    return out


def _two_entity_scene(planner: LatentPlanner, target_cells: float) -> tuple[torch.Tensor, PlanGoal]:
    """States with slot 1 on entity 0 and slot 2 on entity 1 (slot 0 elsewhere), each entity's
    goal ``target_cells`` to its right, and the null plan (every latent zero)."""
    from agents.entities import EntityGoal

    state = torch.zeros(1, 3, planner.model.config.d_model + 2)
    state[0, :, -2:] = torch.tensor([[3.0, 3.0], [1.0, 1.0], [2.0, 1.0]])
    now = torch.tensor([[1.0, 1.0], [2.0, 1.0]])
    entities = EntityGoal(now=now, target=now + torch.tensor([0.0, target_cells]))
    null = torch.zeros(1, 3, planner.codebook.shape[1])
    goal = PlanGoal(torch.zeros(3, 16, 16), null, entities=entities, slots=torch.tensor([1, 2]))
    return state, goal


def test_controller_executes_the_real_action_whose_plan_scores_best() -> None:
    # Each agent's decoded action is read from its own slot (agent 0: slot 1, agent 1: slot 2),
    # and the world model moves a slot right by its latent's first value: with both goals two
    # cells to the right, "right" (4) brings each entity closer, so both agents execute it.
    planner = _tiny_planner()
    planner.config = dataclasses.replace(planner.config, search="controller", group_cells=0.0)
    planner.decoder = _two_slot_decoder
    planner.model.predict_next = _shift_right  # type: ignore[method-assign]
    state, goal = _two_entity_scene(planner, target_cells=2.0)
    assert planner.control(state, goal).tolist() == [4, 4]
    # The null plan scores the current distance (2 cells per entity): nothing moves.
    assert planner.score(state, goal.null, goal).item() == pytest.approx(4.0)
    # Entities already on their goals: every move scores worse than the null plan, action 0.
    state, goal = _two_entity_scene(planner, target_cells=0.0)
    assert planner.control(state, goal).tolist() == [0, 0]


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


def test_entities_are_found_where_the_env_put_the_agents_and_their_goals() -> None:
    env = gym.make("MultiGrid-Goal-8x8-N4-v0", tile_size=4).unwrapped
    obs, _ = env.reset(seed=5)
    frame, goal = as_float(obs), as_float(env.goal_frame())
    # One token per 4-pixel cell (grid 8 on a 32-pixel frame): token units are cells.
    found = entity_goal(frame, goal, goal_palette(goal), cell_px=4, grid=8)
    yx = [[float(y), float(x)] for x, y in env.agent_pos]
    goal_yx = [[float(y), float(x)] for x, y in env.goal_pos]
    assert sorted(found.now.tolist()) == sorted(yx)
    assert sorted(found.target.tolist()) == sorted(goal_yx)
    # Pairs stay index-aligned: each agent's position goes with its own goal.
    pairs = sorted(
        zip(map(tuple, found.now.tolist()), map(tuple, found.target.tolist()), strict=True)
    )
    assert pairs == sorted(zip(map(tuple, yx), map(tuple, goal_yx), strict=True))
    # Token units of a coarser grid (two cells per token) halve the coordinates.
    coarse = entity_goal(frame, goal, goal_palette(goal), cell_px=4, grid=4)
    torch.testing.assert_close(coarse.now, (found.now - 0.5) / 2)
    with pytest.raises(ValueError, match="no entity of the goal image"):
        entity_goal(torch.zeros_like(frame), goal, goal_palette(goal), cell_px=4, grid=8)


def test_slot_score_prefers_the_move_that_brings_the_entity_toward_its_goal() -> None:
    # A world model whose forward dynamics move each slot's centroid sideways by its latent
    # action's first value: the entity's slot moving right (toward its goal) must score best.
    planner = _tiny_planner()
    model = planner.model

    def shift(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        out = states.clone()
        out[..., -1] = states[..., -1] + actions[..., 0]
        return out

    model.predict_next = shift  # type: ignore[method-assign]
    frame, goal_frame = _entity_frames()
    planner.reset(0)
    state = planner.encode(frame)
    goal = planner.goal_of(frame, state, planner.null_actions(state), goal_frame)
    assert goal.entities is not None and goal.slots is not None
    assert goal.entities.now.tolist() == [[1.0, 1.0]]
    assert goal.entities.target.tolist() == [[1.0, 3.0]]
    slot = int(goal.slots[0])
    moves = torch.tensor([0.0, 1.0, -1.0, 2.0, 3.0])
    actions = torch.zeros(len(moves), state.shape[1], planner.codebook.shape[1])
    actions[:, slot, 0] = moves
    scores = planner.score(state, actions, goal)
    torch.testing.assert_close(scores, torch.tensor([2.0, 1.0, 3.0, 0.0, 1.0]))
    # Moving another slot changes nothing: only the entity's own slot is read.
    other = torch.zeros(1, state.shape[1], planner.codebook.shape[1])
    other[0, (slot + 1) % state.shape[1], 0] = 2.0
    assert planner.score(state, other, goal).item() == pytest.approx(2.0)


def test_slot_score_needs_positional_slots() -> None:
    planner = _tiny_planner()
    model = build_model(
        dataclasses.replace(planner.model.config, pos_slots=False), code_features(planner.tokenizer)
    )
    with pytest.raises(ValueError, match="score='pixels'"):
        LatentPlanner(model, planner.tokenizer, planner.decoder, PlannerConfig(), cell_px=4)


def test_slot_score_holds_slots_at_their_null_action() -> None:
    # The learned centroid move of the null code need not be zero; a slot left at its null
    # action must still count as standing still.
    planner = _tiny_planner()

    def drift(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        out = states.clone()
        out[..., -1] = states[..., -1] + 1.0  # every code, the null one too, moves right
        return out

    planner.model.predict_next = drift  # type: ignore[method-assign]
    frame, goal_frame = _entity_frames()
    planner.reset(0)
    state = planner.encode(frame)
    null = planner.null_actions(state)
    goal = planner.goal_of(frame, state, null, goal_frame)
    assert planner.score(state, null, goal).item() == pytest.approx(2.0)  # held: no move
    assert goal.slots is not None
    moved = null.clone()
    moved[0, int(goal.slots[0])] = null[0, int(goal.slots[0])] + 1.0
    assert planner.score(state, moved, goal).item() == pytest.approx(1.0)


def test_controller_draws_only_on_a_frame_seen_before_in_the_episode() -> None:
    planner = _tiny_planner()
    planner.config = dataclasses.replace(planner.config, escape_temperature=1e6, group_cells=0.0)
    planner.decoder = _two_slot_decoder
    planner.model.predict_next = _shift_right  # type: ignore[method-assign]
    frame, goal_frame = _entity_frames()
    info = {"goal_frame": goal_frame}
    planner.reset(0)
    state = planner.encode(frame)
    best = planner.control(
        state, planner.goal_of(frame, state, planner.null_actions(state), goal_frame)
    )
    firsts, repeats = set(), set()
    for seed in range(8):
        planner.reset(seed)
        firsts.add(tuple(planner.act(frame, info).tolist()))
        repeats.add(tuple(planner.act(frame, info).tolist()))
    assert firsts == {tuple(best.tolist())}  # a new frame: always the best-scoring action
    assert len(repeats) > 1  # the same frame again: a draw (flat at this temperature)
    # The draws are seeded by reset(seed): the same seed replays them.
    runs = []
    for _ in range(2):
        planner.reset(3)
        runs.append([planner.act(frame, info).tolist() for _ in range(4)])
    assert runs[0] == runs[1]


MOVES = torch.tensor([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])  # stay, up, down, left, right


def walker_cost(seqs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A toy world model: each agent walks on an open grid from (0, 0); cost = mean over the
    steps of the L1 distance to its target ``(a, 2)``. Sequences ``(a, p, h)`` -> ``(a, p)``."""
    where = MOVES[seqs].cumsum(dim=2)  # (a, p, h, 2)
    return (where - target[:, None, None]).abs().sum(-1).float().mean(-1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cem_finds_the_optimum_of_a_toy_world_model(seed: int) -> None:
    from agents.planner import cem_search

    # Agent 0 must go 3 down and 1 right, agent 1 2 up and 2 left, in 5 steps: the best plans
    # walk straight there and stay (4 of the 3125 sequences for agent 0, 6 for agent 1).
    target = torch.tensor([[3, 1], [-2, -2]])
    every = torch.tensor(list(itertools.product(range(5), repeat=5)))
    optimum = walker_cost(repeat(every, "p h -> a p h", a=2), target).min(dim=1).values
    best, first = cem_search(
        lambda s: walker_cost(s, target),
        agents=2,
        actions=5,
        horizon=5,
        population=128,
        elites=8,
        iterations=5,
        generator=torch.Generator().manual_seed(seed),
    )
    assert torch.allclose(walker_cost(best[:, None], target)[:, 0], optimum)
    # The first action of an optimal plan is a move toward the target (down/right; up/left).
    assert best[0, 0].item() in (2, 4) and best[1, 0].item() in (1, 3)
    # Per first action, the cheapest cost found: its minimum is the best plan's cost.
    assert first.shape == (2, 5)
    torch.testing.assert_close(first.min(dim=1).values, optimum)


def test_cem_scores_every_sequence_once_when_there_are_few() -> None:
    from agents.planner import cem_search

    calls: list[int] = []

    def cost(seqs: torch.Tensor) -> torch.Tensor:
        calls.append(seqs.shape[1])
        return walker_cost(seqs, torch.tensor([[0, 2]]))

    best, first = cem_search(cost, agents=1, actions=5, horizon=2, population=25)
    assert calls == [25]
    assert best.tolist() == [[4, 4]]
    # Every first action was tried: its cheapest cost is the brute-force minimum over the
    # 5 sequences that start with it (target 2 cells right: right-right costs (1 + 0) / 2).
    every = torch.tensor(list(itertools.product(range(5), repeat=2)))[None]
    costs = walker_cost(every, torch.tensor([[0, 2]]))[0]
    torch.testing.assert_close(first[0], rearrange(costs, "(u v) -> u v", u=5).min(dim=1).values)
    assert first[0].argmin().item() == 4


class _RightLeftController:
    """A controller stub: agent 0's "right" (4) gives every slot latent (1, 0, ...), "left" (3)
    (-1, 0, ...), anything else zeros; agent 1's action changes nothing."""

    def latent(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(states.shape[0], states.shape[1], 1)
        out[..., 0] = (actions[:, :1] == 4).float() - (actions[:, :1] == 3).float()
        return out


@pytest.mark.parametrize(("horizon", "population"), [(2, 64), (3, 32)])
def test_cem_planner_walks_the_agent_to_its_goal_in_a_known_world(
    horizon: int, population: int
) -> None:
    # Forward dynamics: every slot's centroid moves right by its latent's first value, plus a
    # drift of 0.5 cells for every latent ("standing still" moves too, as in trained models).
    # The agent stands 2 cells left of its goal: the best plan starts with "right" (4), and
    # measured against the all-held rollout the drift never looks like progress.
    base = _tiny_planner()
    cfg = PlannerConfig(search="cem", horizon=horizon, rollout="latent", cem_population=population)
    planner = LatentPlanner(
        base.model,
        base.tokenizer,
        base.decoder,
        cfg,
        cell_px=4,
        controller=_RightLeftController(),  # type: ignore[arg-type]
    )

    def shift(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        out = states.clone()
        out[..., -1] = states[..., -1] + actions[..., 0] + 0.5
        return out

    planner.model.predict_next = shift  # type: ignore[method-assign]
    frame, goal_frame = _entity_frames()
    planner.reset(0)
    state = planner.encode(frame)
    goal = planner.goal_of(frame, state, planner.null_actions(state), goal_frame)
    held = planner.held_actions(state, goal.null)
    assert held.tolist() == [0, 0]
    # Holding every agent scores the current distance (2 cells) at every step.
    seqs = torch.zeros(2, 1, horizon, dtype=torch.long)
    assert planner.sequence_scores(state, goal, held, seqs)[0, 0].item() == pytest.approx(2.0)
    right = torch.full((2, 1, horizon), 4)
    expected = sum(abs(2 - s) for s in range(1, horizon + 1)) / horizon  # overshoots at 3
    assert planner.sequence_scores(state, goal, held, right)[0, 0].item() == pytest.approx(expected)
    assert planner.act(frame, {"goal_frame": goal_frame})[0] == 4


def test_cem_search_needs_a_controller() -> None:
    base = _tiny_planner()
    with pytest.raises(ValueError, match="learned controller"):
        LatentPlanner(
            base.model, base.tokenizer, base.decoder, PlannerConfig(search="cem"), cell_px=4
        )


def test_cem_reads_each_entity_from_the_slots_its_agent_drives() -> None:
    # Slot 0 sits on the agent but holds background; only slot 2, a diffuse slot whose centroid
    # is 2 cells away, responds to the agents' actions: the entity's move is read from slot 2.
    from agents.entities import EntityGoal

    base = _tiny_planner()
    d_s = base.model.config.d_model + 2
    state = torch.zeros(1, 3, d_s)
    state[0, :, -2:] = torch.tensor([[1.0, 1.0], [3.0, 3.0], [1.0, 3.0]])
    entities = EntityGoal(now=torch.tensor([[1.0, 1.0]]), target=torch.tensor([[1.0, 3.0]]))
    null = torch.zeros(1, 3, 1)
    goal = PlanGoal(torch.zeros(3, 16, 16), null, entities=entities, slots=torch.tensor([0]))

    class OneSlot:
        def latent(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(states.shape[0], states.shape[1], 1)
            out[:, 2, 0] = actions[:, 0].float()
            return out

    planner = LatentPlanner(
        base.model,
        base.tokenizer,
        base.decoder,
        PlannerConfig(search="cem"),
        cell_px=4,
        controller=OneSlot(),  # type: ignore[arg-type]
    )
    held = planner.held_actions(state, null)
    weights = planner.acting_weights(state, goal, held)
    assert weights is not None and weights.tolist() == [[0.0, 0.0, 1.0]]
    # Two entities, one driven agent: the other entity is read from its nearest slot.
    two = EntityGoal(now=torch.tensor([[1.0, 1.0], [3.0, 3.0]]), target=torch.zeros(2, 2))
    both = planner.acting_weights(
        state, dataclasses.replace(goal, entities=two, slots=torch.tensor([0, 1])), held
    )
    assert both is not None
    assert both.tolist() in ([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
