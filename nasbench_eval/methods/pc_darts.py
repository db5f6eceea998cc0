"""PC-DARTS (Xu et al., ICLR 2020): partial channel connections and edge normalisation.

A preset of the composition (:mod:`.composed`): the softmax sampler with
``--partial-channels 4`` (every mixed edge sends 1/4 of its channels through the candidates,
the rest bypass them, max-pooled on strided edges; the two are concatenated and shuffled in
4 groups; the supernet's ``set_partial_channels``) and ``--edge-norm`` (a beta per edge,
softmax over the edges into each node, multiplying the edge's output; derivation ranks edges
by softmax(beta) x softmax(alpha), as the reference's ``genotype()``). K=4 is the paper's
CIFAR setting (ImageNet: 2). The paper's search settings (batch 256, lr 0.1, lr_min 0, 50
epochs, alpha lr 6e-4, no alpha step for the first 15 epochs) are not defaults here; see
docs/methods.md for where ours differ and why.
"""
from __future__ import annotations

from .base import register
from .composed import ComposedMethod, composed_options

PAPER = ("Xu, Xie, Zhang, Chen, Qi, Tian & Xiong, PC-DARTS: Partial Channel Connections for "
         "Memory-Efficient Architecture Search, ICLR 2020")


@register
class PcDarts(ComposedMethod):
    """PC-DARTS: 1/K of the channels through the candidates, edges normalised by beta."""

    name = "pc-darts"
    preset = "pc-darts"
    paper = PAPER
    needs = ("set_partial_channels", "node_edges")
    capturable = True
    options = composed_options("pc-darts")
