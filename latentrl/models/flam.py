"""FLAM: factored latent action model (Wang et al., 2026, sec. 4.2).

Slots ``(b, t, K, d)`` from the factorizer; one latent action per slot ``(b, t - 1, K, d_a)``
from a shared IDM; a shared FDM predicts each slot's next value from all current slots and its
own latent action; the aggregator maps predicted slots to the next frame's codes.

Positional slots (``pos_slots``, the default): each slot also carries its centroid ``c`` (the
attention-weighted mean of token coordinates, in tokens), so states are ``(b, t, K, d + 2)``.
The IDM's query additionally sees the centroid displacement ``c_{t+1} - c_t`` and ``c_t / grid``;
the FDM predicts ``c^_{t+1} = c_t + Move(a_t^i)`` (or ``Move(s^_{t+1}^i, a_t^i)``); the gauss
aggregator draws each slot around ``c^``. A one-cell move is then the same small vector
everywhere, instead of an arbitrary map between learned position embeddings that the IDM and
FDM would have to discover together.
"""

from __future__ import annotations

import torch
from torch import nn

from latentrl.models.base import LatentActionModel, LatentActions, States, bottleneck_to_latent
from latentrl.models.config import ModelConfig
from latentrl.models.dynamics import FactoredFDM, FactoredIDM
from latentrl.models.slots import Factorizer
from latentrl.nn.blocks import MLP

MOTION_FEATURES = 4  # centroid displacement (2) and position / grid (2)


class FLAM(LatentActionModel):
    def __init__(self, config: ModelConfig, code_features: torch.Tensor) -> None:
        super().__init__(config, code_features)
        d, h, nb = config.d_model, config.heads, config.blocks
        self.factorizer = Factorizer(config)
        motion = MOTION_FEATURES if config.positional else 0
        self.idm = FactoredIDM(d, h, nb, config.bottleneck, motion_dim=motion)
        self.fdm = FactoredFDM(d, h, nb, config.bottleneck.action_dim)
        if config.positional:
            rows, cols = torch.meshgrid(
                torch.arange(config.grid), torch.arange(config.grid), indexing="ij"
            )
            coords = torch.stack([rows, cols], dim=-1).reshape(-1, 2).float()
            self.register_buffer("coords", coords, persistent=False)
            move_in = config.bottleneck.action_dim + (d if config.move_input == "slot" else 0)
            self.move = nn.Sequential(nn.Linear(move_in, d), MLP(d, mult=2), nn.Linear(d, 2))

    def centroid(self, attn: torch.Tensor) -> torch.Tensor:
        """Slot attention ``(..., k, n)`` -> attention-weighted centroid ``(..., k, 2)`` (tokens)."""
        weights = attn / attn.sum(-1, keepdim=True).clamp_min(1e-8)
        return weights @ self.coords

    def _pack(self, slots: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        if not self.config.positional:
            return slots
        return torch.cat([slots, self.centroid(attn)], dim=-1)

    def _split(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.config.positional:
            return states, None
        return states[..., :-2], states[..., -2:]

    def encode_states(self, codes: torch.Tensor) -> States:
        slots, attn = self.factorizer(self.embed_tokens(codes), self.seed_features(codes))
        return States(self._pack(slots, attn), attn)

    def encode_next(self, codes: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        slots, attn = self.factorizer.step(
            self.embed_tokens(codes), self._split(prev)[0], self.seed_features(codes)
        )
        return self._pack(slots, attn)

    def infer(self, states: torch.Tensor, true_actions: torch.Tensor | None) -> LatentActions:
        slots, pos = self._split(states)
        motion = None
        if pos is not None:
            motion = torch.cat([pos[:, 1:] - pos[:, :-1], pos[:, :-1] / self.config.grid], -1)
        return bottleneck_to_latent(self.idm(slots, motion))

    def predict_next(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        slots, pos = self._split(states)
        nxt = self.fdm(slots, actions)
        if pos is None:
            return nxt
        move_in = actions if self.config.move_input == "action" else torch.cat([nxt, actions], -1)
        return torch.cat([nxt, pos + self.move(move_in)], dim=-1)

    def sample_latent_actions(
        self, batch: int, steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.idm.bottleneck.sample_prior((batch, steps, self.config.num_slots), generator)
