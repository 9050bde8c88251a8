"""Controllable generation: steer one entity's latent actions while the others follow the video.

From the start frame of a held-out video, every slot of a factored model (FLAM) follows the latent
action inferred from the original video except the controlled slots, whose latent actions are
drawn from the prior or given as FSQ code indices (FLAM project page, "controllable generation").
The rollout is autoregressive: predicted codes are decoded to the next frame's codes and
re-encoded, and the factorizer's recursive initialisation starts slot ``k`` of frame ``t + 1``
from slot ``k`` of frame ``t``. Both the original video's encoding (where the inferred actions
come from) and the rollout start from the same encoded first frame, so slot index ``k`` names the
same entity in both, and slot ``k``'s inferred actions keep driving the entity it holds.

Scene-level models (LAM, OC+LAM) infer one latent action per transition for the whole scene:
"controlling an entity" then replaces that one scene latent, which moves whatever it explains.

An entity (:class:`Entity`) is a set of slots: slot attention may split one agent between two
slots (each holding part of the agent's token), and near-empty slots may sit on an agent (their
centroid there, their attention mass almost 0) and still draw it through the gauss readout;
moving only one of them leaves the others drawing the agent where the video had it. By default
an agent's entity is every slot holding at least ``share`` of its token at the start frame plus
those near-empty slots (:func:`bind_agents`).

What to expect from a trained FLAM (tiny MultiGrid): a controlled agent follows its codes while
the others follow the video, but the model never saw a move into a wall or into another agent
(the data execute and label those as STAY), so such codes make the agent vanish or merge, and a
slot left empty may then take over another agent's near-empty slots. FSQ codes the model never
infers also make an agent vanish; ``--prior empirical`` (:func:`code_usage`)
samples the codes as often as they are inferred on held-out data.

Shapes: codes ``(b, t, n)`` (``n = grid * grid`` tokens, row-major); latent actions
``(b, s, k', d_a)`` with ``k' = K`` slots (FLAM) or 1 (scene models); slot attention
``(b, t, K, n)`` (each token's weights sum to 1 over slots); frames uint8 ``(t, h, w, c)``;
agent positions ``(t, a, 2)`` cells ``(x, y)``.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from PIL import Image
from tqdm.auto import tqdm

from latentrl.artifacts import ModelRun
from latentrl.data.codes import CodeCache
from latentrl.data.recipes import DatasetSpec
from latentrl.models import LatentActionModel
from latentrl.prior import latent_pool, needs_pool, sample_prior
from latentrl.quantize import LatentBottleneck
from latentrl.tokenizer import Tokenizer
from latentrl.views import (
    MULTIGRID_ACTION_NAMES,
    Row,
    code_action_counts,
    code_meanings,
    decode_frames,
    held_out_windows,
    slot_latents,
)
from latentrl.viz import gif_bytes, mp4_bytes


# -- run folders ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class HeldOutRun:
    """A trained model run in memory: its model, the tokenizer and data spec of its tokenizer
    run, and one split's cached codes there (codes, true actions and positions)."""

    path: Path
    model: LatentActionModel
    tokenizer: Tokenizer
    data: DatasetSpec
    codes: CodeCache
    split: str

    @property
    def cell_px(self) -> int:
        """Pixels per environment cell (MultiGrid positions are cells; Procgen has none)."""
        return self.data.tile_size if self.data.env == "multigrid" else 1

    @property
    def token_px(self) -> int:
        """Pixels per token side."""
        return self.tokenizer.config.downsample

    @property
    def grid(self) -> int:
        """Tokens per side."""
        return self.tokenizer.config.grid

    def decode(self, codes: torch.Tensor) -> np.ndarray:
        """Code indices ``(t, n)`` -> frames uint8 ``(t, h, w, c)``."""
        return decode_frames(self.tokenizer, codes)


