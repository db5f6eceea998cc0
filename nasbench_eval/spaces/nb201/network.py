"""The discrete network of a NAS-Bench-201 genotype (what the benchmark trains, and what the
evaluation stage and the ``train-nb201`` oracle train here).

Same skeleton as the supernet (:func:`.ops.build_skeleton`), with each cell computing exactly
the genotype's op on each edge and BN with affine parameters. At ``channels=16``,
``layers=15`` (N = 5) and 10 classes its parameter count is the benchmark's (0.802426 M for
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``,
NATS-Bench issues 18 and 36; ``tests/test_nb201.py``).
"""
from __future__ import annotations

from torch import Tensor, nn

from ..base import EvalNetwork
from .genotype import Nb201Genotype, edge_list
from .ops import build_op, build_skeleton, head


class InferCell(nn.Module):
    """One discrete cell: node j = sum over i < j of op(i -> j)(node i). ``none`` edges add
    nothing; a node without live inputs is zero, and an op on it is still computed (a
    convolution's BN turns zero into its learned bias, as in the benchmark's network)."""

    def __init__(self, genotype: Nb201Genotype, channels: int):
        super().__init__()
        self.edge_index = edge_list(genotype.nodes)
        self.nodes = genotype.nodes
        mods = [build_op(op, channels, affine=True) for op in genotype.ops]
        self.live = [e for e, m in enumerate(mods) if m is not None]
        self.ops = nn.ModuleList(mods[e] for e in self.live)

    def forward(self, x: Tensor) -> Tensor:
        states = [x] + [None] * (self.nodes - 1)
        for e, op in zip(self.live, self.ops):
            s, t = self.edge_index[e]
            y = op(states[s] if states[s] is not None else x * 0.0)
            states[t] = y if states[t] is None else states[t] + y
        out = states[-1]
        return out if out is not None else x * 0.0


class Nb201Network(EvalNetwork):
    """The benchmark's network of one genotype: ``forward(x) -> (logits, None)``."""

    def __init__(self, genotype: Nb201Genotype, channels: int, layers: int, num_classes: int,
                 in_channels: int = 3):
        super().__init__()
        self.genotype = genotype
        build_skeleton(self, lambda c: InferCell(genotype, c), channels, layers, num_classes,
                       in_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        h = self.stem(x)
        for layer in self.layers:
            h = layer(h)
        return head(self, h), None


__all__ = ["InferCell", "Nb201Network"]
