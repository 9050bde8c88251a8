"""OC+LAM: object-centric LAM — slots as the state, one scene latent action, plus a loss that
reconstructs the current frame's codes from its own slots (the object-centric signal FLAM
replaces with factored dynamics). Shapes as in :mod:`latentrl.models.flam` with ``k' = 1``.
"""

from __future__ import annotations

import torch
from einops import rearrange

from latentrl.models.base import LatentActionModel, LatentActions, States, bottleneck_to_latent
from latentrl.models.config import ModelConfig
from latentrl.models.dynamics import SceneFDM, SceneIDM
from latentrl.models.slots import Factorizer


class OCLAM(LatentActionModel):
    def __init__(self, config: ModelConfig, code_features: torch.Tensor) -> None:
        super().__init__(config, code_features)
        d, h, nb = config.d_model, config.heads, config.blocks
        self.factorizer = Factorizer(config)
        self.idm = SceneIDM(d, h, nb, config.bottleneck, delta=config.idm_delta)
        self.fdm = SceneFDM(d, h, nb, config.bottleneck.action_dim)

    def encode_states(self, codes: torch.Tensor) -> States:
        slots, attn = self.factorizer(self.embed_tokens(codes), self.seed_features(codes))
        return States(slots, attn)

    def encode_next(self, codes: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        return self.factorizer.step(self.embed_tokens(codes), prev, self.seed_features(codes))[0]

    def infer(self, states: torch.Tensor, true_actions: torch.Tensor | None) -> LatentActions:
        return bottleneck_to_latent(self.idm(states))

    def predict_next(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.fdm(states, actions)

    def extra_loss(
        self, encoded: States, codes: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        slots = rearrange(encoded.states, "b t k d -> (b t) k d")
        loss, _ = self.aggregator.loss(slots, rearrange(codes, "b t n -> (b t) n"))
        return self.config.recon_weight * loss, {"recon_loss": loss.detach()}

    def sample_latent_actions(
        self, batch: int, steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.idm.bottleneck.sample_prior((batch, steps, 1), generator)
