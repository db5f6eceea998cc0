"""The base of every family's discrete network (:meth:`~.base.SpaceFamily.build_network`).

Kept apart from :mod:`.base` because it is an ``nn.Module``: the family interface imports
without torch (``nasbench-eval list spaces``), and ``from nasbench_eval.spaces.base import
EvalNetwork`` still works (it imports this module).
"""
from __future__ import annotations

from torch import Tensor, nn

from ..errors import NasbenchEvalError


class EvalNetwork(nn.Module):
    """The discrete network the evaluation stage trains from scratch.

    ``forward(x)`` returns ``(logits, aux_logits)``; ``aux_logits`` is None without an
    auxiliary head or in eval mode. Override :meth:`set_drop_path` when the network supports
    drop-path and :meth:`auxiliary_modules` when it has an auxiliary head.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:  # pragma: no cover
        raise NotImplementedError

    def set_drop_path(self, prob: float) -> None:
        """Drop-path probability for the coming epoch (the training loop ramps it). The
        default supports only 0: a family without drop-path refuses ``--drop-path`` in
        :meth:`SpaceFamily.check_evaluation`."""
        if prob > 0.0:
            raise NasbenchEvalError(f"{type(self).__name__} has no drop-path; leave "
                                    f"--drop-path unset or 0")

    def auxiliary_modules(self) -> list[nn.Module]:
        """Modules used only for the auxiliary loss: excluded from the reported parameter
        count (the papers' convention) and the reason ``train_aux_loss`` is recorded."""
        return []


__all__ = ["EvalNetwork"]