def load_held_out(run: Path, split: str = "test", device: torch.device | str = "cpu") -> HeldOutRun:
    """Load a ``train_lam.py`` run folder and ``split``'s cached codes of its tokenizer run.

    Only the code cache is read (not the Minari dataset), so this works where the datasets are
    gone; raises as :meth:`latentrl.artifacts.ModelRun.open`, or if the split has no codes.
    """
    model_run = ModelRun.open(run)
    tokenizer_run = model_run.tokenizer_run
    model = model_run.load_model(device)
    tokenizer = tokenizer_run.load_tokenizer(device)
    data = tokenizer_run.data()
    path = tokenizer_run.codes_path(split)
    if not path.is_file():
        raise FileNotFoundError(
            f"no {split!r} codes at {path} (have {tokenizer_run.code_splits()}): pass --split "
            "one of them"
        )
    return HeldOutRun(run, model, tokenizer, data, tokenizer_run.codes(split), split)


# -- slots, agents and codes ---------------------------------------------------------------------
def agent_tokens(positions: torch.Tensor, cell_px: int, token_px: int, grid: int) -> torch.Tensor:
    """Agent cells ``(..., a, 2)`` ``(x, y)`` -> the token under each agent's centre ``(..., a)``."""
    tok = torch.div(positions * cell_px + cell_px // 2, token_px, rounding_mode="floor")
    return (tok[..., 1] * grid + tok[..., 0]).clamp(0, grid * grid - 1)


def num_latents(model: LatentActionModel) -> int:
    """``k'``: latent actions per transition (K slots for FLAM, 1 for scene models)."""
    return model.config.num_slots if model.config.factored else 1


def bottleneck_of(model: LatentActionModel) -> LatentBottleneck:
    """The IDM's latent-action bottleneck (its prior and its codebook)."""
    idm = getattr(model, "idm", None)
    if idm is None or not isinstance(getattr(idm, "bottleneck", None), LatentBottleneck):
        raise ValueError(
            f"a {model.config.model} model has no latent-action bottleneck (WM is conditioned on "
            "true actions): controllable generation needs a flam, lam or oclam run"
        )
    return idm.bottleneck


def num_codes(model: LatentActionModel) -> int | None:
    """Number of discrete latent actions (FSQ), or None for continuous bottlenecks."""
    return bottleneck_of(model).config.num_codes


def code_actions(model: LatentActionModel, indices: torch.Tensor) -> torch.Tensor:
    """FSQ code indices ``(...)`` -> latent actions ``(..., d_a)``."""
    count = num_codes(model)
    if count is None:
        raise ValueError(
            f"this model's latent actions are continuous ({model.config.action_kind}): it has no "
            "code indices; leave out --codes to sample from its prior"
        )
    bad = indices[(indices < 0) | (indices >= count)]
    if bad.numel():
        raise ValueError(
            f"code {int(bad[0])} is out of range: FSQ levels {list(model.config.action_levels)} "
            f"give {count} codes, 0..{count - 1}"
        )
    return bottleneck_of(model).codes_from_indices(indices.to(model.token_pos.device))


def check_slots(model: LatentActionModel, slots: Sequence[int]) -> None:
    """Raise a clear error for slot indices the model does not have."""
    k = num_latents(model)
    for s in slots:
        if not 0 <= s < k:
            what = (
                f"K = {k} slots (0..{k - 1})" if model.config.factored else "one scene latent (0)"
            )
            raise ValueError(
                f"slot {s} does not exist: this {model.config.model} model has {what}; "
                f"pass --slots with indices in 0..{k - 1}, 'agents' or 'all'"
            )


@dataclasses.dataclass(frozen=True)
class Entity:
    """What one row of a figure controls: a set of slots (``(0,)`` for a scene latent)."""

    name: str
    slots: tuple[int, ...]
    agent: int | None = None


def bind_agents(
    attn: torch.Tensor,
    tokens: torch.Tensor,
    share: float = 0.2,
    single: bool = False,
    centroids: torch.Tensor | None = None,
    grid: int = 0,
    max_mass: float = 1.5,
) -> list[Entity]:
    """One entity per agent from the start frame's attention ``(K, n)`` and agent tokens ``(a,)``.

    Agent ``j``'s entity holds the slot with the most attention on ``j``'s token (as
    :func:`latentrl.probe.match_slots`) and, unless ``single``, every slot holding at least
    ``share`` of that token and every small slot (attention mass below ``max_mass`` tokens)
    whose attention centroid ``(K, 2)`` (row, col in tokens; positional FLAM) lies in ``j``'s
    token. The centroid rule catches slots with almost no attention mass sitting on the agent:
    the gauss readout still lets them draw it, so leaving them on the video's actions leaves a
    copy of the agent behind. Large slots hold background and are left alone.
    """
    on_agent = attn[:, tokens]  # (K, a)
    entities = []
    for j in range(tokens.shape[0]):
        order = torch.argsort(on_agent[:, j], descending=True).tolist()
        slots = [order[0]]
        if not single:
            slots += [k for k in order[1:] if on_agent[k, j] >= share]
            if centroids is not None and grid > 0:
                cell = torch.stack([tokens[j] // grid, tokens[j] % grid]).to(centroids)
                near = ((centroids - cell).abs().amax(dim=-1) < 0.5) & (attn.sum(-1) < max_mass)
                slots += [k for k in near.nonzero().flatten().tolist() if k not in slots]
        entities.append(Entity(f"agent {j}", tuple(slots), agent=j))
    return entities


def name_slots(
    attn: torch.Tensor, tokens: torch.Tensor | None, slots: Sequence[int], share: float = 0.2
) -> list[Entity]:
    """One entity per slot, named by the agent whose token it holds most of (at least ``share``)."""
    entities = []
    for k in slots:
        name, agent = f"slot {k}", None
        if tokens is not None and tokens.numel():
            held = attn[k, tokens]  # (a,)
            j = int(held.argmax())
            if held[j] >= share:
                name, agent = f"slot {k} (agent {j})", j
            else:
                name = f"slot {k} (background)"
        entities.append(Entity(name, (k,), agent))
    return entities


def roomiest_entity(entities: Sequence[Entity], positions: torch.Tensor | None, size: int) -> int:
    """Index of the agent entity with the most free cells around it at the start frame (cells
    ``(a, 2)`` ``(x, y)`` in a ``size x size`` room with walls); ties go to fewer slots.

    The per-code figure drives one entity with one code for many steps: next to a wall or another
    agent most codes soon ask for a move the training data never showed (a blocked move is
    executed, and labelled, as a stay).
    """
    if positions is None or not any(e.agent is not None for e in entities):
        return 0
    pos = positions.cpu()

    def room(e: Entity) -> tuple[int, int]:
        if e.agent is None:
            return (-1, -len(e.slots))
        x, y = (int(v) for v in pos[e.agent])
        free = min(x - 1, y - 1, size - 2 - x, size - 2 - y)
        others = [j for j in range(len(pos)) if j != e.agent]
        if others:
            gap = (pos[others] - pos[e.agent]).abs().amax(dim=-1).min().item() - 1
            free = min(free, int(gap))
        return (free, -len(e.slots))

    return max(range(len(entities)), key=lambda i: room(entities[i]))


# -- rollouts ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Scene:
    """A held-out window: what controllable generation starts from and compares against.

    ``codes (1, 1 + s, n)``; ``actions (1, s, k', d_a)`` and ``indices (1, s, k')`` (FSQ, else
    None) inferred from the whole window; ``attn (1, 1 + s, K, n)`` or None; ``positions
    (1 + s, a, 2)`` and ``true_actions (s, a)`` where the data has labels.
    """

    codes: torch.Tensor
    actions: torch.Tensor
    indices: torch.Tensor | None
    attn: torch.Tensor | None
    positions: torch.Tensor | None
    true_actions: torch.Tensor | None

    @property
    def steps(self) -> int:
        return self.actions.shape[1]


@torch.no_grad()
def load_scene(run: HeldOutRun, episode: int, start: int, steps: int) -> Scene:
    """Frames ``start .. start + steps`` of ``episode`` in ``run``'s split, encoded and inferred."""
    bounds = run.codes.episode_starts
    episodes = len(bounds) - 1
    if not 0 <= episode < episodes:
        raise ValueError(
            f"episode {episode} does not exist: the {run.split} split has {episodes} episodes "
            f"(--episode 0..{episodes - 1})"
        )
    length = int(bounds[episode + 1] - bounds[episode])
    if steps < 1 or start < 0 or start + steps >= length:
        raise ValueError(
            f"episode {episode} has {length} frames: --start {start} --steps {steps} needs "
            f"start >= 0, steps >= 1 and start + steps <= {length - 1}"
        )
    batch = run.codes.windows(np.array([bounds[episode] + start]), steps + 1, labels=True)
    batch = batch.to(run.model.token_pos.device)
    encoded = run.model.encode_states(batch.codes)
    latent = run.model.infer(encoded.states, None)
    return Scene(
        codes=batch.codes,
        actions=latent.actions,
        indices=latent.indices,
        attn=encoded.attn,
        positions=None if batch.positions is None else batch.positions[0],
        true_actions=None if batch.actions is None else batch.actions[0],
    )


@torch.no_grad()
def controlled_rollout(
    model: LatentActionModel,
    context: torch.Tensor,
    inferred: torch.Tensor,
    slots: Sequence[int] = (),
    actions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Codes ``(b, s, n)`` of an autoregressive rollout from ``context`` codes ``(b, t0, n)``.

    Every slot takes its latent action from ``inferred`` ``(b, s, k', d_a)`` except ``slots``,
    which take ``actions`` ``(b, s, d_a)`` at each step. ``inferred`` must come from encoding a
    window that starts with ``context`` so that slot indices agree (see the module docstring).
    With no controlled slot this is :meth:`LatentActionModel.rollout`.
    """
    b, s, k, _ = inferred.shape
    check_slots(model, slots)
    if slots and (actions is None or actions.shape[:2] != (b, s)):
        got = None if actions is None else tuple(actions.shape)
        raise ValueError(f"controlled slots need actions (b, s, d_a) = ({b}, {s}, d_a), got {got}")
    control = torch.zeros(k, dtype=torch.bool, device=inferred.device)
    control[list(slots)] = True
    control = rearrange(control, "k -> 1 k 1")
    state = model.encode_states(context).states[:, -1]
    frames = []
    for i in range(s):
        step_actions = inferred[:, i]
        if actions is not None and slots:
            override = repeat(actions[:, i], "b d -> b k d", k=k)
            step_actions = torch.where(control, override, step_actions)
        codes = model.aggregator.generate(model.predict_next(state, step_actions))
        frames.append(codes)
        # Slot k of the new frame starts from slot k of this one (recursive init), so the
        # uncontrolled slots keep the entity whose inferred actions they are given.
        state = model.encode_next(codes, state)
    return torch.stack(frames, dim=1)


@torch.no_grad()
def rollout_attention(
    model: LatentActionModel, context: torch.Tensor, generated: torch.Tensor
) -> torch.Tensor | None:
    """Slot attention ``(b, t0 + s, K, n)`` over the context and a rollout's codes ``(b, s, n)``.

    Re-encoding the whole sequence runs the same recursion as the rollout (each frame's slots
    start from the previous frame's), so these are the masks the rollout's slots had.
    """
    return model.encode_states(torch.cat([context, generated], dim=1)).attn


def owned_tokens(attn: torch.Tensor, slots: Sequence[int]) -> torch.Tensor:
    """Tokens whose strongest slot is one of ``slots``: attention ``(..., K, n)`` -> ``(..., n)``."""
    owner = attn.argmax(dim=-2)
    return torch.isin(owner, torch.tensor(list(slots), device=attn.device))


# -- locality: does control move only the chosen entity? -----------------------------------------
@dataclasses.dataclass(frozen=True)
class Locality:
    """Pixels that differ (max channel difference > ``tol``) between a controlled and the
    uncontrolled rollout, inside and outside the controlled entity's mask (dilated)."""

    changed_inside: float
    changed_outside: float
    mask_fraction: float

    def as_dict(self) -> dict[str, float | None]:
        """Rounded figures; None for NaN (an empty region), which JSON cannot hold."""
        return {
            k: None if math.isnan(v) else round(v, 5) for k, v in dataclasses.asdict(self).items()
        }


def dilate_tokens(mask: torch.Tensor, grid: int, radius: int) -> torch.Tensor:
    """Grow a token mask ``(t, n)`` by ``radius`` tokens (8-neighbourhood) on its ``grid``."""
    if radius <= 0:
        return mask
    img = rearrange(mask.float(), "t (gh gw) -> t 1 gh gw", gh=grid)
    grown = F.max_pool2d(img, 2 * radius + 1, stride=1, padding=radius)
    return rearrange(grown > 0, "t 1 gh gw -> t (gh gw)")


def token_mask_to_pixels(mask: torch.Tensor, grid: int, height: int, width: int) -> np.ndarray:
    """Token mask ``(t, n)`` -> pixel mask ``(t, h, w)`` (each token covers a patch)."""
    img = rearrange(mask, "t (gh gw) -> t gh gw", gh=grid).cpu().numpy()
    return repeat(img, "t gh gw -> t (gh ph) (gw pw)", ph=height // grid, pw=width // grid)


def locality(
    controlled: np.ndarray,
    reference: np.ndarray,
    mask: torch.Tensor,
    grid: int,
    radius: int = 1,
    tol: int = 8,
) -> Locality:
    """Compare frames ``(t, h, w, c)``; ``mask`` ``(t, n)`` marks the entity's tokens.

    ``radius`` tokens of margin: a tokenizer whose decoder sees neighbouring tokens (IMPALA)
    changes pixels next to a changed token. ``tol`` absorbs rounding of the decoder's output.
    """
    h, w = controlled.shape[1:3]
    inside = token_mask_to_pixels(dilate_tokens(mask, grid, radius), grid, h, w)
    diff = np.abs(controlled.astype(np.int16) - reference.astype(np.int16)).max(-1) > tol
    outside = ~inside
    # NaN where a region is empty (a scene model's "entity" is the whole frame).
    return Locality(
        changed_inside=float(diff[inside].mean()) if inside.any() else math.nan,
        changed_outside=float(diff[outside].mean()) if outside.any() else math.nan,
        mask_fraction=float(inside.mean()),
    )


def entity_mask(
    model: LatentActionModel,
    context: torch.Tensor,
    rollouts: Sequence[torch.Tensor],
    slots: Sequence[int],
) -> torch.Tensor:
    """Tokens ``(s, n)`` the entity's slots own in any of ``rollouts`` (each ``(1, s, n)``).

    The controlled entity is somewhere else than in the uncontrolled rollout, so its mask is
    the union of where its slots are in both. Scene models have no slots: every token.
    """
    s, n = rollouts[0].shape[1:]
    if not model.config.factored:
        return torch.ones(s, n, dtype=torch.bool)
    mask = torch.zeros(s, n, dtype=torch.bool)
    for codes in rollouts:
        attn = rollout_attention(model, context, codes)
        assert attn is not None  # factored models have slots
        mask |= owned_tokens(attn[0, context.shape[1] :], slots).cpu()
    return mask


# -- the figures ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Controlled:
    """One controlled rollout: the entity, its generated codes ``(1, s, n)`` and decoded frames
    ``(s, h, w, c)``, the code index (or ``"prior"``) used at each step, the entity's token mask
    ``(s, n)`` and how local the change was."""

    entity: Entity
    codes: torch.Tensor
    frames: np.ndarray
    steps: tuple[str, ...]
    locality: Locality
    mask: torch.Tensor


def control_actions(
    model: LatentActionModel,
    steps: int,
    codes: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    probs: torch.Tensor | None = None,
    pool: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Latent actions ``(1, steps, d_a)`` for a controlled entity and a label per step.

    ``codes``: FSQ indices, one per step (or one for every step); else a draw from the prior
    (FSQ: uniform over codes, or ``probs`` ``(C,)``; labelled with the drawn index; Gaussian:
    N(0, 1); sparse: the empirical pool ``(N, d_a)`` of :func:`prior_pool`).
    """
    bottleneck = bottleneck_of(model)
    if codes is not None:
        if len(codes) not in (1, steps):
            raise ValueError(f"give one code or {steps} codes (one per step), got {len(codes)}")
        idx = torch.tensor(list(codes) * (steps if len(codes) == 1 else 1), dtype=torch.long)
        return code_actions(model, idx)[None], tuple(str(c) for c in idx.tolist())
    count = bottleneck.config.num_codes
    if count is not None:
        if probs is not None:
            idx = torch.multinomial(probs, steps, replacement=True, generator=generator)
        else:
            idx = torch.randint(0, count, (steps,), generator=generator)
        return code_actions(model, idx)[None], tuple(str(c) for c in idx.tolist())
    prior = sample_prior(model, 1, steps, generator, pool)[:, :, 0]
    return prior, ("prior",) * steps


@torch.no_grad()
def prior_pool(
    run: HeldOutRun, windows: int = 64, window: int = 8, seed: int = 0
) -> torch.Tensor | None:
    """The sparse model's empirical prior ``(N, d_a)``: latents it infers on held-out windows of
    ``run``'s split (seeded apart from the scenes' choice); None for the other families, whose
    prior is parametric (:mod:`latentrl.prior`)."""
    if not needs_pool(run.model):
        return None
    batch = held_out_windows(run.codes, window, windows, seed + 1)
    return latent_pool(run.model, batch.codes.to(run.model.token_pos.device))


def run_control(
    run: HeldOutRun,
    scene: Scene,
    entity: Entity,
    actions: torch.Tensor,
    labels: tuple[str, ...],
    reference: torch.Tensor,
    reference_frames: np.ndarray,
    radius: int = 1,
) -> Controlled:
    """Roll out with ``entity``'s slots on ``actions`` ``(1, s, d_a)``; compare with the
    uncontrolled ``reference`` codes ``(1, s, n)`` (frames ``(s, h, w, c)``)."""
    model, context = run.model, scene.codes[:, :1]
    codes = controlled_rollout(model, context, scene.actions, entity.slots, actions)
    frames = run.decode(codes[0])
    mask = entity_mask(model, context, [reference, codes], entity.slots)
    local = locality(frames, reference_frames, mask, run.grid, radius)
    return Controlled(entity, codes, frames, labels, local, mask)


def scene_entities(
    run: HeldOutRun, scene: Scene, which: Sequence[str], share: float = 0.2, single: bool = False
) -> list[Entity]:
    """Entities named on the command line: ``agents`` (default), ``all`` or slot indices."""
    model = run.model
    if not model.config.factored:
        return [Entity("scene latent", (0,))]
    assert scene.attn is not None
    attn0 = scene.attn[0, 0]
    tokens = None
    if scene.positions is not None:
        tokens = agent_tokens(scene.positions[0], run.cell_px, run.token_px, run.grid)
    if list(which) == ["agents"]:
        if tokens is None:
            raise ValueError(
                "--slots agents needs agent positions in the code cache (MultiGrid); "
                "pass slot indices or 'all'"
            )
        centroid = getattr(model, "centroid", None)
        centroids = centroid(attn0) if centroid is not None and model.config.positional else None
        return bind_agents(attn0, tokens, share, single, centroids, run.grid)
    if list(which) == ["all"]:
        return name_slots(attn0, tokens, range(num_latents(model)), share)
    try:
        slots = [int(s) for s in which]
    except ValueError:
        raise ValueError(
            f"--slots takes 'agents', 'all' or slot indices, got {list(which)}"
        ) from None
    check_slots(model, slots)
    return name_slots(attn0, tokens, slots, share)


@dataclasses.dataclass(frozen=True)
class Generation:
    """Everything controllable generation produced for one scene: the uncontrolled rollout,
    one :class:`Controlled` per entity and (FSQ models) one per code applied to one entity."""

    scene: Scene
    original: np.ndarray
    reference: torch.Tensor
    reference_frames: np.ndarray
    entities: list[Controlled]
    per_code: list[Controlled]
    code_entity: Entity | None
    note: str


def scene_note(model: LatentActionModel) -> str:
    """What a controlled row means for this model."""
    if model.config.factored:
        return "each row controls the named slots; every other slot follows its inferred actions"
    return (
        f"{model.config.model} has one latent action per scene: each row replaces the scene "
        "latent, which moves every entity it explains"
    )


def generate(
    run: HeldOutRun,
    scene: Scene,
    entities: Sequence[Entity],
    codes: Sequence[int] | None = None,
    seed: int = 0,
    code_entity: int | None = 0,
    radius: int = 1,
    probs: torch.Tensor | None = None,
    code_indices: Sequence[int] | None = None,
) -> Generation:
    """Controlled rollouts of every entity (prior samples seeded by ``seed``, from ``probs``
    ``(C,)`` if given, else uniform; or ``codes``) and, for FSQ models, of every code (or of
    ``code_indices``) applied to ``entities[code_entity]`` (None: skip)."""
    model, steps = run.model, scene.steps
    reference = controlled_rollout(model, scene.codes[:, :1], scene.actions)
    reference_frames = run.decode(reference[0])
    gen = torch.Generator().manual_seed(seed)
    pool = prior_pool(run, seed=seed) if codes is None else None
    rows = []
    for entity in tqdm(entities, desc="entities", leave=False):
        acts, labels = control_actions(model, steps, codes, gen, probs, pool)
        rows.append(
            run_control(run, scene, entity, acts, labels, reference, reference_frames, radius)
        )
    per_code: list[Controlled] = []
    chosen = None
    count = num_codes(model)
    if count is not None and code_entity is not None:
        if not 0 <= code_entity < len(entities):
            raise ValueError(
                f"code entity {code_entity} is not one of the {len(entities)} controlled rows: "
                f"pass --code-entity 0..{len(entities) - 1}"
            )
        chosen = entities[code_entity]
        shown = range(count) if code_indices is None else code_indices
        for code in tqdm(shown, desc="codes", leave=False):
            acts, labels = control_actions(model, steps, [code])
            per_code.append(
                run_control(run, scene, chosen, acts, labels, reference, reference_frames, radius)
            )
    return Generation(
        scene=scene,
        original=run.decode(scene.codes[0]),
        reference=reference,
        reference_frames=reference_frames,
        entities=rows,
        per_code=per_code,
        code_entity=chosen,
        note=scene_note(model),
    )


def _row(gen: Generation, c: Controlled, label: str, factored: bool) -> Row:
    assert gen.scene.attn is not None or not factored
    frames = np.concatenate([gen.original[:1], c.frames])
    outline = None
    if factored and gen.scene.attn is not None:
        start = owned_tokens(gen.scene.attn[0, :1], c.entity.slots).cpu()
        outline = torch.cat([start, c.mask]).numpy()
    return Row(label, frames, ("start", *(f"code {s}" for s in c.steps)), outline)


def figure_rows(
    gen: Generation, factored: bool, code_labels: Sequence[str] | None = None
) -> tuple[list[Row], list[Row]]:
    """Rows of the entity figure (original, uncontrolled, one per entity) and of the code
    figure (uncontrolled, one per code, with ``code_labels[c]`` under the code if given)."""
    inferred: tuple[str, ...] = ()
    if gen.scene.indices is not None and not factored:
        inferred = ("start", *(f"code {int(i)}" for i in gen.scene.indices[0, :, 0]))
    base = [
        Row("original video\n(tokenizer recon.)", gen.original),
        Row(
            "every slot on its\ninferred actions" if factored else "inferred scene\nlatent actions",
            np.concatenate([gen.original[:1], gen.reference_frames]),
            inferred,
        ),
    ]
    entity_rows = [
        _row(gen, c, f"control {c.entity.name}\nslots {list(c.entity.slots)}", factored)
        for c in gen.entities
    ]
    code_rows = []
    for c in gen.per_code:
        label = f"{c.entity.name}:\ncode {c.steps[0]} every step"
        if code_labels is not None:
            label += f"\nheld out: {code_labels[int(c.steps[0])]}"
        code_rows.append(_row(gen, c, label, factored))
    return base + entity_rows, base[1:] + code_rows


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_image(image: np.ndarray, path: Path) -> None:
    """Write a uint8 ``(H, W, 3)`` image as PNG atomically."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    _atomic_bytes(path, buf.getvalue())


def save_video(video: np.ndarray, path: Path, fps: int = 2) -> None:
    """Write a uint8 ``(t, H, W, 3)`` video as a looping GIF at ``path`` and as H.264 MP4 next
    to it (same name, ``.mp4``), each atomically."""
    _atomic_bytes(path, gif_bytes(video, fps))
    _atomic_bytes(path.with_suffix(".mp4"), mp4_bytes(video, fps))


def summary(gen: Generation) -> dict[str, Any]:
    """JSON-ready description of a :class:`Generation` (without pixels)."""

    def row(c: Controlled) -> dict[str, Any]:
        return {
            "entity": c.entity.name,
            "slots": list(c.entity.slots),
            "agent": c.entity.agent,
            "codes": list(c.steps),
            **c.locality.as_dict(),
        }

    scene = gen.scene
    return {
        "note": gen.note,
        "inferred_codes": None if scene.indices is None else scene.indices[0].tolist(),
        "true_actions": None if scene.true_actions is None else scene.true_actions.tolist(),
        "entities": [row(c) for c in gen.entities],
        "per_code_entity": None if gen.code_entity is None else gen.code_entity.name,
        "per_code": [row(c) for c in gen.per_code],
    }


@dataclasses.dataclass(frozen=True)
class CodeUsage:
    """How a model uses its FSQ codes on held-out windows: ``frequency (C,)`` over every slot's
    inferred code (label-free: an empirical prior), and each code's majority true action among
    agent-bound slots (needs labels; None without them)."""

    frequency: torch.Tensor
    meanings: list[str] | None


@torch.no_grad()
def code_usage(
    run: HeldOutRun, windows: int = 64, window: int = 8, seed: int = 0
) -> CodeUsage | None:
    """:class:`CodeUsage` of ``run``'s model, or None for continuous latent actions."""
    count = num_codes(run.model)
    if count is None:
        return None
    batch = held_out_windows(run.codes, window, windows, seed).to(run.model.token_pos.device)
    meanings = None
    if batch.actions is not None and batch.positions is not None:
        lat = slot_latents(run.model, batch, run.cell_px, run.token_px)
        assert lat.codes is not None
        codes = lat.codes
        counts = code_action_counts(lat, count, len(MULTIGRID_ACTION_NAMES))
        if run.data.env == "multigrid":
            meanings = code_meanings(counts, MULTIGRID_ACTION_NAMES)
            if not run.model.config.factored:
                # One latent per scene: its "meaning" is only read against agent 0's action.
                meanings = [f"agent 0 {m}" if "%" in m else "never inferred" for m in meanings]
    else:
        codes = run.model.infer_latent_actions(batch.codes).indices
        assert codes is not None
    freq = torch.bincount(codes.flatten().cpu(), minlength=count).float()
    return CodeUsage(freq / freq.sum(), meanings)


def locality_survey(
    run: HeldOutRun,
    episodes: int,
    steps: int,
    seed: int = 0,
    probs: torch.Tensor | None = None,
    share: float = 0.2,
) -> dict[str, Any]:
    """Mean :class:`Locality` over the first ``episodes`` episodes (from their first frame) and
    every agent: its entity controlled with prior samples, and, as the contrast a factored model
    must beat, every slot controlled with the same samples (measured against the same mask)."""
    model = run.model
    if not model.config.factored:
        raise ValueError(
            f"{model.config.model} has no slots: there is no entity mask to measure locality with"
        )
    count = min(episodes, len(run.codes.episode_starts) - 1)
    gen = torch.Generator().manual_seed(seed)
    pool = prior_pool(run, seed=seed)
    one: list[Locality] = []
    every: list[Locality] = []
    for episode in tqdm(range(count), desc="locality", leave=False):
        scene = load_scene(run, episode, 0, steps)
        context = scene.codes[:, :1]
        reference = controlled_rollout(model, context, scene.actions)
        reference_frames = run.decode(reference[0])
        for entity in scene_entities(run, scene, ["agents"], share):
            acts, labels = control_actions(model, steps, None, gen, probs, pool)
            c = run_control(run, scene, entity, acts, labels, reference, reference_frames)
            one.append(c.locality)
            all_slots = controlled_rollout(
                model, context, scene.actions, tuple(range(num_latents(model))), acts
            )
            every.append(locality(run.decode(all_slots[0]), reference_frames, c.mask, run.grid))

    def mean(items: list[Locality]) -> dict[str, float | None]:
        """Means over the cases where the region is not empty; None if it always is."""
        out: dict[str, float | None] = {}
        for key in ("changed_inside", "changed_outside", "mask_fraction"):
            values = np.array([getattr(x, key) for x in items], dtype=np.float64)
            finite = values[np.isfinite(values)]
            out[key] = round(float(finite.mean()), 5) if len(finite) else None
        return out

    return {"episodes": count, "steps": steps, "one_entity": mean(one), "every_slot": mean(every)}
