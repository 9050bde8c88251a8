"""Each latent-action family's prior: the sparse model draws only latents it inferred."""

from __future__ import annotations

import pytest
import torch

from latentrl.prior import latent_pool, needs_pool, sample_prior
from tests.models.tiny import SLOTS, random_batch, tiny_model


def test_sparse_prior_draws_from_the_inferred_latents() -> None:
    model = tiny_model("flam", action_kind="sparse").eval()
    codes = random_batch(b=4, t=3).codes
    pool = latent_pool(model, codes, chunk=3)
    assert needs_pool(model)
    assert pool.shape == (4 * 2 * SLOTS, model.config.bottleneck.action_dim)
    draws = sample_prior(model, 5, 2, torch.Generator().manual_seed(0), pool)
    assert draws.shape == (5, 2, SLOTS, pool.shape[1])
    # Every draw is one of the pooled latents.
    flat = draws.reshape(-1, pool.shape[1])
    assert (flat[:, None] == pool[None]).all(dim=-1).any(dim=1).all()
    with pytest.raises(ValueError, match="no parametric prior"):
        sample_prior(model, 1, 1)


@pytest.mark.parametrize("kind", ["fsq", "gaussian"])
def test_parametric_priors_need_no_pool(kind: str) -> None:
    model = tiny_model("lam", action_kind=kind).eval()
    assert not needs_pool(model)
    draws = sample_prior(model, 3, 2, torch.Generator().manual_seed(0))
    assert draws.shape == (3, 2, 1, model.config.bottleneck.action_dim)
