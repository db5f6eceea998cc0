"""The network the evaluation stage trains for an ``nb101-cell`` genotype: NAS-Bench-101's."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from ...errors import NasbenchEvalError
from ..base import EvalNetwork


class NB101Network(EvalNetwork):
    """NAS-Bench-101's network for one cell spec, through ``nasbench_pytorch`` (``Network``).

    ``layers`` cells = 3 stacks of ``layers // 3``; ``C`` = stem channels (128 in the
    benchmark). Returns ``(logits, None)`` like every evaluation network; no auxiliary head,
    no drop-path (NAS-Bench-101 trains without either).
    """

    def __init__(self, spec: Any, C: int, layers: int, num_classes: int, in_channels: int = 3):
        super().__init__()
        try:
            from nasbench_pytorch.model import Network
        except ImportError:  # pragma: no cover - it is a dependency
            raise NasbenchEvalError("evaluating a NAS-Bench-101 cell needs the nasbench_pytorch "
                                    "package (pip install nasbench_pytorch)") from None
        if layers < 3 or layers % 3:
            raise NasbenchEvalError(f"a NAS-Bench-101 network has 3 stacks: layers must be a "
                                    f"multiple of 3, got {layers}")
        matrix = [[int(v) for v in row] for row in spec.matrix]  # lists or a numpy array
        ops = [str(o) for o in spec.ops]
        self.net = Network((matrix, ops), num_labels=num_classes, in_channels=in_channels,
                           stem_out_channels=C, num_stacks=3, num_modules_per_stack=layers // 3,
                           momentum=0.1)
        self.auxiliary_head = None
        self.drop_path_prob = 0.0

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        return self.net(x), None


__all__ = ["NB101Network"]
