"""GDAS (Dong & Yang, CVPR 2019): one sampled candidate per edge, computed alone.

A preset of the composition (:mod:`.composed`) with the ``gumbel-hard`` sampler
(:class:`~.samplers.GumbelHardSampler`): every training forward (the alpha step and the w
step, each its own sample) draws per edge one Gumbel-max candidate of softmax(alpha) at
temperature tau and mixes with the straight-through one-hot weights; the supernet computes
only that candidate (:class:`~.samplers.SinglePath` through ``set_edge_forward``), which is
GDAS's speed claim (benchmarks/new_methods.py measures it). tau falls linearly from tau_max
(10) at the first epoch to tau_min (0.1) at the last, as AutoDL-Projects' ``GDAS.py``. The
supernet is evaluated with softmax(alpha) through the full mixture, and the genotype is the
space's rule on softmax(alpha). Choosing the candidate reads the sample on the host (one sync
per forward), so GDAS steps are not captured as CUDA graphs. Needs a supernet with
``set_edge_forward``. Rows of a weight key without candidate modules (NAS-Bench-1Shot1's
parent and output rows, which weight whole states) get a relaxed Gumbel-softmax sample at
the same tau, as NAS-Bench-1Shot1's ``optimizers/gdas`` does (:func:`relaxed_keys`).
"""
from __future__ import annotations

from ..config import RunConfig
from ..options import Option, OptionError
from ..spaces.base import Space
from .base import register
from .composed import ComposedMethod, composed_options
from .samplers import GumbelHardSampler, Sampler, SinglePath

PAPER = ("Dong & Yang, Searching for a Robust Neural Architecture in Four GPU Hours, "
         "CVPR 2019")


@register
class Gdas(ComposedMethod):
    """GDAS: a hard Gumbel-softmax sample per edge, only the sampled candidate computed."""

    name = "gdas"
    preset = "gdas"
    paper = PAPER
    needs = ("set_edge_forward",)
    capturable = False  # the chosen candidates are read on the host every forward
    options = {
        **composed_options("gdas"),
        "tau_max": Option(10.0, float, "Gumbel-softmax temperature at the first epoch",
                          positive=True),
        "tau_min": Option(0.1, float, "temperature at the last epoch (linear in between)",
                          positive=True),
        "gdas_unselected": Option("none", str, "gradient to the unsampled candidates' "
                                  "weights: none (GDAS's DARTS-space cell) or sum (its "
                                  "NAS-Bench-201 cell adds them as scalars)",
                                  choices=("none", "sum")),
    }

    def setup(self, supernet, space: Space, cfg: RunConfig, steps_per_epoch: int) -> None:
        super().setup(supernet, space, cfg, steps_per_epoch)
        if self.opts["tau_min"] > self.opts["tau_max"]:
            raise OptionError(f"method 'gdas' needs --tau-min <= --tau-max, got tau_min="
                              f"{self.opts['tau_min']}, tau_max={self.opts['tau_max']}")
        self.sampler.relaxed_keys = relaxed_keys(supernet)

    def make_sampler(self) -> Sampler:
        return GumbelHardSampler(float(self.opts["tau_max"]), float(self.opts["tau_min"]))

    def make_single_path(self) -> SinglePath:
        return SinglePath(self.opts["gdas_unselected"])


def relaxed_keys(supernet) -> frozenset[str]:
    """The weight keys none of whose rows has candidate modules (the supernet's
    ``candidates()`` names no such cell type): they weight whole states, so GDAS samples them
    relaxed. Empty for DARTS cells and NAS-Bench-201, whose every row is a mixed edge."""
    with_candidates = {c.cell_type for c in supernet.candidates()}
    return frozenset(k for k in supernet.arch_shapes() if k not in with_candidates)
