"""The prior each latent-action family really has: what dPSNR and controllable generation draw.

- ``fsq``: uniform over the codebook (every code equally likely).
- ``gaussian``: N(0, 1) per dimension, the prior its KL term pulls the posterior toward.
- ``sparse``: no parametric prior (its L1 and variance/covariance terms shape the latents
  without naming a density), so its prior is the *empirical* distribution of the latent actions
  the model infers on held-out video: every slot's latent action of every transition of some
  held-out windows, pooled, and drawn i.i.d. per slot and step, as the other families draw from
  theirs. Most slots hold background, so most draws are a "nothing moves" latent: the pool is
  what the model really does, not a guess of it.

Shapes: code windows ``(b, t, n)``; latent actions ``(batch, steps, k', d_a)``; a pool
``(N, d_a)``.
"""

from __future__ import annotations

import torch
from einops import rearrange

from latentrl.models.base import LatentActionModel


def needs_pool(model: LatentActionModel) -> bool:
    """Whether the model's prior is empirical (sparse latent actions): draws need a pool."""
    return model.config.action_kind == "sparse"


@torch.no_grad()
def latent_pool(model: LatentActionModel, codes: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Every latent action ``(N, d_a)`` the model infers on windows of codes ``(b, t, n)``
    (held-out video, in eval mode): the support of the sparse model's empirical prior."""
    was_training = model.training
    model.eval()
    parts = [
        rearrange(model.infer_latent_actions(codes[i : i + chunk]).actions, "b s k d -> (b s k) d")
        for i in range(0, len(codes), chunk)
    ]
    model.train(was_training)
    if not parts:
        raise ValueError("no held-out windows to build the empirical prior from")
    return torch.cat(parts)


def sample_prior(
    model: LatentActionModel,
    batch: int,
    steps: int,
    generator: torch.Generator | None = None,
    pool: torch.Tensor | None = None,
) -> torch.Tensor:
    """Latent actions ``(batch, steps, k', d_a)`` from the model's prior (see module doc).

    ``pool`` ``(N, d_a)`` (from :func:`latent_pool`) is required for sparse models and
    ignored by the others.
    """
    if not needs_pool(model):
        return model.sample_latent_actions(batch, steps, generator)
    if pool is None or pool.ndim != 2 or len(pool) == 0:
        raise ValueError(
            "a sparse model has no parametric prior: pass pool=latent_pool(model, held-out "
            "code windows) to draw from the empirical distribution of its inferred latents"
        )
    k = model.config.num_slots if model.config.factored else 1
    pick = torch.randint(0, len(pool), (batch, steps, k), generator=generator)
    return pool[pick.to(pool.device)]
