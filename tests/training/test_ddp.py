"""DDP on 2 CPU processes (gloo) against single-process references on the same global batch.

Each rank keeps rows ``rank::2`` (the loop's :func:`~latentrl.distributed.shard_rows`), computes
its loss as a mean over its own rows and DDP averages the gradients over ranks. So the DDP
gradient is that of the *mean of the per-shard losses*; it equals the full-batch gradient only
when the loss is a plain mean over rows with equal shard sizes. Two stage-2 losses are not:
- the token loss weighted by change (``changed_weight != 1``) divides by each shard's own weight
  sum, so shards with more changed tokens count for less than in the full batch;
- the sparse bottleneck's variance/covariance term uses batch statistics of each shard.
(And every rank reseeds torch's RNG with the same per-step seed, so Gaussian latent noise is
drawn identically on every rank.)
The FSQ action norm (batch statistics) and the batch-mean centring term are synchronised over
ranks (:mod:`latentrl.nn.batch_norm`): with them a DDP step equals the full-batch step, and
differs from the per-shard one.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from latentrl.distributed import DistInfo, shard_rows
from latentrl.train import TrainConfig, _LossModule, train
from latentrl.types import CodeBatch
from tests.models.tiny import CODEBOOK, TOKENS, tiny_model

WORLD = 2
NOISE_SEED = 11

CASES: dict[str, dict[str, Any]] = {
    "flam_plain": {"model": "flam", "changed_weight": 1.0},
    "flam_weighted": {"model": "flam", "changed_weight": 10.0},
    "oclam_plain_ar": {"model": "oclam", "changed_weight": 1.0, "aggregator": "autoregressive"},
    "lam_gaussian": {"model": "lam", "changed_weight": 1.0, "action_kind": "gaussian"},
    "lam_sparse": {"model": "lam", "changed_weight": 1.0, "action_kind": "sparse"},
    "wm_weighted": {"model": "wm", "changed_weight": 10.0},
}
SYNCED_CASES: dict[str, dict[str, Any]] = {
    "flam_action_norm": {"model": "flam", "action_norm": True, "action_center": 0.5},
    "lam_action_norm": {"model": "lam", "action_norm": True},
}


def global_batch() -> CodeBatch:
    """4 windows: rank 0's rows (0, 2) are nearly static, rank 1's rows (1, 3) change a lot."""
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, CODEBOOK, (4, 3, TOKENS), generator=gen)
    for row in (0, 2):
        codes[row, 1:] = codes[row, :1]
        codes[row, 1:, :2] = torch.randint(0, CODEBOOK, (2, 2), generator=gen)
    actions = torch.randint(0, 5, (4, 2, 2), generator=gen)
    return CodeBatch(codes, actions)


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {
        n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()
    }


def single_process_grads(case: dict[str, Any], batch: CodeBatch, sharded: bool):
    """Gradients of the full-batch loss, or of the mean of the per-shard losses."""
    model = tiny_model(**case)
    if sharded:
        total = 0.0
        for rank in range(WORLD):
            info = DistInfo(rank, WORLD, torch.device("cpu"))
            torch.manual_seed(NOISE_SEED)  # what every rank does before its loss
            total = total + model.loss(CodeBatch(*(shard_rows(x, info) for x in batch)))[0]
        (total / WORLD).backward()
    else:
        torch.manual_seed(NOISE_SEED)
        model.loss(batch)[0].backward()
    return grads(model)


def one_step(model: torch.nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    """One SGD step from ``loss``; the updated state dict (parameters and norm buffers).

    SGD, not Adam: Adam's first step moves every weight by about ``lr`` whatever the size of
    its gradient, so rounding-level differences in near-zero gradients would show as ``lr``.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def single_process_step(case: dict[str, Any], batch: CodeBatch):
    """Gradients and updated state of one step on the full batch, without a process group."""
    model = tiny_model(**case)
    torch.manual_seed(NOISE_SEED)
    state = one_step(model, model.loss(batch)[0])
    return grads(model), state


