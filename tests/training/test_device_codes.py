"""DeviceCodes: the device-resident sampler draws exactly the batches CodeCache.sample draws."""

from __future__ import annotations

import pytest
import torch

from latentrl.data.device_codes import DeviceCodes
from latentrl.train import step_seed
from tests.training.test_code_cache import coded_cache


@pytest.mark.parametrize("labels", [False, True])
@pytest.mark.parametrize("window", [1, 2, 3])
def test_same_batches_as_the_host_cache_for_the_same_generator(window: int, labels: bool) -> None:
    cache = coded_cache()
    device_codes = DeviceCodes(cache, window, "cpu")
    assert len(device_codes) == len(cache.starts(window))
    for step in range(5):
        seed = step_seed(3, step)
        host = cache.sample(window, 6, torch.Generator().manual_seed(seed), labels=labels)
        dev = device_codes.sample(6, torch.Generator().manual_seed(seed), labels=labels)
        for a, b in zip(host, dev, strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.dtype == b.dtype and torch.equal(a, b)


def test_labels_only_when_asked() -> None:
    batch = DeviceCodes(coded_cache(), 3, "cpu").sample(4, torch.Generator().manual_seed(0))
    assert batch.actions is None and batch.positions is None
    assert batch.codes.dtype == torch.int64 and batch.codes.shape == (4, 3, 4)


def test_a_window_longer_than_every_episode_is_refused() -> None:
    with pytest.raises(ValueError, match="no episode has 9 frames"):
        DeviceCodes(coded_cache(), 9, "cpu")
