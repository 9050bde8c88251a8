"""The interface every latent action model shares, and the training/rollout driver.

A model turns code indices ``(b, t, n)`` into states ``(b, t, k, d)`` (slots or tokens), infers
latent actions ``(b, t - 1, k', d_a)`` from consecutive states, predicts the next states with its
forward dynamics and decodes them to codes with the aggregator. Subclasses choose the state
encoder and the dynamics; everything else (loss weighting, multi-step prediction, rollout,
save/load) is here, so the comparison FLAM vs LAM vs OC+LAM vs WM is fair by construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from latentrl.checkpoint import load_weights, save_weights
from latentrl.config import from_dict, to_json
from latentrl.errors import ArtifactError
from latentrl.models.config import ModelConfig
from latentrl.nn.aggregator import Aggregator
from latentrl.nn.patches import patch_merge
from latentrl.quantize import BottleneckOutput
from latentrl.types import CodeBatch

SEED_POSITION_WEIGHT = 0.5
"""Length of the room's side in seed-feature units (unit look vectors): a tie-breaker only."""


class States(NamedTuple):
    """Encoded frames: ``states (b, t, k, d)``; slot attention ``attn (b, t, k, n)`` or None."""

    states: torch.Tensor
    attn: torch.Tensor | None


class LatentActions(NamedTuple):
    """``actions (b, t - 1, k', d_a)``; FSQ ``indices (b, t - 1, k')`` or None; aux loss."""

    actions: torch.Tensor
    indices: torch.Tensor | None
    aux_loss: torch.Tensor


