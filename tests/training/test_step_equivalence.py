"""The fast training step learns what the plain step did.

The loop reads losses only at log steps, samples windows on the device and uses AdamW's fused
kernel; none of that may change the losses of a fixed seed. The reference below is the loop as
it was written before (host sampling, ``.item()`` every step, the default AdamW).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from latentrl.data.device_codes import DeviceCodes
from latentrl.distributed import DistInfo
from latentrl.models import LatentActionModel
from latentrl.nn.blocks import fused_attention, small_attention
from latentrl.train import TrainConfig, lr_factor, native_bf16, step_seed, train
from tests.models.tiny import random_batch, tiny_model
from tests.training.test_train_loop import CACHE

CONFIG = TrainConfig(
    steps=6,
    batch_size=4,
    lr=3e-3,
    warmup_steps=2,
    log_every=4,
    eval_every=1000,
    checkpoint_every=1000,
    media_every=0,
    device="cpu",
)
WINDOW = 3


def reference_losses(model: LatentActionModel) -> list[float]:
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=CONFIG.lr, weight_decay=CONFIG.weight_decay, foreach=False
    )
    losses = []
    for step in range(CONFIG.steps):
        seed = step_seed(CONFIG.seed, step)
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        batch = CACHE.sample(WINDOW, CONFIG.batch_size, generator)
        for group in optimizer.param_groups:
            group["lr"] = CONFIG.lr * lr_factor(step, CONFIG)
        loss, _ = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CONFIG.grad_clip)
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("kind", ["flam", "lam"])
def test_same_losses_as_the_plain_loop(kind: str, tmp_path: Path) -> None:
    # Gaussian latent actions: the step also draws model noise from torch's global RNG.
    changes = {"action_kind": "gaussian", "action_dim": 4}
    expected = reference_losses(tiny_model(kind, seed=3, **changes))
    codes = DeviceCodes(CACHE, WINDOW, "cpu")
    result = train(
        tiny_model(kind, seed=3, **changes),
        lambda step, gen: codes.sample(CONFIG.batch_size, gen),
        CONFIG,
        tmp_path,
        DistInfo(0, 1, torch.device("cpu")),
    )
    assert len(result.losses) == CONFIG.steps
    # Before any update the step is the same computation: equal losses.
    assert result.losses[0] == expected[0]
    # After updates only the fused optimizer's float rounding may differ.
    assert result.losses == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(("n", "m"), [(1, 1), (1, 2), (2, 2), (4, 1)])
def test_small_attention_equals_the_fused_kernel(n: int, m: int) -> None:
    gen = torch.Generator().manual_seed(n * 10 + m)
    q, k, v = (torch.randn(5, 2, x, 8, generator=gen) for x in (n, m, m))
    torch.testing.assert_close(small_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_clip_grad_norm_follows_torch() -> None:
    from latentrl.train import clip_grad_norm

    for max_norm in (1e-3, 1.0, 1e3):
        a, b = tiny_model("flam", seed=1), tiny_model("flam", seed=1)
        for m in (a, b):
            m.loss(random_batch(b=2, t=3))[0].backward()
        expected = torch.nn.utils.clip_grad_norm_(b.parameters(), max_norm)
        torch.testing.assert_close(clip_grad_norm(a, max_norm), expected)
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            if pb.grad is not None:
                torch.testing.assert_close(pa.grad, pb.grad)


@pytest.mark.parametrize("masked", [False, True])
def test_cpu_bf16_attention_matches_the_fused_fp32_kernel(masked: bool) -> None:
    """Under CPU autocast the attention is written out (bf16 matmuls, fp32 softmax): it must
    agree with the fused fp32 kernel to bf16 rounding, masks included."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 9, 8, generator=gen) for _ in range(3))
    causal = torch.ones(9, 9).tril().bool()
    mask = causal if masked else None
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fused_attention(q, k, v, mask)
    assert got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), expected, atol=3e-2, rtol=3e-2)
    # The mask is honoured: the other masking gives an output far beyond bf16 rounding.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        other = fused_attention(q, k, v, None if masked else causal)
    assert (other.float() - got.float()).abs().max() > 0.3


def test_cpu_bf16_is_opt_in_and_the_run_records_its_precision(tmp_path: Path) -> None:
    assert not CONFIG.cpu_bf16 and CONFIG.bf16  # the default: fp32 on a CPU
    codes = DeviceCodes(CACHE, WINDOW, "cpu")
    config = TrainConfig(**{**CONFIG.__dict__, "cpu_bf16": True, "steps": 2})
    result = train(
        tiny_model("flam", seed=3),
        lambda step, gen: codes.sample(config.batch_size, gen),
        config,
        tmp_path,
        DistInfo(0, 1, torch.device("cpu")),
    )
    assert result.precision == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
