"""WM: the action-conditioned world model (upper reference; simulation data only).

Same states, FDM and aggregator as LAM, but the "latent action" is the true joint action, one-hot
per agent and flattened: ``(b, t - 1, 1, a * num_actions)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from latentrl.models.base import LatentActionModel, LatentActions, States
from latentrl.models.config import ModelConfig
from latentrl.models.dynamics import SceneFDM


class WM(LatentActionModel):
    def __init__(self, config: ModelConfig, code_features: torch.Tensor) -> None:
        super().__init__(config, code_features)
        self.action_dim = config.num_agents * config.agent_actions
        self.fdm = SceneFDM(config.d_model, config.heads, config.blocks, self.action_dim)

    def encode_states(self, codes: torch.Tensor) -> States:
        return States(self.embed_scene(codes), None)

    def encode_next(self, codes: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        return self.embed_scene(codes)

    def encode_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """True joint actions ``(b, t, a)`` -> action vectors ``(b, t, 1, a * num_actions)``."""
        cfg = self.config
        if actions.shape[-1] != cfg.num_agents:
            raise ValueError(
                f"WM was built for {cfg.num_agents} agents but the data has {actions.shape[-1]}"
            )
        onehot = F.one_hot(actions.clamp(min=0), cfg.agent_actions).float()
        return rearrange(onehot, "b t a v -> b t 1 (a v)")

    def infer(self, states: torch.Tensor, true_actions: torch.Tensor | None) -> LatentActions:
        if true_actions is None:
            raise ValueError(
                "WM is conditioned on true actions: the batch has none (action-free data)"
            )
        return LatentActions(self.encode_actions(true_actions), None, states.new_zeros(()))

    def predict_next(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.fdm(states, actions)

    def sample_latent_actions(
        self, batch: int, steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        cfg = self.config
        acts = torch.randint(
            0, cfg.agent_actions, (batch, steps, cfg.num_agents), generator=generator
        )
        return self.encode_actions(acts).to(self.token_pos.device)
