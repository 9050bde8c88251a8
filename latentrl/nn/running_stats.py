"""Running moments that match the weights the model ends with ("precise" batch statistics).

Batch-statistics layers (the FSQ input's batch norm or whitening, ``--action-norm`` /
``--action-whiten``) normalise with the batch's moments while training and with running moments
(an exponential average over the last batches) in evaluation. While the weights still move, that
average lags behind them. Where the normalised signal is a small variation on a large offset
(a scene latent pooled over 64 tokens: each dimension's spread is a few hundredths of its mean),
the lag is a large error after normalisation, FSQ rounds to other codes, and every evaluation-
mode reader (the probe, the decoder, labelling, the planner) sees other latent actions than
training did. Re-estimating the moments from a few batches with the current weights removes the
lag (docs/research/strong_lam.md).

``torch.optim.swa_utils.update_bn`` does this for ``_BatchNorm`` layers over a loader of model
inputs; here the batches are the training loss's own (a window batch, not a model input), the
whitening layer (``BatchWhitening``) needs the same, and the global RNG must be left untouched
for the exact-resume contract, hence this small function instead.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from latentrl.nn.whiten import BatchWhitening


def batch_stat_layers(model: nn.Module) -> list[nn.Module]:
    """Layers of ``model`` whose evaluation uses running moments of training batches."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm | BatchWhitening)]


@torch.no_grad()
def recalibrate_running_stats(
    model: nn.Module, forward: Callable[[int], object], batches: int
) -> bool:
    """Replace every batch-statistics layer's running moments by their plain average over
    ``forward(0) .. forward(batches - 1)`` (each a training-mode forward of one batch) with the
    current weights. The global RNG is left as it was, so training draws the same noise after.
    Returns whether there was any such layer (nothing runs otherwise)."""
    layers = batch_stat_layers(model)
    if not layers or batches < 1:
        return False
    momenta = [m.momentum for m in layers]
    was_training = model.training
    model.train()
    devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        for i in range(batches):
            # Momentum 1 / (i + 1): after batch i the running value is the mean of batches 0..i.
            for m in layers:
                m.momentum = 1.0 / (i + 1)
            forward(i)
    for m, momentum in zip(layers, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return True
