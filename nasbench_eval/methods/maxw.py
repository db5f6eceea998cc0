"""Max-W weighting (Hundt, Jain & Hager 2019, sharpDARTS, Sec. 4.3, Eq. 3).

Each edge mixes its candidates with ``1 - max(w) + w_i``, ``w = softmax(alpha)`` over that
edge's candidates: the strongest op gets weight exactly 1 and every other op
``1 - (max(w) - w_i)``. The paper's argument: scalar DARTS weighting favours the op with the
largest gradient early on (pools, skips); with Max-W the leader's output is not scaled
down, so the other ops have to outperform it to grow their alpha.

Only the mixing changes; the alpha step (first order, validation batch), the w step and the
optimizers are DARTS's (:class:`~nasbench_eval.methods.gradient.GradientMethod`). Gradients flow
through ``max`` (into the leading entry's softmax).

The search's w schedule defaults to sharpDARTS's (its ``cnn/train_search.py``): Cosine Power
Annealing (Eq. 2) with p = 2 (``--lr-power``), 5 linear warm-up epochs (``--lr-warmup``) and a
minimum learning rate of 1e-4 (``--w-lr-min``), normalised over epochs 1..T as the code does
(:func:`nasbench_eval.schedules.cosine_power`). DARTS's plain cosine down to 1e-3 stays
available: ``--lr-schedule cosine --lr-warmup 0 --w-lr-min 0.001``.

Derivation uses ``softmax(alpha)``, not the Max-W weights. The op chosen on an edge is the
same either way (per edge the transform adds a constant to every weight, so the argmax is
unchanged), but the DARTS rule also ranks a node's incoming edges by their strongest
non-``none`` weight, and under Max-W that weight is exactly 1 on every edge whose leader is
not ``none``: all such edges tie and the rule would keep the two lowest-indexed ones whatever
alpha says. Softmax keeps the ranking information.
"""
from __future__ import annotations

from ..lazy_torch import F
from ..spaces.base import Genotype
from .base import ArchWeights, register
from .gradient import GradientMethod


class MaxWMixing:
    """Max-W: ``1 - max(w) + w_i`` with ``w = softmax(alpha)`` over each edge's candidates."""

    def __call__(self, alphas: ArchWeights) -> ArchWeights:
        out = {}
        for cell, a in alphas.items():
            w = F.softmax(a, dim=-1)
            # (w_i - max) + 1, in this order: the leader's weight is exactly 1.0 in floating
            # point (1 - max + max can round to 0.99999994)
            out[cell] = (w - w.amax(dim=-1, keepdim=True)) + 1.0
        return out


@register
class MaxW(GradientMethod):
    """Max-W DARTS (sharpDARTS): edges mix with 1 - max(w) + w_i, w = softmax(alpha)."""

    name = "maxw"
    capturable = True
    paper = ("Hundt, Jain & Hager, sharpDARTS: Faster and More Accurate Differentiable "
             "Architecture Search, 2019")
    config_defaults = {"lr_schedule": "cosine-power", "lr_warmup": 5, "w_lr_min": 1e-4}
    """sharpDARTS's search schedule (``train_search.py``: cosine power annealing, exponent
    order 2 = RunConfig's ``lr_power`` default, 5 warm-up epochs, minimum lr 1e-4)."""

    def __init__(self) -> None:
        super().__init__()
        self.mixing = MaxWMixing()

    def derive(self) -> Genotype:
        """The DARTS rule on ``softmax(alpha)``: Max-W ties every edge's leader at 1, which
        would make the ranking of a node's incoming edges meaningless (see module doc)."""
        probs = {k: F.softmax(v.detach(), dim=-1) for k, v in self.alphas.items()}
        return self.space.derive(probs)
