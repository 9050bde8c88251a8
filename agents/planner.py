"""Planning with a latent action world model toward a goal given as an image.

At every real step the planner encodes the current frame into the model's states (FLAM: slots,
initialised from the previous step's slots so each keeps its entity), searches latent actions
whose predicted outcome is closest to the goal image, turns them into real per-agent actions,
executes them, and replans.

Search (``search="controller"``, the default; the direction of Garrido et al.): every slot starts
at its *null* latent action (the one the model infers for a transition that changes nothing).
For each agent and each real action, the controller is the one-entity change of that null plan
which the latent-action decoder (trained on the labelled subset) reads most surely as "this
agent does this action, the others do what they do under the null plan". These ``agents *
actions`` plans are rolled through the world model and scored, and each agent executes its
best-scoring real action. This uses the factorization twice: a candidate changes one entity's
slots with the others held, and agents are chosen independently (they interact only when they
collide). What is executed is exactly what was scored.

``search="cem"`` (every latent-action family; ``search="auto"`` picks it for continuous latents
and ``controller`` for FSQ codes): the world model is driven with *real* actions through the
learned controller (:mod:`latentrl.controller`). For each agent, sequences of ``horizon`` real
actions, every other agent held at the decoder's reading of the null plan, are rolled through
the controller and the forward dynamics (:meth:`LatentPlanner.sequence_scores`); the
cross-entropy method (:func:`cem_search`) refits a per-step action distribution to the best
sequences, or scores every sequence when there are few; each agent executes the first action of
its best one. The slot score is averaged over the steps, each displacement measured against the
rollout in which every agent is held, which cancels a model's nonzero "stand still" move for
discrete and continuous latents alike.

``search="per-slot"``: coordinate descent over latent codes. Each of the C codes is tried for
each slot with the others held, all ``K * C`` candidates in one batch, and every slot whose best
code improves on the current plan takes it (``sweeps`` rounds); the combined plan is decoded into
real actions afterwards. Only *acting* slots are searched, those whose code can change a decoded
real action (:meth:`LatentPlanner.acting_slots`), and slots on one entity switch together
(:meth:`LatentPlanner.entity_groups`). Its weakness is that last decoding: a combination of
changed slots can decode into something else than each change alone, which the controller
search avoids by scoring exactly what it executes (``docs/research/planner_slot_score.md``).
``search="joint"`` scores every one of the C codes of a scene-level model (LAM has one latent
action).

Score (``score="slots"``, the default): in slot space. Each entity of the goal image (an agent,
found by its colour: :mod:`agents.entities`) stands somewhere in the current frame; its slot is
the one whose centroid is nearest. A candidate's score is the sum over entities of the distance
from (where the entity stands + its slot's predicted centroid displacement) to where the entity
is in the goal image. The forward dynamics predict each slot's displacement from its own latent
action (FLAM's positional slots), so nothing is decoded to pixels, and a world model that draws
an agent badly (say, on its own goal tile, which random play rarely shows) does not turn the
winning move into "agent lost" (``docs/research/planner_slot_score.md``).

``score="pixels"`` (:func:`goal_distance`): the predicted frame is decoded to pixels, split into
one plane per colour of the goal image, and compared with the goal by how far each colour's
centre of mass is from the goal's, plus a blurred pixel difference. It needs no positional
slots, but it reads every error of the prediction, also in cells far from the agents.
``horizon > 1`` repeats each candidate for several steps.

Shapes: frames uint8 ``(H, W, 3)``; codes ``(b, n)``; states ``(b, k, d_s)``; latent actions
``(b, k', d_a)``; per-agent actions int ``(a,)``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from agents.entities import EntityGoal, entity_goal
from latentrl.config import opt
from latentrl.controller import LatentController
from latentrl.models.base import LatentActionModel
from latentrl.tokenizer import Tokenizer
from latentrl.types import frames_to_float


class LatentDecoder(Protocol):
    """Latent-action decoder f: states at t and latent actions -> per-agent action logits."""

    def __call__(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor: ...


@dataclasses.dataclass(frozen=True)
class PlannerConfig:
    """How the planner searches and scores."""

    search: Literal["auto", "per-slot", "controller", "joint", "cem"] = opt(
        "auto",
        "auto: controller for FSQ latent actions, cem for continuous ones; controller: per "
        "agent, each real action through the one-entity code change the decoder reads as it "
        "(FSQ, one step); cem: per agent, real-action sequences of --planner-horizon steps "
        "driven through the learned controller (every family), searched by the cross-entropy "
        "method; per-slot: coordinate descent over every slot's codes, decoded afterwards; "
        "joint: all codes of one scene action (scene models)",
    )
    score: Literal["slots", "pixels"] = opt(
        "slots",
        "slots: each entity's position plus its slot's predicted centroid displacement against "
        "its place in the goal image (positional FLAM); pixels: the decoded predicted frame "
        "against the goal image",
    )
    sweeps: int = opt(
        2, "sweeps over the slots per step (each scores every slot's codes in one batch)"
    )
    horizon: int = opt(
        1,
        "cem: length of each searched real-action sequence; other searches: steps each "
        "candidate latent action is repeated when scored",
    )
    rollout: Literal["reencode", "latent"] = opt(
        "reencode",
        "multi-step rollouts: predicted slots decoded to codes and re-encoded (the path the "
        "model is trained on with pred_steps 1), or fed back as they are (trained with "
        "pred_steps > 1)",
    )
    centroids: Literal["predicted", "encoded"] = opt(
        "predicted",
        "cem's slot score reads each slot's predicted centroid (the FDM's move head), or the "
        "centroid of its attention when the predicted frame is re-encoded (for a model whose "
        "move head is flat: docs/research/planner_cem.md)",
    )
    entity_slots: Literal["acting", "nearest"] = opt(
        "acting",
        "cem: each goal entity's move is read from the slots the controller says its agent "
        "drives, weighted by how much (acting), or from the slot whose centroid is nearest "
        "(nearest, as the controller search); with diffuse slots a background slot's centroid "
        "can sit nearer to an agent than the slot that holds it",
    )
    cem_population: int = opt(
        64,
        "cem: sequences scored per agent and iteration; when actions^horizon is at most this, "
        "every sequence is scored once instead (exhaustive, exact)",
    )
    cem_elites: int = opt(8, "cem: best sequences the sampling distribution is refitted to")
    cem_iterations: int = opt(3, "cem: refits of the per-step action distribution")
    cem_smoothing: float = opt(
        0.7, "cem: weight of the elites' action frequencies in each refit (1: no memory)"
    )
    blur_cells: float = opt(1.0, "Gaussian blur width (in cells) of the goal distance's pixel term")
    conserve: float = opt(
        2.0,
        "weight of the colour-mass change between the current and the predicted frame: "
        "entities neither appear nor vanish, so a prediction that creates or erases one "
        "(a world model queried off its data) is penalised instead of rewarded",
    )
    group_cells: float = opt(
        0.5,
        "slots whose centroids are closer than this (in cells) hold one entity and are switched "
        "together (0: every slot alone)",
    )
    escape_temperature: float = opt(
        0.25,
        "controller: on a frame already seen in the episode (a cycle), each agent draws its "
        "action from softmax(-score / T) instead of taking the best; scores are in cells (0: "
        "never draw)",
    )
    min_code_share: float = opt(
        0.01, "search only latent codes the model infers at least this often on its video"
    )


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of images ``(b, c, h, w)`` with zero padding."""
    radius = max(int(3 * sigma), 1)
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    kh = repeat(kernel, "r -> c 1 r 1", c=c)
    kw = repeat(kernel, "r -> c 1 1 r", c=c)
    x = F.conv2d(x, kh, padding=(radius, 0), groups=c)
    return F.conv2d(x, kw, padding=(0, radius), groups=c)