class LatentActionModel(nn.Module):
    """Base class: token embedding, aggregator, loss, rollout, save/load."""

    def __init__(self, config: ModelConfig, code_features: torch.Tensor) -> None:
        super().__init__()
        if code_features.shape != (config.codebook_size, config.code_dim):
            raise ValueError(
                f"code feature table {tuple(code_features.shape)} does not match the config's "
                f"codebook ({config.codebook_size}, {config.code_dim})"
            )
        self.config = config
        d = config.d_model
        self.code_in = nn.Linear(config.code_dim, d)
        if config.pos_init == "sincos":
            self.token_pos = nn.Parameter(sincos_2d(config.grid, d))
        else:
            self.token_pos = nn.Parameter(torch.randn(config.num_tokens, d) * 0.02)
        rows, cols = torch.meshgrid(
            torch.arange(config.grid), torch.arange(config.grid), indexing="ij"
        )
        coords = torch.stack([rows, cols], dim=-1).reshape(-1, 2).float()
        self.register_buffer("token_coords", coords, persistent=False)
        # Token-level models may merge p x p cells into one state token (``scene_patch``); the
        # module exists only then, so that the weights of unmerged models keep their names.
        self.patch_merge = (
            patch_merge(d, config.grid, config.scene_patch) if config.scene_patch > 1 else None
        )
        self.aggregator = Aggregator(
            d,
            config.heads,
            config.num_tokens,
            code_features,
            config.subtokens,
            mode=config.aggregator,
            readout=config.resolved_readout,
            pos_channels=2 if config.positional else 0,
            prediction=config.prediction,
        )

    # -- hooks for subclasses ---------------------------------------------------------------
    def encode_states(self, codes: torch.Tensor) -> States:
        """Codes ``(b, t, n)`` -> states of every frame."""
        raise NotImplementedError

    def encode_next(self, codes: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """States ``(b, k, d)`` of one new frame ``(b, n)`` given the previous frame's states."""
        raise NotImplementedError

    def infer(self, states: torch.Tensor, true_actions: torch.Tensor | None) -> LatentActions:
        """Latent actions between consecutive states."""
        raise NotImplementedError

    def predict_next(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Forward dynamics: states ``(B, k, d)`` and actions ``(B, k', d_a)`` -> ``(B, k, d)``."""
        raise NotImplementedError

    def extra_loss(
        self, encoded: States, codes: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Model-specific extra terms (OC+LAM's reconstruction)."""
        return codes.new_zeros((), dtype=torch.float32), {}

    def sample_latent_actions(
        self, batch: int, steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Latent actions ``(batch, steps, k', d_a)`` drawn from the prior."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------------
    def embed_tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(..., n)`` -> token features ``(..., n, d)`` (frozen tokenizer features + position)."""
        return self.code_in(self.aggregator.code_features[codes]) + self.token_pos

    def embed_scene(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(..., n)`` -> the state tokens of token-level models ``(..., n / p^2, d)``:
        the token features, merged ``p x p`` when ``scene_patch`` is ``p > 1``."""
        tokens = self.embed_tokens(codes)
        return tokens if self.patch_merge is None else self.patch_merge(tokens)

    def seed_features(self, codes: torch.Tensor) -> torch.Tensor:
        """What first-frame slots are seeded on (``slot_init='seeded'``): ``(..., n, f)``.

        The frozen tokenizer feature of each token's code, unit-normalised, so that tokens that
        look different are far apart whatever training does to the embeddings; beside it the
        token's coordinates scaled to ``SEED_POSITION_WEIGHT`` over the grid, small enough that
        a distinct look always outranks a distant position, so they only separate look-alikes.
        """
        look = F.normalize(self.aggregator.code_features[codes], dim=-1)
        scale = SEED_POSITION_WEIGHT / self.config.grid
        where = self.token_coords.expand(*codes.shape, 2) * scale
        return torch.cat([look, where], dim=-1)

    def token_weights(self, prev: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss weight per target token: tokens that changed carry ``changed_weight``.

        Most tokens are static background, so plain CE is dominated by copying; the part of
        the loss that depends on the latent action is small unless changes are up-weighted.
        """
        changed = (prev != target).float()
        return 1.0 + (self.config.changed_weight - 1.0) * changed

    def loss(self, batch: CodeBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Multi-step next-frame prediction loss on a window of codes ``(b, t, n)``.

        Metrics are detached 0-dim tensors, not floats: reading a value waits for the device
        (and breaks a ``torch.compile`` graph), so the training loop converts them only at its
        log steps.
        """
        codes = batch.codes
        b, t, _ = codes.shape
        if t < 2:
            raise ValueError(f"windows need at least 2 frames, got {t}")
        encoded = self.encode_states(codes)
        latent = self.infer(encoded.states, batch.actions)
        total = latent.aux_loss
        metrics: dict[str, torch.Tensor] = {"aux_loss": latent.aux_loss.detach()}
        cur = encoded.states[:, :-1]
        steps = min(self.config.pred_steps, t - 1)
        for p in range(steps):
            span = t - 1 - p
            acts = latent.actions[:, p : p + span]
            nxt = self.predict_next(
                rearrange(cur, "b s k d -> (b s) k d"), rearrange(acts, "b s k d -> (b s) k d")
            )
            target = rearrange(codes[:, p + 1 : p + 1 + span], "b s n -> (b s) n")
            prev = rearrange(codes[:, p : p + span], "b s n -> (b s) n")
            step_loss, step_metrics = self.aggregator.loss(
                nxt, target, self.token_weights(prev, target)
            )
            total = total + step_loss / steps
            metrics[f"pred_loss_step{p + 1}"] = step_loss.detach()
            metrics[f"token_ce_step{p + 1}"] = step_metrics["token_loss"]
            cur = rearrange(nxt, "(b s) k d -> b s k d", b=b)[:, :-1]
        extra, extra_metrics = self.extra_loss(encoded, codes)
        total = total + extra
        metrics.update(extra_metrics)
        num_codes = self.config.bottleneck.num_codes
        if latent.indices is not None and num_codes is not None:
            metrics["action_codes_used"] = codes_used(latent.indices.detach(), num_codes)
        return total, metrics

    @torch.no_grad()
    def infer_latent_actions(
        self, codes: torch.Tensor, true_actions: torch.Tensor | None = None
    ) -> LatentActions:
        """Latent actions ``(b, t - 1, k', d_a)`` explaining a window of codes ``(b, t, n)``."""
        return self.infer(self.encode_states(codes).states, true_actions)

    @torch.no_grad()
    def rollout(
        self, context: torch.Tensor, latent_actions: torch.Tensor, steps: int | None = None
    ) -> torch.Tensor:
        """Autoregressive prediction of ``steps`` frames of codes ``(b, steps, n)``.

        ``context`` codes ``(b, t0, n)`` are the only frames seen; each predicted frame is decoded
        to codes and re-encoded (slots initialised from the previous frame's), so the model runs
        on its own outputs as a video generator does.
        """
        steps = latent_actions.shape[1] if steps is None else steps
        if latent_actions.shape[1] < steps:
            raise ValueError(f"{latent_actions.shape[1]} latent actions given for {steps} steps")
        state = self.encode_states(context).states[:, -1]
        frames = []
        for i in range(steps):
            predicted = self.predict_next(state, latent_actions[:, i])
            codes = self.aggregator.generate(predicted)
            frames.append(codes)
            state = self.encode_next(codes, state)
        return torch.stack(frames, dim=1)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (atomically each) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".config.json.tmp"
        tmp.write_text(to_json(self.config))
        tmp.replace(folder / "config.json")
        save_weights(self, folder / "model.safetensors")

    @classmethod
    def load(cls, folder: Path, device: str | torch.device = "cpu") -> LatentActionModel:
        """Rebuild a saved model (any kind) from its folder; never unpickles."""
        from latentrl.models import build_model

        config_path = folder / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(
                f"no model config at {config_path}: is {folder} a trained model folder?"
            )
        from latentrl.runs import read_json

        config = from_dict(ModelConfig, read_json(config_path), source=config_path)
        try:
            model = build_model(config, torch.zeros(config.codebook_size, config.code_dim))
        except (
            ValueError,
            TypeError,
            AssertionError,
            RuntimeError,
            ArithmeticError,
            LookupError,
        ) as e:
            raise ArtifactError(
                f"{config_path}: expected a buildable model config, found one the model refuses "
                f"({type(e).__name__}: {e}). Fix: re-train, or restore the file."
            ) from e
        model = model.to(device)
        load_weights(model, folder / "model.safetensors")
        return model.eval()


def sincos_2d(grid: int, dim: int, scale: float = 0.5) -> torch.Tensor:
    """A 2D sin/cos position table ``(grid * grid, dim)``: half the channels for rows, half for
    columns; angular frequencies from pi (neighbours differ in sign) down to pi / grid."""
    per_axis = dim // 2
    freqs = max(per_axis // 2, 1)
    omega = torch.pi * torch.tensor(float(grid)) ** (-torch.arange(freqs) / max(freqs - 1, 1))
    pos = torch.arange(grid, dtype=torch.float32)

    def axis(values: torch.Tensor) -> torch.Tensor:
        ang = values[:, None] * omega
        out = torch.cat([ang.sin(), ang.cos()], dim=-1)
        return torch.nn.functional.pad(out, (0, per_axis - out.shape[-1]))

    rows, cols = axis(pos), axis(pos)
    table = torch.cat(
        [rows[:, None].expand(grid, grid, -1), cols[None].expand(grid, grid, -1)], dim=-1
    )
    table = torch.nn.functional.pad(table, (0, dim - table.shape[-1]))
    return scale * table.reshape(grid * grid, dim)


def codes_used(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """How many of ``num_codes`` codes occur in ``indices`` (a float 0-dim tensor).

    A scatter into a fixed-size table rather than ``unique()``, whose output size depends on
    the data: that would wait for the device and break a compiled graph.
    """
    seen = torch.zeros(num_codes, device=indices.device)
    return seen.index_fill_(0, indices.flatten(), 1.0).sum()


def bottleneck_to_latent(out: BottleneckOutput) -> LatentActions:
    return LatentActions(out.actions, out.indices, out.aux_loss)
