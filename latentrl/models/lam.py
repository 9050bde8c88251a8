"""LAM: the monolithic baseline, one latent action per transition for the whole scene.

States are the frame's tokens ``(b, t, n, d)``; a scene IDM pools the per-token changes into one
latent action ``(b, t - 1, 1, d_a)`` (``action_positions`` pooled code positions, quantised
together); the scene FDM predicts every token's next value from all tokens and that one action.
Same tokenizer, aggregator and loss as FLAM.
"""

from __future__ import annotations

import torch

from latentrl.models.base import LatentActionModel, LatentActions, States, bottleneck_to_latent
from latentrl.models.config import ModelConfig
from latentrl.models.dynamics import ConvSceneIDM, SceneFDM, SceneIDM


class LAM(LatentActionModel):
    def __init__(self, config: ModelConfig, code_features: torch.Tensor) -> None:
        super().__init__(config, code_features)
        d, h, nb = config.d_model, config.heads, config.blocks
        m = config.action_positions
        self.idm: SceneIDM | ConvSceneIDM = (
            ConvSceneIDM(d, h, config.grid, config.bottleneck, positions=m, delta=config.idm_delta)
            if config.idm_conv
            else SceneIDM(d, h, nb, config.bottleneck, positions=m, delta=config.idm_delta)
        )
        self.fdm = SceneFDM(d, h, nb, config.bottleneck.action_dim, positions=m)

    def encode_states(self, codes: torch.Tensor) -> States:
        return States(self.embed_scene(codes), None)

    def encode_next(self, codes: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        return self.embed_scene(codes)

    def infer(self, states: torch.Tensor, true_actions: torch.Tensor | None) -> LatentActions:
        # The convolutional IDM reads token content only: the states minus their positions.
        return bottleneck_to_latent(
            self.idm(states - self.token_pos if self.config.idm_conv else states)
        )

    def predict_next(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.fdm(states, actions)

    def sample_latent_actions(
        self, batch: int, steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.idm.bottleneck.sample_prior((batch, steps, 1), generator)