def goal_palette(goal: torch.Tensor, max_colours: int = 64) -> torch.Tensor:
    """The distinct colours ``(p, c)`` of a goal image ``(c, h, w)`` in [0, 1]."""
    pixels = rearrange((goal * 255).round(), "c h w -> (h w) c")
    colours = torch.unique(pixels, dim=0) / 255
    if len(colours) > max_colours:
        raise ValueError(
            f"the goal image has {len(colours)} distinct colours (at most {max_colours}): the "
            "palette distance is meant for flat-shaded scenes such as MultiGrid"
        )
    return colours


def colour_planes(frames: torch.Tensor, palette: torch.Tensor, width: float = 0.15) -> torch.Tensor:
    """Soft membership ``(b, p, h, w)`` of every pixel of ``frames`` ``(b, c, h, w)`` in each
    palette colour ``(p, c)`` (a Gaussian of the RGB distance, ``width`` in [0, 1] units)."""
    d2 = (rearrange(frames, "b c h w -> b 1 c h w") - palette[None, :, :, None, None]).pow(2)
    return torch.exp(-d2.sum(dim=2) / (2 * width**2))


def plane_centroids(planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mass ``(b, p)`` and centroid ``(b, p, 2)`` (pixels, (y, x)) of planes ``(b, p, h, w)``."""
    h, w = planes.shape[-2:]
    ys = torch.arange(h, dtype=planes.dtype, device=planes.device)
    xs = torch.arange(w, dtype=planes.dtype, device=planes.device)
    mass = planes.sum(dim=(-2, -1))
    cy = (planes.sum(-1) * ys).sum(-1) / mass.clamp_min(1e-6)
    cx = (planes.sum(-2) * xs).sum(-1) / mass.clamp_min(1e-6)
    return mass, torch.stack([cy, cx], dim=-1)


def goal_distance(frames: torch.Tensor, goal: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Distance ``(b,)`` of frames ``(b, c, h, w)`` in [0, 1] to the goal ``(c, h, w)``.

    Each image is split into one plane per colour of the goal's palette; the distance is the sum
    over colours of how far the plane's centre of mass is from the goal's (in pixels), plus the
    mean squared difference of the planes blurred by ``sigma_px``. Per-colour planes keep entities
    of different colours apart (in plain RGB an agent on another's goal blends into a blob that
    resembles the goal picture), and the centroid term keeps a slope at any distance, where a
    blurred pixel difference saturates beyond a few blur widths and leaves a greedy search on a
    plateau (``docs/research/planner_slot_score.md``).
    """
    palette = goal_palette(goal)
    cur, tgt = colour_planes(frames, palette), colour_planes(goal[None], palette)
    mass, centre = plane_centroids(cur)
    goal_mass, goal_centre = plane_centroids(tgt)
    h, w = frames.shape[-2:]
    # A colour that vanished from the prediction (a lost entity) counts as maximally far.
    far = torch.full_like(mass, float(h + w))
    present = mass > 0.25 * goal_mass
    moved = torch.where(present, (centre - goal_centre).norm(dim=-1), far)
    blurred = (gaussian_blur(cur, sigma_px) - gaussian_blur(tgt, sigma_px)).pow(2)
    return moved.sum(-1) + blurred.mean(dim=(1, 2, 3)) * h * w


@dataclasses.dataclass(frozen=True)
class PlanGoal:
    """What one step's search scores against.

    ``image`` is the goal image ``(c, h, w)``; ``mass`` ``(1, p)`` the colour masses of the
    current frame (pixel score); ``null`` ``(1, k', d_a)`` the null plan, and ``entities`` and
    ``slots`` ``(e,)`` (the slot of each entity) the slot score's targets; ``weights``
    ``(e, k)``, if given, reads each entity's move as a weighted mean of the slots' moves instead
    (the cem search's acting-slot rule).
    """

    image: torch.Tensor
    null: torch.Tensor
    mass: torch.Tensor | None = None
    entities: EntityGoal | None = None
    slots: torch.Tensor | None = None
    weights: torch.Tensor | None = None


class LatentPlanner:
    """Acts in the real env by searching latent actions with a world model (see module doc).

    ``act(obs, info)`` reads the goal image from ``info["goal_frame"]`` (see
    :class:`agents.goal.GoalFrame`).
    """

    def __init__(
        self,
        model: LatentActionModel,
        tokenizer: Tokenizer,
        decoder: LatentDecoder,
        config: PlannerConfig,
        cell_px: int,
        usable_codes: torch.Tensor | None = None,
        controller: LatentController | None = None,
    ) -> None:
        discrete = model.config.bottleneck.num_codes is not None
        if config.search == "auto":
            config = dataclasses.replace(config, search="controller" if discrete else "cem")
        if config.search != "cem" and not discrete:
            raise ValueError(
                f"--planner-search {config.search} swaps FSQ codes, but this model's latent "
                f"actions are continuous ({model.config.action_kind}): use --planner-search cem "
                "(real actions through the learned controller) or auto"
            )
        if config.search == "cem":
            if controller is None:
                raise ValueError(
                    "--planner-search cem drives the world model with real actions through a "
                    "learned controller: pass one (latentrl.controller.train_controller)"
                )
            if config.score != "slots":
                raise ValueError(
                    "--planner-search cem scores in slot space: use --planner-score slots"
                )
            if config.horizon < 1 or config.cem_population < 1 or config.cem_iterations < 1:
                raise ValueError(
                    f"cem needs horizon, population and iterations >= 1, got {config.horizon}, "
                    f"{config.cem_population}, {config.cem_iterations}"
                )
            if not 1 <= config.cem_elites <= config.cem_population:
                raise ValueError(
                    f"--planner-cem-elites {config.cem_elites} must lie in 1..population "
                    f"({config.cem_population})"
                )
        elif config.search != "joint" and not model.config.factored:
            config = dataclasses.replace(config, search="joint")
        if config.score == "slots" and not model.config.positional:
            raise ValueError(
                "the slot score needs positional slots (a FLAM whose states carry centroids): "
                "use PlannerConfig(score='pixels') for this model"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer.eval()
        self.decoder = decoder
        self.config = config
        self.controller = controller
        self.sigma_px = config.blur_cells * cell_px
        if discrete:
            bottleneck = model.idm.bottleneck
            codes = torch.arange(model.config.bottleneck.num_codes or 1)
            self.code_indices = codes if usable_codes is None else usable_codes
            self.codebook = bottleneck.codes_from_indices(self.code_indices)
        self.cell_px = cell_px
        self._state: torch.Tensor | None = None
        self._seen: set[bytes] = set()
        self._gen = torch.Generator().manual_seed(0)

    def reset(self, seed: int | None = None) -> None:
        """Forget the slots and frames of the previous episode; seed the escape draws."""
        self._state = None
        self._seen = set()
        self._gen = torch.Generator().manual_seed(0 if seed is None else seed)

    @torch.no_grad()
    def encode(self, obs: np.ndarray) -> torch.Tensor:
        """Frame -> states ``(1, k, d_s)``, slots carried over from the last step of the episode
        (:meth:`act`) so that slot k keeps its entity; does not itself advance the episode."""
        size = self.tokenizer.config.frame_size
        if obs.shape != (size, size, self.tokenizer.config.channels):
            raise ValueError(
                f"the world model was trained on {size}x{size} frames but the env gives "
                f"{obs.shape[0]}x{obs.shape[1]}: plan in the env it was trained for (same room "
                "size and tile size) or train a model on this env's video"
            )
        x = frames_to_float(torch.from_numpy(np.ascontiguousarray(obs))[None, None])[0]
        codes = self.tokenizer.encode(x)[1]
        if self._state is None:
            state = self.model.encode_states(codes[:, None]).states[:, 0]
        else:
            state = self.model.encode_next(codes, self._state)
        return state

    @torch.no_grad()
    def null_actions(self, state: torch.Tensor) -> torch.Tensor:
        """Latent actions ``(1, k', d_a)`` the model infers for 'nothing moves': the states
        ``(1, k, d_s)`` followed by themselves. (Re-encoding the same frame instead lets slot
        attention shift the centroids a little, which the IDM can read as a move.)"""
        return self.model.infer(torch.stack([state, state], dim=1), None).actions[:, 0]

    @torch.no_grad()
    def goal_of(
        self, obs: np.ndarray, state: torch.Tensor, null: torch.Tensor, goal_frame: np.ndarray
    ) -> PlanGoal:
        """The targets of one step's search, from the current frame, its states
        ``(1, k, d_s)`` and null plan ``(1, k', d_a)``, and the goal image (frames uint8
        ``(H, W, 3)``)."""
        image, now = (
            rearrange(
                frames_to_float(torch.from_numpy(np.ascontiguousarray(f))[None, None]),
                "1 1 c h w -> c h w",
            )
            for f in (goal_frame, obs)
        )
        palette = goal_palette(image)
        if self.config.score == "pixels":
            return PlanGoal(image, null, mass=colour_planes(now[None], palette).sum(dim=(-2, -1)))
        entities = entity_goal(now, image, palette, self.cell_px, self.model.config.grid)
        slots = torch.cdist(entities.now, state[0, :, -2:]).argmin(dim=1)
        return PlanGoal(image, null, entities=entities, slots=slots)

    @torch.no_grad()
    def score(self, state: torch.Tensor, actions: torch.Tensor, goal: PlanGoal) -> torch.Tensor:
        """Goal distance ``(b,)`` after repeating latent actions ``(b, k', d_a)`` for
        ``horizon`` steps from ``state`` ``(1, k, d_s)``."""
        cur = repeat(state, "1 k d -> b k d", b=actions.shape[0])
        for step in range(self.config.horizon):
            predicted = self.model.predict_next(cur, actions)
            if self.config.score == "slots" and step + 1 == self.config.horizon:
                break
            codes = self.model.aggregator.generate(predicted)
            if step + 1 < self.config.horizon:
                cur = self.model.encode_next(codes, predicted)
        if self.config.score == "slots":
            assert goal.entities is not None and goal.slots is not None
            move = predicted[:, goal.slots, -2:] - state[:, goal.slots, -2:]
            # A slot at its null action stays where it is: the learned centroid move of the
            # null code need not be zero (it can exceed a real move's), and it would make
            # standing still look like progress (docs/research/planner_slot_score.md).
            held = (actions[:, goal.slots] == goal.null[:, goal.slots]).all(dim=-1)
            move = move.masked_fill(held[..., None], 0.0)
            return (goal.entities.now + move - goal.entities.target).norm(dim=-1).sum(-1)
        frames = self.tokenizer.decode_indices(codes)
        distance = goal_distance(frames, goal.image, self.sigma_px)
        if self.config.conserve > 0 and goal.mass is not None:
            mass = colour_planes(frames, goal_palette(goal.image)).sum(dim=(-2, -1))
            distance = distance + self.config.conserve * (mass - goal.mass).abs().sum(-1)
        return distance

    @torch.no_grad()
    def plan(self, state: torch.Tensor, goal: PlanGoal) -> torch.Tensor:
        """The chosen latent actions ``(1, k', d_a)``.

        Per sweep, every (slot, code) change of the current plan is scored in one batch of
        ``K * C`` predictions; each slot whose best code beats the current plan takes it, all at
        once (the factorization makes the slots' choices nearly independent).
        """
        null = goal.null
        k = null.shape[1]
        if self.config.search == "joint" or k == 1:
            candidates = repeat(self.codebook, "c d -> c k d", k=k)
            return candidates[self.score(state, candidates, goal).argmin()][None]
        chosen = null.clone()
        groups = self.entity_groups(state)
        active = self.acting_slots(state, null)
        for _ in range(self.config.sweeps):
            current = self.score(state, chosen, goal)[0]
            scores = rearrange(
                self.score(state, self.single_swaps(chosen, groups), goal), "(s j) -> s j", s=k
            )
            scores = scores.masked_fill(~active[:, None], float("inf"))
            best, pick = scores.min(dim=1)
            better = best < current
            if not better.any():
                break
            new = chosen.clone()
            for slot in torch.nonzero(better).reshape(-1).tolist():
                new[0, groups[slot]] = self.codebook[pick[slot]]
            chosen = new
        return chosen

    @torch.no_grad()
    def acting_slots(self, state: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
        """Which slots ``(k,)`` can change what is executed: those for which some code, put in
        place of the null action, changes the decoded action of some agent.

        Only the decoder's actions reach the env. A slot whose code changes none of them (a
        goal cell, the background, a spare slot) would let the search pick a prediction in
        which, say, a goal slides toward its agent: it scores well and is never executed.
        """
        base = self.decoder(state, null).argmax(-1)  # (1, a)
        flat = self.single_swaps(null, self.entity_groups(state))
        decoded = self.decoder(repeat(state, "1 k d -> b k d", b=flat.shape[0]), flat).argmax(-1)
        changed = rearrange((decoded != base).any(-1), "(s j) -> s j", s=null.shape[1])
        return changed.any(dim=1)

    def entity_groups(self, state: torch.Tensor) -> torch.Tensor:
        """``(k, k)`` bool: row ``s`` marks the slots that hold the same entity as slot ``s``.

        Slot attention may give one agent two slots (both attend to its cell, both infer its
        move, and the decoder learned to read them together). Changing one of them alone is a
        plan the world model and the decoder never saw, so slots whose centroids lie within
        ``group_cells`` of each other are switched together. Without centroids each slot is its
        own group.
        """
        k = state.shape[1]
        if not self.model.config.positional or self.config.group_cells <= 0:
            return torch.eye(k, dtype=torch.bool)
        centre = state[0, :, -2:]
        return torch.cdist(centre, centre) < self.config.group_cells

    def single_swaps(self, plan: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Every plan ``(k * C, k, d_a)`` that differs from ``plan`` ``(1, k, d_a)`` in one
        entity: row ``s * C + j`` has slot ``s`` and the slots ``groups[s]`` of its entity
        (:meth:`entity_groups`, ``(k, k)``) switched to code ``j``."""
        c, k = self.codebook.shape[0], plan.shape[1]
        plans = repeat(plan, "1 k d -> s j k d", s=k, j=c)
        swap = repeat(groups, "s k -> s j k d", j=c, d=plan.shape[-1])
        plans = torch.where(swap, repeat(self.codebook, "j d -> s j k d", s=k, k=k), plans)
        return rearrange(plans, "s j k d -> (s j) k d")

    @torch.no_grad()
    def control(self, state: torch.Tensor, goal: PlanGoal, escape: bool = False) -> np.ndarray:
        """Real actions ``(a,)`` chosen through a controller (real action -> latent action).

        For each agent a and real action u, the controller is the one-entity change of the null
        plan that the decoder reads most surely as "agent a does u, every other agent does as
        under the null plan" (the decoder, trained on the labelled subset, knows which slot is
        which agent). Each of these ``a * v`` plans is rolled through the world model and
        scored; each agent executes its best-scoring real action, so what is executed is exactly
        what was scored, with no decoding afterwards. With ``escape`` each agent draws its
        action from ``softmax(-score / escape_temperature)`` instead.
        """
        null = goal.null
        flat = self.single_swaps(null, self.entity_groups(state))
        logp = self.decoder(repeat(state, "1 k d -> b k d", b=flat.shape[0]), flat)
        logp = logp.log_softmax(-1)  # (n, a, v)
        a, v = logp.shape[1:]
        # Agent a doing u while every other agent does what it does under the null plan: a
        # plan that also moves another agent would be scored for that agent's move too.
        base = self.decoder(state, null).argmax(-1)[0]  # (a,)
        keep = logp[:, torch.arange(a), base]  # (n, a)
        others = keep.sum(-1, keepdim=True) - keep
        pick = (logp + others[..., None]).argmax(dim=0)  # (a, v)
        plans = rearrange(flat[rearrange(pick, "a v -> (a v)")], "(a v) k d -> a v k d", a=a)
        # What an agent does under the null plan is the null plan itself, not the decoder's
        # most confident reading of that action.
        plans[torch.arange(a), base] = null[0]
        plans = rearrange(plans, "a v k d -> (a v) k d")
        scores = rearrange(self.score(state, plans, goal), "(a v) -> a v", a=a, v=v)
        if escape and self.config.escape_temperature > 0:
            probs = (-scores / self.config.escape_temperature).softmax(-1)
            return torch.multinomial(probs, 1, generator=self._gen)[:, 0].numpy()
        return scores.argmin(dim=-1).cpu().numpy()

    @torch.no_grad()
    def held_actions(self, state: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
        """Real actions ``(a,)`` every agent is held at while another is searched: what the
        decoder reads in the null plan (the model's "nothing moves")."""
        return self.decoder(state, null).argmax(-1)[0]

    @torch.no_grad()
    def sequence_scores(
        self, state: torch.Tensor, goal: PlanGoal, held: torch.Tensor, seqs: torch.Tensor
    ) -> torch.Tensor:
        """Slot-space scores ``(a, p)`` of real-action sequences ``(a, p, H)``: row ``j`` moves
        agent ``j`` along each sequence while every other agent keeps its ``held`` action
        ``(a,)``, each step's latent actions from the learned controller.

        Score: the mean over the ``H`` steps of the sum over entities of the distance from (where
        the entity stands + its slot's centroid displacement) to its goal, the displacement
        measured against the rollout in which every agent keeps its held action. That reference
        cancels the centroid move the model predicts for standing still (not zero in general),
        so holding still never looks like progress, for discrete and continuous latents alike.
        """
        assert self.controller is not None and goal.entities is not None
        assert goal.slots is not None
        a, p, h = seqs.shape
        acts = repeat(held, "a -> b h a", b=a * p + 1, h=h).clone()
        rows = torch.arange(a * p)
        agent = repeat(torch.arange(a), "a -> (a p)", p=p)
        acts[rows, :, agent] = rearrange(seqs, "a p h -> (a p) h")  # last row: the reference
        cur = repeat(state, "1 k d -> b k d", b=a * p + 1)
        distance = torch.zeros(a * p, device=state.device)
        for step in range(h):
            latent = self.controller.latent(cur, acts[:, step])
            predicted = self.model.predict_next(cur, latent)
            need_codes = self.config.centroids == "encoded" or (
                self.config.rollout == "reencode" and step + 1 < h
            )
            encoded = None
            if need_codes:
                # Slots initialised from the current ones, as in training and model.rollout.
                encoded = self.model.encode_next(self.model.aggregator.generate(predicted), cur)
            source = encoded if self.config.centroids == "encoded" else predicted
            assert source is not None
            centre = source[..., -2:]  # (b, k, 2)
            shift = centre[:-1] - centre[-1:]  # against the all-held reference
            if goal.weights is not None:
                move = torch.einsum("ek,bkc->bec", goal.weights, shift)
            else:
                move = shift[:, goal.slots]  # (b, e, 2)
            where = goal.entities.now + move
            distance = distance + (where - goal.entities.target).norm(dim=-1).sum(-1)
            if step + 1 < h:
                cur = encoded if self.config.rollout == "reencode" else predicted
                assert cur is not None
        return rearrange(distance / h, "(a p) -> a p", a=a)

    @torch.no_grad()
    def acting_weights(
        self, state: torch.Tensor, goal: PlanGoal, held: torch.Tensor
    ) -> torch.Tensor | None:
        """Weights ``(e, k)``: how each goal entity's move is read from the slots' moves, from
        what the controller says about which slots each agent drives.

        Agent ``j``'s response in slot ``k`` is the largest change of slot ``k``'s controller
        latent when ``j``'s real action changes from its held one (the others held); its slots'
        weights are these responses normalised to sum 1, and its position the weighted mean of
        their centroids. Entities (found by colour) are matched one to one to the agents whose
        position is nearest, nearest pairs first. A slot whose centroid sits on an agent but
        which no agent drives (background) is never read. None when the controller moves no
        slot at all (the nearest-slot rule is then used).
        """
        assert self.controller is not None and goal.entities is not None
        a, v = len(held), self.model.config.agent_actions
        acts = repeat(held, "a -> b a", b=a * v + 1).clone()
        rows = torch.arange(a * v)
        acts[rows, repeat(torch.arange(a), "a -> (a v)", v=v)] = repeat(
            torch.arange(v), "v -> (a v)", a=a
        )
        latent = self.controller.latent(repeat(state, "1 k d -> b k d", b=a * v + 1), acts)
        change = (latent[:-1] - latent[-1:]).norm(dim=-1)  # (a * v, k)
        response = rearrange(change, "(a v) k -> a v k", a=a).amax(dim=1)  # (a, k)
        total = response.sum(dim=1, keepdim=True)
        if not bool((total > 0).any()):
            return None
        weights = response / total.clamp_min(1e-12)  # (a, k); rows of undriven agents: 0
        where = weights @ state[0, :, -2:]  # (a, 2)
        dist = torch.cdist(goal.entities.now, where)  # (e, a)
        dist[:, total[:, 0] <= 0] = float("inf")
        out = torch.zeros(len(goal.entities), state.shape[1])
        free = torch.ones(a, dtype=torch.bool)
        order = torch.argsort(dist.flatten()).tolist()
        done = torch.zeros(len(goal.entities), dtype=torch.bool)
        assert goal.slots is not None
        for flat in order:
            e, j = divmod(flat, a)
            if done[e] or not free[j] or not torch.isfinite(dist[e, j]):
                continue
            out[e], done[e], free[j] = weights[j], True, False
        # Entities left without a driven agent are read from their nearest slot.
        for e in torch.nonzero(~done).reshape(-1).tolist():
            out[e, int(goal.slots[e])] = 1.0
        return out

    @torch.no_grad()
    def cem_control(self, state: torch.Tensor, goal: PlanGoal, escape: bool = False) -> np.ndarray:
        """Real actions ``(a,)``: per agent, the first action of the best real-action sequence
        found by :func:`cem_search` (others held; see :meth:`sequence_scores`). With ``escape``
        each agent draws its first action from ``softmax(-score / escape_temperature)`` over
        the best score found for each first action."""
        held = self.held_actions(state, goal.null)
        cfg = self.config
        if cfg.entity_slots == "acting":
            weights = self.acting_weights(state, goal, held)
            if weights is not None:
                goal = dataclasses.replace(goal, weights=weights)
        best, first = cem_search(
            lambda seqs: self.sequence_scores(state, goal, held, seqs),
            agents=len(held),
            actions=self.model.config.agent_actions,
            horizon=cfg.horizon,
            population=cfg.cem_population,
            elites=cfg.cem_elites,
            iterations=cfg.cem_iterations,
            smoothing=cfg.cem_smoothing,
            generator=self._gen,
        )
        if escape and cfg.escape_temperature > 0:
            probs = (-first / cfg.escape_temperature).softmax(-1)
            return torch.multinomial(probs, 1, generator=self._gen)[:, 0].numpy()
        return best[:, 0].cpu().numpy()

    @torch.no_grad()
    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Per-agent real actions ``(a,)`` for the current frame."""
        if "goal_frame" not in info:
            raise KeyError(
                "the planner needs the goal image in info['goal_frame']: wrap the env in "
                "agents.goal.GoalFrame"
            )
        state = self.encode(obs)
        null = self.null_actions(state)
        goal = self.goal_of(obs, state, null, info["goal_frame"])
        self._state = state
        if self.config.search == "cem":
            key = obs.tobytes()
            escape = key in self._seen
            self._seen.add(key)
            return self.cem_control(state, goal, escape=escape)
        if self.config.search == "controller":
            # Greedy search in an imperfect model can cycle (two frames, each scoring the move
            # to the other best); the env is deterministic, so a frame seen before in this
            # episode means a cycle, and only a different choice leaves it.
            key = obs.tobytes()
            escape = key in self._seen
            self._seen.add(key)
            return self.control(state, goal, escape=escape)
        chosen = self.plan(state, goal)
        return self.decoder(state, chosen).argmax(-1)[0].cpu().numpy()


@torch.no_grad()
def usable_codes(
    model: LatentActionModel, codes: torch.Tensor, min_share: float = 0.01
) -> torch.Tensor:
    """Latent code indices the model infers at least ``min_share`` of the time on windows of
    its own (unlabelled) video ``codes (b, t, n)``: the codes that mean something. Codes it never
    uses were never trained to move anything, and a planner that tries them queries the world
    model off its data."""
    indices = model.infer_latent_actions(codes).indices
    if indices is None:
        raise ValueError("usable_codes needs a model with discrete (fsq) latent actions")
    counts = torch.bincount(indices.reshape(-1), minlength=model.config.bottleneck.num_codes)
    share = counts.float() / counts.sum()
    keep = torch.nonzero(share >= min_share).reshape(-1)
    return keep if len(keep) else torch.arange(len(counts))


def cem_search(
    score: Callable[[torch.Tensor], torch.Tensor],
    agents: int,
    actions: int,
    horizon: int,
    population: int = 64,
    elites: int = 8,
    iterations: int = 3,
    smoothing: float = 0.7,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cross-entropy method over discrete action sequences, one search per agent at once.

    ``score`` maps sequences int ``(agents, p, horizon)`` to costs ``(agents, p)`` (lower is
    better). When ``actions ** horizon <= population`` every sequence is scored once (exact);
    otherwise each of ``iterations`` rounds samples ``population`` sequences per agent from a
    per-step categorical distribution (uniform at first) and refits it toward the action
    frequencies of the ``elites`` cheapest (weight ``smoothing``).

    Returns the cheapest sequence found per agent ``(agents, horizon)`` and, per agent and first
    action, the cheapest cost found with it ``(agents, actions)`` (inf where never tried).
    """
    if actions**horizon <= population:
        every = torch.tensor(list(itertools.product(range(actions), repeat=horizon)))
        seqs = repeat(every, "p h -> a p h", a=agents)
        costs = score(seqs)
        return _cem_result(seqs, costs, actions)
    probs = torch.full((agents, horizon, actions), 1.0 / actions)
    found_seqs, found_costs = [], []
    for _ in range(iterations):
        flat = rearrange(probs, "a h v -> (a h) v")
        draws = torch.multinomial(flat, population, replacement=True, generator=generator)
        seqs = rearrange(draws, "(a h) p -> a p h", a=agents)
        costs = score(seqs)
        found_seqs.append(seqs)
        found_costs.append(costs)
        top = costs.topk(elites, dim=1, largest=False).indices  # (a, e)
        best = torch.gather(seqs, 1, repeat(top, "a e -> a e h", h=horizon))
        freq = F.one_hot(best, actions).float().mean(dim=1)  # (a, h, v)
        probs = (1 - smoothing) * probs + smoothing * freq
    return _cem_result(torch.cat(found_seqs, 1), torch.cat(found_costs, 1), actions)


def _cem_result(
    seqs: torch.Tensor, costs: torch.Tensor, actions: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cheapest sequence per agent ``(a, h)`` and cheapest cost per first action ``(a, v)``."""
    a = seqs.shape[0]
    best = seqs[torch.arange(a), costs.argmin(dim=1)]
    first = torch.full((a, actions), float("inf"))
    first = first.scatter_reduce(1, seqs[:, :, 0], costs.float(), reduce="amin")
    return best, first
