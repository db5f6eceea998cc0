"""The discrete network of a DARTS-cell genotype: what the evaluation stage trains.

:class:`DiscreteNetwork` is DARTS's ``NetworkCIFAR``: normal and reduction cells built from the
genotype, drop-path that never drops identity edges, an auxiliary head at 2/3 depth.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..base import EvalNetwork, GenotypeError
from .genotype import Genotype
from .ops import FactorizedReduce, Identity, ReLUConvBN, build_op, op_spec


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Zero whole examples of ``x`` with probability ``p`` and rescale the rest by 1/(1-p).

    The identity when ``p == 0`` or outside training (the expectation is unchanged, so eval
    mode needs no correction). The mask draws from the torch RNG, which the training loop
    seeds from (seed, epoch).
    """
    if not training or p <= 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty(x.shape[0], *([1] * (x.dim() - 1)), device=x.device,
                       dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class DiscreteCell(nn.Module):
    """One normal or reduction cell of a genotype: each node sums two ops of earlier states.

    Preprocessing follows the search cell: ``s0`` through FactorizedReduce when the previous
    cell reduced (its resolution is twice ``s1``'s), else a 1x1 ReLUConvBN; ``s1`` through a
    1x1 ReLUConvBN. In a reduction cell the ops reading the two cell inputs use stride 2.
    """

    def __init__(self, pairs: tuple[tuple[str, int], ...], concat: tuple[int, ...],
                 c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_pp, c, affine=True) if reduction_prev \
            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=True)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=True)
        self.sources = [src for _, src in pairs]
        self.ops = nn.ModuleList(
            build_op(op, c, 2 if reduction and src < 2 else 1, affine=True, search=False)
            for op, src in pairs)
        # drop-path never touches an identity edge (DARTS: skip_connect at stride 1)
        self.droppable = [not isinstance(op, Identity) for op in self.ops]
        self.concat = tuple(concat)
        self.out_channels = c * len(self.concat)
        self.drop_prob = 0.0

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(len(self.ops) // 2):
            total = None
            for k in (2 * node, 2 * node + 1):
                h = self.ops[k](states[self.sources[k]])
                if self.droppable[k]:
                    h = drop_path(h, self.drop_prob, self.training)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS's CIFAR auxiliary classifier, applied to the output of the cell at 2/3 depth.

    ReLU, 5x5 average pool with stride 3 (8x8 -> 2x2, padding excluded), 1x1 conv to 128, BN,
    ReLU, 2x2 conv to 768, BN, ReLU, linear. The pool is the one part that depends on the
    image size: on the 8x8 maps of 32x32 inputs it is exactly DARTS's; on any other size
    (digits' 2x2, Fashion-MNIST's 7x7, ...) an adaptive average pool to 2x2 takes its place,
    so the 2x2 conv always sees the 2x2 map it was designed for.
    """

    def __init__(self, c_in: int, num_classes: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        if tuple(x.shape[-2:]) == (8, 8):
            x = F.avg_pool2d(x, 5, stride=3, padding=0, count_include_pad=False)
        else:
            x = F.adaptive_avg_pool2d(x, 2)
        return self.classifier(self.conv(x).flatten(1))


def validate_genotype(genotype: Genotype) -> None:
    """Refuse a genotype that cannot build: unknown ops, inputs from later nodes, bad concat."""
    for cell in ("normal", "reduce"):
        pairs = genotype.cell(cell)
        concat = getattr(genotype, f"{cell}_concat")
        if not pairs or len(pairs) % 2:
            raise GenotypeError(
                f"genotype {cell} cell: needs two (op, input) pairs per node, got {len(pairs)} pairs")
        for k, (op, src) in enumerate(pairs):
            op_spec(op)  # unknown op -> error listing the valid ones
            node = k // 2
            if not 0 <= src < node + 2:
                raise GenotypeError(
                    f"genotype {cell} cell: pair {k} ({op}, {src}) reads state {src}, but node "
                    f"{node} can only read states 0..{node + 1}")
        n_states = 2 + len(pairs) // 2
        if not concat or any(not 0 <= i < n_states for i in concat):
            raise GenotypeError(
                f"genotype {cell}_concat {list(concat)} must name states in 0..{n_states - 1}")


class DiscreteNetwork(EvalNetwork):
    """The discrete network of a DARTS-family genotype (DARTS's ``NetworkCIFAR``).

    Stem (3x3 conv to 3C, BN), ``layers`` cells with reductions at ``layers // 3`` and
    ``2 * layers // 3`` (channels double there), global average pool, linear. With
    ``auxiliary`` an :class:`AuxiliaryHead` reads the output of cell ``2 * layers // 3``.

    ``forward`` returns ``(logits, aux_logits)``; ``aux_logits`` is ``None`` in eval mode or
    without a head (the head is then not computed at all). ``drop_path_prob`` (settable; the
    training loop ramps it) is the probability of dropping a non-identity edge in training.
    """

    def __init__(self, genotype: Genotype, C: int, layers: int, num_classes: int,
                 in_channels: int = 3, auxiliary: bool = False, drop_path: float = 0.0,
                 stem_multiplier: int = 3):
        super().__init__()
        if layers < 1 or C < 1:
            raise GenotypeError(f"layers and channels must be positive, got {layers} / {C}")
        validate_genotype(genotype)
        self.genotype = genotype
        self.layers = layers
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_curr))
        reductions = {layers // 3, 2 * layers // 3} if layers >= 3 else set()
        self.aux_index = 2 * layers // 3
        c_pp, c_p, c = c_curr, c_curr, C
        reduction_prev = False
        c_aux = c_p
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            cell_type = "reduce" if reduction else "normal"
            cell = DiscreteCell(genotype.cell(cell_type), getattr(genotype, f"{cell_type}_concat"),
                                c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.out_channels
            if i == self.aux_index:
                c_aux = c_p
        self.auxiliary_head = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self.drop_path_prob = drop_path

    def set_drop_path(self, prob: float) -> None:
        self.drop_path_prob = prob

    def auxiliary_modules(self) -> list[nn.Module]:
        return [self.auxiliary_head] if self.auxiliary_head is not None else []

    @property
    def drop_path_prob(self) -> float:
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self._drop_path_prob = float(p)
        for cell in self.cells:
            cell.drop_prob = float(p)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        return self.classifier(self.pool(s1).flatten(1)), aux


__all__ = ["AuxiliaryHead", "DiscreteCell", "DiscreteNetwork", "drop_path", "validate_genotype"]
