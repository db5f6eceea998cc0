"""DrNAS (Chen et al., ICLR 2021): architecture weights as Dirichlet random variables.

A preset of the composition (:mod:`.composed`) with the ``dirichlet`` sampler
(:class:`~.samplers.DirichletSampler`): alpha parameterises the concentration elu(alpha) + 1
(``--concentration softplus`` for softplus(alpha)); every training forward mixes with a
reparameterised Dirichlet sample per edge (pathwise gradient). The regulariser is DrNAS's
code's: by default ``l2`` (Adam's weight decay on alpha, ``--alpha-weight-decay``, 1e-3 as
its ``reg_scale``); ``--kl-scale S`` > 0 switches to its ``kl`` mode, adding
S * sum KL(Dir(concentration) || Dir(1)) to the alpha loss and turning Adam's weight decay
off, as its code does. The supernet is evaluated at the Dirichlet mean; the genotype is the
space's rule on softmax(alpha), as DrNAS's ``genotype()``. Left out: the progressive
schedule of its DARTS-space search (partial channels K=6 then 4 with pruning to 7 then 4
candidates per edge between two 25-epoch stages) and its alpha warm-up (no alpha step in the
first 10 epochs of each stage); ``--partial-channels K`` gives a fixed K.
"""
from __future__ import annotations

from ..options import Option
from .base import register
from .composed import ComposedMethod, composed_options
from .samplers import DirichletSampler, Sampler

PAPER = ("Chen, Wang, Cheng, Tang & Hsieh, DrNAS: Dirichlet Neural Architecture Search, "
         "ICLR 2021")


@register
class DrNAS(ComposedMethod):
    """DrNAS: mixing weights sampled from Dirichlet(elu(alpha) + 1), pathwise gradients."""

    name = "drnas"
    preset = "drnas"
    paper = PAPER
    capturable = False
    options = {
        **composed_options("drnas"),
        "concentration": Option("elu", str, "map from alpha to the Dirichlet concentration: "
                                "elu (elu(alpha) + 1, DrNAS's code) or softplus",
                                choices=("elu", "softplus")),
        "kl_scale": Option(0.0, float, "> 0: DrNAS's kl regulariser, kl_scale * KL(Dir || "
                           "Dir(1)) on the alpha loss, Adam's weight decay off (0: its default "
                           "l2 mode, --alpha-weight-decay)", minimum=0.0),
    }

    def make_sampler(self) -> Sampler:
        return DirichletSampler(self.opts["concentration"], float(self.opts["kl_scale"]))

    def arch_weight_decay(self) -> float:
        return 0.0 if self.opts["kl_scale"] > 0 else self.cfg.alpha_weight_decay
