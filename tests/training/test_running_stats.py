"""Recalibrated running moments are the plain average over the given batches, with the current
weights, and leave the global RNG and the momenta as they were."""

from __future__ import annotations

import torch
from torch import nn

from latentrl.nn.running_stats import batch_stat_layers, recalibrate_running_stats
from latentrl.nn.whiten import BatchWhitening


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, affine=False), BatchWhitening(4))


def test_running_moments_become_the_batch_average() -> None:
    torch.manual_seed(0)
    model = _model()
    batches = [torch.randn(64, 3) * 0.1 + 5.0 for _ in range(5)]
    # Stale moments, as after training with weights that moved since.
    model[1].running_mean.fill_(-3.0)
    model[1].running_var.fill_(9.0)
    with torch.no_grad():
        h = torch.cat([model[0](b) for b in batches])
    state = torch.get_rng_state()

    def forward(i: int) -> None:
        torch.randn(10)  # model noise must not leak into the caller's RNG
        model(batches[i])

    assert recalibrate_running_stats(model, forward, len(batches))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.allclose(model[1].running_mean, h.mean(0), atol=1e-5)
    per_batch_var = torch.stack([x.var(0) for x in h.split(64)]).mean(0)
    assert torch.allclose(model[1].running_var, per_batch_var, rtol=1e-4)
    assert model[1].momentum == 0.1 and model[2].momentum == 0.1
    # Evaluation now normalises as training does on these batches.
    model.eval()
    with torch.no_grad():
        out = model[1](h)
    assert out.mean(0).abs().max() < 1e-3
    assert (out.std(0) - 1).abs().max() < 0.05


def test_nothing_runs_without_batch_statistics() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    calls: list[int] = []
    assert batch_stat_layers(model) == []
    assert not recalibrate_running_stats(model, calls.append, 3)
    assert calls == []
