"""One play-through of a trained world model, steered one entity at a time.

A :class:`PlaySession` starts from a frame of the run's held-out split (the tokenizer run's cached
codes, :func:`latentrl.control.load_scene`), holds the model's slot states, and advances one
frame per :meth:`PlaySession.step`: the *selected* entity's slots take the latent action the
player chose (an FSQ code index, or a vector for continuous latent actions), every other slot
follows the *others* rule: ``"null"`` (the latent action the model infers for "nothing changes":
the current states followed by themselves) or ``"video"`` (the latent actions inferred from the
original video from the same start frame, so slot ``k`` keeps the entity it holds; past the
video's end, null). A step is exactly one step of :func:`latentrl.control.controlled_rollout`.

Selecting: a click at pixel ``(x, y)`` names a token; for a factored model (FLAM) the entity is
the slot with the most attention on that token plus the slots :func:`latentrl.control.bind_agents`
adds (those holding a share of it, and near-empty slots whose centroid lies on it). A scene model
(LAM) has one latent action per transition, so any click selects the scene latent and a code
moves whatever it explains: the contrast the playground exists to show.

Code labels: with a latent-action decoder (:class:`latentrl.decoder.ActionDecoder`), each code is
named by the real action the decoder reads for the selected entity's agent (the agent whose
decoded action varies most over the codes) when the entity's slots take that code and the
others follow the current rule; without one, by index.

Shapes: codes ``(1, n)``; slot states ``(1, k, d_s)``; latent actions ``(1, k', d_a)``; frames
uint8 ``(h, w, 3)``; attention ``(k, n)``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from einops import repeat

from latentrl.control import (
    Entity,
    HeldOutRun,
    Scene,
    bind_agents,
    code_actions,
    load_scene,
    num_codes,
    num_latents,
    rollout_attention,
)
from latentrl.decoder import ActionDecoder
from latentrl.views import MULTIGRID_ACTION_NAMES, slot_colours
from latentrl.viz import gif_bytes, mp4_bytes

Others = Literal["null", "video"]
OTHERS: tuple[str, ...] = ("null", "video")


@dataclasses.dataclass
class PlayFrame:
    """One frame of the play-through: its codes ``(1, n)``, slot states ``(1, k, d_s)``, the
    decoded image and what produced it; ``attn (k, n)`` is filled in when first needed."""

    codes: torch.Tensor
    state: torch.Tensor
    image: np.ndarray
    label: str
    attn: torch.Tensor | None = None


@dataclasses.dataclass(frozen=True)
class CodeChoice:
    """A button: FSQ code ``index`` and its label (the decoded real action, or the index)."""

    index: int
    label: str


@torch.no_grad()
def null_actions(model: torch.nn.Module, state: torch.Tensor) -> torch.Tensor:
    """Latent actions ``(1, k', d_a)`` inferred for 'nothing changes': states ``(1, k, d_s)``
    followed by themselves (as the planner's null plan)."""
    return model.infer(torch.stack([state, state], dim=1), None).actions[:, 0]


class PlaySession:
    """The state of one player's play-through (see the module docstring)."""

    def __init__(
        self,
        run: HeldOutRun,
        decoder: ActionDecoder | None = None,
        *,
        horizon: int = 32,
        seed: int = 0,
        others: Others = "null",
        share: float = 0.2,
    ) -> None:
        if decoder is not None:
            decoder.check_model(run.model)
        self.run, self.decoder, self.horizon, self.share = run, decoder, horizon, share
        self.rng = np.random.default_rng(seed)
        self.others: Others = others
        self.selected: Entity | None = None
        self.step_ms: list[float] = []
        # CPU time of this process per step: on a shared machine wall time also counts waiting.
        self.step_cpu_ms: list[float] = []
        self.episode, self.start = 0, 0
        self.scene: Scene
        self.frames: list[PlayFrame] = []
        self.new_start(episode=0, start=0)

    # -- what the model is -----------------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module:
        return self.run.model

    @property
    def factored(self) -> bool:
        return bool(self.run.model.config.factored)

    @property
    def num_codes(self) -> int | None:
        return num_codes(self.run.model)

    @property
    def action_dim(self) -> int:
        return int(self.run.model.config.bottleneck.action_dim)

    @property
    def frame_shape(self) -> tuple[int, int]:
        h, w = self.frames[0].image.shape[:2]
        return h, w

    # -- start frames ----------------------------------------------------------------------------
    def new_start(self, episode: int | None = None, start: int | None = None) -> None:
        """Begin again from a (random, unless given) frame of a held-out episode."""
        bounds = self.run.codes.episode_starts
        lengths = np.diff(bounds)
        if episode is None:
            usable = np.flatnonzero(lengths >= 2)
            episode = int(self.rng.choice(usable))
        length = int(lengths[episode])
        if start is None:
            start = int(self.rng.integers(0, max(1, length // 2)))
        steps = min(self.horizon, length - 1 - start)
        self.scene = load_scene(self.run, episode, start, steps)
        self.episode, self.start = episode, start
        codes = self.scene.codes[:, 0]
        state = self.model.encode_states(codes[:, None]).states[:, 0]
        attn = None if self.scene.attn is None else self.scene.attn[0, 0]
        self.frames = [PlayFrame(codes, state, self.run.decode(codes)[0], "start", attn)]
        self.selected = None

    def reset(self) -> None:
        """Back to this play-through's start frame (the selection is kept)."""
        del self.frames[1:]

    def undo(self) -> bool:
        """Drop the last step; False if at the start frame."""
        if len(self.frames) == 1:
            return False
        self.frames.pop()
        return True

    def set_others(self, mode: str) -> None:
        if mode not in OTHERS:
            raise ValueError(f"others must follow one of {OTHERS}, got {mode!r}")
        self.others = mode  # type: ignore[assignment]

    # -- slots and selection ---------------------------------------------------------------------
    def attention(self, i: int = -1) -> torch.Tensor | None:
        """Slot attention ``(k, n)`` of frame ``i`` (None for scene models)."""
        if not self.factored:
            return None
        frame = self.frames[i]
        if frame.attn is None:
            idx = range(len(self.frames))[i]
            codes = torch.cat([f.codes for f in self.frames[: idx + 1]])[None]
            attn = rollout_attention(self.model, codes[:, :1], codes[:, 1:])
            assert attn is not None
            for j in range(idx + 1):
                self.frames[j].attn = attn[0, j]
        assert frame.attn is not None
        return frame.attn

    def token_at(self, x: float, y: float) -> int:
        """Token under frame pixel ``(x, y)``."""
        h, w = self.frame_shape
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"({x}, {y}) lies outside the {w}x{h} frame")
        g = self.run.grid
        return int(y * g // h) * g + int(x * g // w)

    def select(self, x: float, y: float) -> Entity:
        """Select the entity under frame pixel ``(x, y)`` (see the module docstring)."""
        token = self.token_at(x, y)
        if not self.factored:
            self.selected = Entity("scene latent (moves the whole scene)", (0,))
            return self.selected
        attn = self.attention()
        assert attn is not None
        centroid = getattr(self.model, "centroid", None)
        positional = centroid is not None and self.model.config.positional
        centroids = centroid(attn) if positional else None
        entity = bind_agents(
            attn, torch.tensor([token]), self.share, False, centroids, self.run.grid
        )[0]
        self.selected = Entity(f"slots {list(entity.slots)}", entity.slots)
        return self.selected

    def select_slots(self, slots: Sequence[int]) -> Entity:
        k = num_latents(self.model)
        if not slots or any(not 0 <= s < k for s in slots):
            raise ValueError(f"slots must lie in 0..{k - 1}, got {list(slots)}")
        self.selected = Entity(f"slots {sorted(set(slots))}", tuple(sorted(set(slots))))
        return self.selected

    # -- latent actions --------------------------------------------------------------------------
    def base_actions(self) -> torch.Tensor:
        """Every slot's latent action ``(1, k', d_a)`` under the others rule at this step."""
        i = len(self.frames) - 1
        if self.others == "video" and i < self.scene.steps:
            return self.scene.actions[:, i]
        return null_actions(self.model, self.frames[-1].state)

    def chosen_action(
        self, code: int | None = None, vector: Sequence[float] | None = None
    ) -> tuple[torch.Tensor, str]:
        """The selected entity's latent action ``(1, d_a)`` and its label."""
        if (code is None) == (vector is None):
            raise ValueError("give exactly one of a code index or a latent-action vector")
        if code is not None:
            return code_actions(self.model, torch.tensor([int(code)])), f"code {int(code)}"
        v = torch.tensor([list(vector or ())], dtype=torch.float32)
        if v.shape[1] != self.action_dim:
            raise ValueError(f"latent actions have {self.action_dim} dimensions, got {v.shape[1]}")
        return v.to(self.model.token_pos.device), "[" + ", ".join(f"{x:.2f}" for x in v[0]) + "]"

    def _with_entity(self, base: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``base`` ``(B, k', d_a)`` with the selected slots set to ``action`` ``(B, d_a)``."""
        assert self.selected is not None
        k = base.shape[1]
        mask = torch.zeros(k, dtype=torch.bool, device=base.device)
        mask[list(self.selected.slots)] = True
        return torch.where(mask[None, :, None], repeat(action, "b d -> b k d", k=k), base)

    @torch.no_grad()
    def step(self, code: int | None = None, vector: Sequence[float] | None = None) -> float:
        """Advance one frame (the selected entity on the given action; with no action or no
        selection, every slot on the others rule); returns the step's wall time in ms."""
        t0, c0 = time.perf_counter(), time.process_time()
        actions = self.base_actions()
        label = f"others: {self.others}"
        if self.selected is not None and (code is not None or vector is not None):
            action, what = self.chosen_action(code, vector)
            actions = self._with_entity(actions, action)
            label = f"{self.selected.name}: {what}"
        state = self.frames[-1].state
        codes = self.model.aggregator.generate(self.model.predict_next(state, actions))
        new_state = self.model.encode_next(codes, state)
        image = self.run.decode(codes)[0]
        self.frames.append(PlayFrame(codes, new_state, image, label))
        ms = (time.perf_counter() - t0) * 1000
        self.step_ms.append(ms)
        self.step_cpu_ms.append((time.process_time() - c0) * 1000)
        return ms

    # -- labels ----------------------------------------------------------------------------------
    def action_names(self) -> tuple[str, ...]:
        v = self.decoder.num_actions if self.decoder is not None else 0
        if self.run.data.env == "multigrid" and v == len(MULTIGRID_ACTION_NAMES):
            return MULTIGRID_ACTION_NAMES
        return tuple(f"action {u}" for u in range(v))

    @torch.no_grad()
    def decoded(self) -> torch.Tensor | None:
        """What the decoder reads for each code on the selected entity: probabilities
        ``(C, a, v)``; None without a decoder, a selection or discrete codes."""
        count = self.num_codes
        if self.decoder is None or self.selected is None or count is None:
            return None
        base = self.base_actions()
        acts = code_actions(self.model, torch.arange(count))  # (C, d_a)
        plans = self._with_entity(repeat(base, "1 k d -> c k d", c=count), acts)
        state = repeat(self.frames[-1].state, "1 k d -> c k d", c=count)
        return self.decoder(state, plans).softmax(-1)

    def controlled_agent(self) -> int | None:
        """The agent whose decoded action varies most over the codes given to the selected
        entity (None without a decoder or for a scene model)."""
        probs = self.decoded()
        if probs is None or not self.factored:
            return None
        return int((probs - probs.mean(0, keepdim=True)).abs().sum(-1).mean(0).argmax())

    def code_choices(self) -> list[CodeChoice]:
        """One button per FSQ code (empty for continuous latent actions)."""
        count = self.num_codes
        if count is None:
            return []
        probs = self.decoded()
        if probs is None:
            return [CodeChoice(c, f"code {c}") for c in range(count)]
        names = self.action_names()
        agent = self.controlled_agent()
        if agent is None:
            # One scene latent: every agent's decoded action changes with it.
            return [
                CodeChoice(
                    c,
                    " ".join(
                        f"{j}:{names[int(u)]}" for j, u in enumerate(probs[c].argmax(-1).tolist())
                    ),
                )
                for c in range(count)
            ]
        best = probs[:, agent].max(-1)
        return [
            CodeChoice(c, f"{names[int(best.indices[c])]} {float(best.values[c]):.0%}")
            for c in range(count)
        ]

    # -- pictures --------------------------------------------------------------------------------
    def scale(self, target: int = 512) -> int:
        """Integer upscaling factor (nearest neighbour keeps pixels crisp)."""
        return max(1, target // max(self.frame_shape))

    def picture(self, outlines: bool = False, i: int = -1, target: int = 512) -> np.ndarray:
        """Frame ``i`` upscaled, with each slot's tokens (those it holds at least half of)
        outlined in its colour and the selected entity's tokens in white if ``outlines``;
        ``(H, W, 3)``."""
        s = self.scale(target)
        img = repeat(self.frames[i].image, "h w c -> (h a) (w b) c", a=s, b=s).copy()
        if not outlines or not self.factored:
            return img
        attn = self.attention(i)
        assert attn is not None
        g = self.run.grid
        # A token belongs to the slot holding most of it, if that slot holds at least half
        # (background tokens spread over many slots get no outline, -1).
        top = attn.max(0)
        owner = torch.where(top.values >= 0.5, top.indices, -1).reshape(g, g).cpu().numpy()
        h, w = img.shape[:2]
        rows = (np.arange(h) * g // h)[:, None]
        cols = (np.arange(w) * g // w)[None, :]
        pix = owner[rows, cols]  # (H, W) owning slot per pixel
        edge = np.zeros((h, w), bool)
        width = max(1, s // 8)
        for d in range(1, width + 1):
            edge[:-d] |= pix[:-d] != pix[d:]
            edge[d:] |= pix[:-d] != pix[d:]
            edge[:, :-d] |= pix[:, :-d] != pix[:, d:]
            edge[:, d:] |= pix[:, :-d] != pix[:, d:]
        colours = np.concatenate([slot_colours(attn.shape[0]), [[0, 0, 0]]]).astype(np.uint8)
        img[edge] = colours[pix[edge]]  # index -1: black, between background and a slot
        if self.selected is not None:
            chosen = np.isin(pix, list(self.selected.slots))
            ring = np.zeros_like(chosen)
            for d in range(1, width + 2):
                ring[:-d] |= chosen[:-d] != chosen[d:]
                ring[d:] |= chosen[:-d] != chosen[d:]
                ring[:, :-d] |= chosen[:, :-d] != chosen[:, d:]
                ring[:, d:] |= chosen[:, :-d] != chosen[:, d:]
            img[ring & chosen] = 255
        return img

    def video(self, target: int = 256) -> np.ndarray:
        """Every frame so far, upscaled: ``(t, H, W, 3)``."""
        s = self.scale(target)
        frames = np.stack([f.image for f in self.frames])
        return repeat(frames, "t h w c -> t (h a) (w b) c", a=s, b=s)

    def gif(self, fps: int = 4) -> bytes:
        return gif_bytes(self.video(), fps)

    def mp4(self, fps: int = 4) -> bytes:
        return mp4_bytes(self.video(), fps)

    def latency_ms(self) -> float | None:
        """Median wall time of the steps so far (ms), or None before the first."""
        return float(np.median(self.step_ms)) if self.step_ms else None
