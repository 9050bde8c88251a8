"""FLAM: factored latent action model (Wang et al., 2026, sec. 4.2).

Slots ``(b, t, K, d)`` from the factorizer; one latent action per slot ``(b, t - 1, K, d_a)``
from a shared IDM; a shared FDM predicts each slot's next value from all current slots and its
own latent action; the aggregator maps predicted slots to the next frame's codes.
"""

from __future__ import annotations

import torch

from latentrl.models.base import LatentActionModel, LatentActions, States, bottleneck_to_latent
from latentrl.models.config import ModelConfig
from latentrl.models.dynamics import FactoredFDM, FactoredIDM
from latentrl.models.slots import Factorizer


class FLAM(LatentActionModel):
    def __init__(self, config: ModelConfig, code_features: torch.Tensor) -> None:
        super().__init__(config, code_features)
        d, h, nb = config.d_model, config.heads, config.blocks
        self.factorizer = Factorizer(config)
        self.idm = FactoredIDM(d, h, nb, config.bottleneck)
        self.fdm = FactoredFDM(d, h, nb, config.bottleneck.action_dim)

    def encode_states(self, codes: torch.Tensor) -> States:
        slots, attn = self.factorizer(self.embed_tokens(codes))
        return States(slots, attn)

    def encode_next(self, codes: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        return self.factorizer.step(self.embed_tokens(codes), prev)[0]

    def infer(self, states: torch.Tensor, true_actions: torch.Tensor | None) -> LatentActions:
        return bottleneck_to_latent(self.idm(states))

    def predict_next(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.fdm(states, actions)

    def sample_latent_actions(
        self, batch: int, steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.idm.bottleneck.sample_prior((batch, steps, self.config.num_slots), generator)
