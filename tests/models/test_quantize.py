"""Latent action bottlenecks: FSQ code <-> index round trip, Gaussian beta-KL, sparse VC."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from latentrl.quantize import (
    BottleneckConfig,
    LatentBottleneck,
    gaussian_kl,
    variance_covariance_loss,
)


@pytest.mark.parametrize("levels", [(5,), (2, 2), (8, 5, 5)])
def test_fsq_code_index_code_round_trip(levels: tuple[int, ...]) -> None:
    bn = LatentBottleneck(16, BottleneckConfig(kind="fsq", fsq_levels=levels))
    x = torch.randn(2, 3, 4, 16) * 3
    out = bn(x)
    assert out.actions.shape == (2, 3, 4, len(levels))
    assert out.indices is not None and out.indices.shape == (2, 3, 4)
    assert out.indices.dtype == torch.long
    assert out.indices.min() >= 0 and out.indices.max() < math.prod(levels)
    assert out.aux_loss.item() == 0.0
    # Index -> code gives back exactly the quantized action (any number of leading axes).
    torch.testing.assert_close(bn.codes_from_indices(out.indices), out.actions)
    torch.testing.assert_close(bn.codes_from_indices(out.indices[0, 0]), out.actions[0, 0])


@pytest.mark.parametrize("levels", [(5,), (2, 2), (3, 4)])
def test_fsq_codebook_is_a_bijection(levels: tuple[int, ...]) -> None:
    bn = LatentBottleneck(4, BottleneckConfig(kind="fsq", fsq_levels=levels))
    size = math.prod(levels)
    codes = bn.codes_from_indices(torch.arange(size))
    assert codes.shape == (size, len(levels))
    assert torch.unique(codes, dim=0).shape[0] == size
    # Quantizing a code again gives its own index (code -> index -> code).
    indices = bn.fsq.codes_to_indices(codes[:, None])[:, 0]
    torch.testing.assert_close(indices.long(), torch.arange(size))


def test_fsq_prior_samples_lie_in_the_codebook() -> None:
    bn = LatentBottleneck(4, BottleneckConfig(kind="fsq", fsq_levels=(5,)))
    gen = torch.Generator().manual_seed(0)
    z = bn.sample_prior((2, 3, 4), gen)
    assert z.shape == (2, 3, 4, 1)
    book = bn.codes_from_indices(torch.arange(5))[:, 0]
    assert torch.isin(z, book).all()
    again = bn.sample_prior((2, 3, 4), torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, again)


def test_gaussian_kl_matches_the_closed_form_and_torch() -> None:
    mu = torch.tensor([[0.0, 1.0, -2.0], [0.5, 0.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 2.0, 0.0]])
    by_hand = []
    for m_row, lv_row in zip(mu.tolist(), logvar.tolist(), strict=True):
        by_hand.append(
            sum(0.5 * (m * m + math.exp(lv) - 1 - lv) for m, lv in zip(m_row, lv_row, strict=True))
        )
    kl = gaussian_kl(mu, logvar)
    torch.testing.assert_close(kl, torch.tensor(by_hand))
    reference = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl, reference)
    assert gaussian_kl(torch.zeros(4), torch.zeros(4)).item() == 0.0


def _gaussian_with_known_outputs(mu: list[float], logvar: list[float], beta: float):
    cfg = BottleneckConfig(kind="gaussian", dim=len(mu), beta=beta)
    bn = LatentBottleneck(6, cfg)
    with torch.no_grad():
        bn.proj.weight.zero_()
        bn.proj.bias.copy_(torch.tensor(mu + logvar))
    return bn


def test_gaussian_aux_loss_is_beta_times_kl() -> None:
    mu, logvar, beta = [0.5, -1.0], [0.3, -0.7], 0.25
    bn = _gaussian_with_known_outputs(mu, logvar, beta)
    by_hand = sum(0.5 * (m * m + math.exp(lv) - 1 - lv) for m, lv in zip(mu, logvar, strict=True))
    out = bn.eval()(torch.randn(5, 3, 6))
    assert out.indices is None
    assert out.aux_loss.item() == pytest.approx(beta * by_hand, rel=1e-6)
    # Evaluation returns the mean.
    torch.testing.assert_close(out.actions, torch.tensor(mu).expand(5, 3, 2))


def test_gaussian_training_samples_have_the_posterior_moments() -> None:
    mu, logvar = [1.5, -0.5], [math.log(0.25), math.log(4.0)]
    bn = _gaussian_with_known_outputs(mu, logvar, 0.01).train()
    a = bn(torch.randn(20000, 6)).actions
    torch.testing.assert_close(a.mean(0), torch.tensor(mu), atol=0.05, rtol=0)
    torch.testing.assert_close(a.std(0), torch.tensor([0.5, 2.0]), atol=0.05, rtol=0)


def test_gaussian_logvar_is_clamped() -> None:
    bn = _gaussian_with_known_outputs([0.0], [50.0], 1.0)
    expected = 0.5 * (math.exp(10.0) - 1 - 10.0)
    assert bn.eval()(torch.randn(1, 6)).aux_loss.item() == pytest.approx(expected, rel=1e-5)


def test_gaussian_has_no_codes_and_a_standard_normal_prior() -> None:
    bn = LatentBottleneck(6, BottleneckConfig(kind="gaussian", dim=3))
    with pytest.raises(ValueError, match="only the fsq"):
        bn.codes_from_indices(torch.zeros(2, dtype=torch.long))
    z = bn.sample_prior((4000,), torch.Generator().manual_seed(0))
    assert z.shape == (4000, 3)
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1.0) < 0.05


def test_variance_covariance_loss_known_values() -> None:
    # Uncorrelated columns with std > 1: nothing to penalise.
    x = 2.0 * torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    assert variance_covariance_loss(x).item() == pytest.approx(0.0, abs=1e-7)
    # A constant: every dim's std is sqrt(eps), the hinge is 1 - 0.01.
    assert variance_covariance_loss(torch.zeros(5, 3)).item() == pytest.approx(0.99, abs=1e-6)
    # Perfectly correlated columns: the off-diagonal covariance is penalised.
    col = torch.tensor([[-3.0], [-1.0], [1.0], [3.0]])
    cov = (col.square().sum() / 3).item()
    loss = variance_covariance_loss(torch.cat([col, col], dim=1)).item()
    assert loss == pytest.approx(2 * cov**2 / 2, rel=1e-5)
    assert variance_covariance_loss(torch.randn(1, 4)).item() == 0.0


def test_sparse_aux_loss_combines_l1_and_vc() -> None:
    cfg = BottleneckConfig(kind="sparse", dim=3, l1=0.5, vc=0.25)
    bn = LatentBottleneck(4, cfg)
    x = torch.randn(2, 5, 4)
    out = bn(x)
    h = bn.proj(x)
    torch.testing.assert_close(out.actions, h)
    expected = 0.5 * h.abs().mean() + 0.25 * variance_covariance_loss(h)
    torch.testing.assert_close(out.aux_loss, expected)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown bottleneck kind"):
        LatentBottleneck(4, BottleneckConfig(kind="vq"))  # type: ignore[arg-type]


def test_config_properties() -> None:
    assert BottleneckConfig(kind="fsq", fsq_levels=(2, 2, 3)).num_codes == 12
    assert BottleneckConfig(kind="fsq", fsq_levels=(2, 2, 3)).action_dim == 3
    assert BottleneckConfig(kind="gaussian", dim=7).action_dim == 7
    assert BottleneckConfig(kind="gaussian", dim=7).num_codes is None


@pytest.mark.parametrize("norm", [False, True])
def test_fsq_norm_revives_a_saturated_dimension(norm: bool) -> None:
    # A projection whose first output sits deep in tanh saturation for every input: without the
    # normalisation that dimension quantizes to one level (a dead dimension), with it the batch
    # spreads over all three levels again.
    torch.manual_seed(0)
    bn = LatentBottleneck(8, BottleneckConfig(kind="fsq", fsq_levels=(3, 3), norm=norm))
    with torch.no_grad():
        bn.proj.bias[0] = -20.0
    out = bn.train()(torch.randn(512, 8))
    levels_used = torch.unique(out.actions[:, 0]).numel()
    assert levels_used == (3 if norm else 1)
    # Evaluation uses the running statistics, so one input's code does not depend on its batch.
    bn.eval()
    x = torch.randn(64, 8)
    torch.testing.assert_close(bn(x).actions[:5], bn(x[:5]).actions)
