"""Score a genotype with the supernet's own weights (weight inheritance, BN re-estimated).

The discrete architecture is the supernet with one-hot edge weights. Its BatchNorm
statistics were collected under the mixed architecture and do not fit the discrete one, so
they are re-estimated on search-train batches (cumulative average) on a copy of the model
before the test split is scored; the search itself is untouched.
"""
from __future__ import annotations

import copy
from typing import Any, ClassVar

from ..lazy_torch import nn, no_grad, torch
from ..spaces.base import Genotype
from .base import Oracle, OracleContext, register_oracle


@no_grad
def accuracy(model: nn.Module, weights: dict, stream) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` on every batch of ``stream`` in eval mode."""
    model.eval()
    loss = torch.zeros((), device=stream.device)
    correct = torch.zeros((), device=stream.device)
    n = 0
    for x, y in stream.epoch(None, augment=False):
        logits = model(x, weights)
        loss += nn.functional.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
    return (loss / n).item(), (correct / n).item()


@register_oracle
class OneShotOracle(Oracle):
    """Applies to every family: the supernet with the family's ``discrete_weights``."""

    name: ClassVar[str] = "oneshot"

    # the runner asks every oracle (no probing); the Oracle base is to declare these defaults
    @classmethod
    def available(cls, space: Any, cfg: Any) -> bool:
        return True

    @classmethod
    def unavailable_reason(cls, space: Any, cfg: Any) -> str:
        return ""

    def score(self, genotype: Genotype, ctx: OracleContext) -> dict[str, Any]:
        model = copy.deepcopy(ctx.supernet)
        model.set_drop_path(0.0)  # the discrete net is scored without drop-path
        weights = ctx.space.discrete_weights(genotype, ctx.device)
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the recalibration batches
        model.train()
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for i, (x, _) in enumerate(ctx.search_train.epoch(g, augment=False)):
                if i >= ctx.cfg.bn_recalibration_batches:
                    break
                model(x, weights)
        _, acc = accuracy(model, weights, ctx.test)
        return {"test_error": 1.0 - acc}