def _sample(step: int, generator: torch.Generator) -> CodeBatch:
    return CodeBatch(torch.randint(0, CODEBOOK, (4, 3, TOKENS), generator=generator))


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        info = DistInfo(rank, WORLD, torch.device("cpu"))
        batch = global_batch()
        shard = CodeBatch(*(shard_rows(x, info) for x in batch))
        results = {}
        for name, case in CASES.items():
            model = tiny_model(**case)
            net = DistributedDataParallel(_LossModule(model))
            torch.manual_seed(NOISE_SEED)
            loss, _ = net(shard)
            loss.backward()
            results[name] = grads(model)
        for name, case in SYNCED_CASES.items():
            model = tiny_model(**case)
            net = DistributedDataParallel(_LossModule(model))
            torch.manual_seed(NOISE_SEED)
            state = one_step(model, net(shard)[0])
            results[name] = {"grads": grads(model), "state": state}
        # A few steps of the real loop: the ranks must stay in sync.
        model = tiny_model("flam", action_norm=True)
        config = TrainConfig(steps=3, batch_size=4, warmup_steps=1, checkpoint_every=2)
        trained = train(model, _sample, config, Path(out) / "run", info)
        results["params_after_train"] = {k: v.clone() for k, v in model.state_dict().items()}
        results["train_losses"] = trained.losses
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def assert_same_grads(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if a[name] is None or b[name] is None:
            assert a[name] is None and b[name] is None, name
        else:
            torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=name)


def test_sharding_rule() -> None:
    x = torch.arange(8)
    assert shard_rows(x, DistInfo(1, 2, torch.device("cpu"))).tolist() == [1, 3, 5, 7]
    assert shard_rows(x, DistInfo(0, 1, torch.device("cpu"))) is x
    assert shard_rows(None, DistInfo(0, 2, torch.device("cpu"))) is None
    with pytest.raises(ValueError, match="not divisible"):
        shard_rows(torch.arange(5), DistInfo(0, 2, torch.device("cpu")))


def test_the_batch_has_unequal_weight_sums_per_shard() -> None:
    codes = global_batch().codes
    changed = (codes[:, 1:] != codes[:, :-1]).float().sum((1, 2))
    assert changed[[0, 2]].sum() * 5 < changed[[1, 3]].sum()


@pytest.mark.parametrize("case", list(CASES))
def test_ddp_gradients_equal_the_mean_of_per_shard_losses(
    ddp_results: list[dict[str, Any]], case: str
) -> None:
    # Averaged by DDP, so every rank holds the same gradients.
    assert_same_grads(ddp_results[0][case], ddp_results[1][case])
    assert any(g is not None and g.abs().sum() > 0 for g in ddp_results[0][case].values())
    assert_same_grads(ddp_results[0][case], single_process_grads(CASES[case], global_batch(), True))


@pytest.mark.parametrize("case", ["flam_plain", "oclam_plain_ar"])
def test_ddp_gradients_equal_the_full_batch_for_plain_mean_losses(
    ddp_results: list[dict[str, Any]], case: str
) -> None:
    assert_same_grads(
        ddp_results[0][case], single_process_grads(CASES[case], global_batch(), False)
    )


@pytest.mark.parametrize("case", ["flam_weighted", "wm_weighted"])
def test_ddp_gradients_equal_the_full_batch_for_weighted_losses(
    ddp_results: list[dict[str, Any]], case: str
) -> None:
    assert_same_grads(
        ddp_results[0][case], single_process_grads(CASES[case], global_batch(), False)
    )


def test_train_loop_keeps_ranks_in_sync(ddp_results: list[dict[str, Any]]) -> None:
    a, b = (r["params_after_train"] for r in ddp_results)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)
    initial = tiny_model("flam").state_dict()
    assert any(not torch.equal(initial[n], a[n]) for n in a if n in initial)
    # Each rank records the loss of its own shard.
    assert len(ddp_results[0]["train_losses"]) == 3
    assert ddp_results[0]["train_losses"] != ddp_results[1]["train_losses"]


@pytest.mark.parametrize("case", list(SYNCED_CASES))
def test_ddp_step_with_action_norm_equals_the_full_batch_step(
    ddp_results: list[dict[str, Any]], case: str
) -> None:
    full_grads, full_state = single_process_step(SYNCED_CASES[case], global_batch())
    for rank in range(WORLD):
        got = ddp_results[rank][case]
        assert_same_grads(got["grads"], full_grads)
        assert got["state"].keys() == full_state.keys()
        for name, value in full_state.items():
            # Parameters after the step and the norm's running statistics alike.
            torch.testing.assert_close(got["state"][name], value, atol=1e-5, rtol=1e-4, msg=name)
    assert any(name.endswith("norm.running_var") for name in full_state)


@pytest.mark.parametrize("case", list(SYNCED_CASES))
def test_per_shard_batch_statistics_would_give_other_gradients(case: str) -> None:
    # The check above can fail: normalising each shard on its own changes the gradients.
    full = single_process_grads(SYNCED_CASES[case], global_batch(), False)
    per_shard = single_process_grads(SYNCED_CASES[case], global_batch(), True)
    with pytest.raises(AssertionError):
        assert_same_grads(full, per_shard)
