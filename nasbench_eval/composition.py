"""Methods as compositions: an architecture sampler, a perturbation, partial channels and
edge normalisation (plain data; the analysis reads it without torch).

A composed method (:mod:`nasbench_eval.methods.composed`) is defined by four parts:

* ``sampler``: how alphas become the mixing weights of a training forward: ``softmax``
  (DARTS), ``gumbel-hard`` (GDAS: one straight-through one-hot sample per edge),
  ``dirichlet`` (DrNAS: a reparameterised Dirichlet sample);
* ``perturb``: SDARTS's perturbation of the w step's weights: ``none``, ``random``,
  ``adversarial``;
* ``partial_channels``: PC-DARTS's partial channel connections, 1/K of the channels through
  the candidates (1: off);
* ``edge_norm``: PC-DARTS's edge normalisation, a beta per edge softmax-normalised over the
  edges into each node and multiplied into the edge's weights.

Each registered name is a preset (:data:`PRESETS`); ``--perturb``, ``--partial-channels``
and ``--edge-norm`` change a part. The sampler is the method's identity and is not an option.
Only options the user gives enter the run id, so a preset keeps its run id; the leaderboard
groups runs by :func:`composition_label` (the method name, plus the parts the user changed).
"""
from __future__ import annotations

from typing import Any

SAMPLERS = ("softmax", "gumbel-hard", "dirichlet")
PERTURBATIONS = ("none", "random", "adversarial")
PARTS = ("perturb", "partial_channels", "edge_norm")
"""The method options that change the composition (and so the leaderboard's group)."""

DEFAULT_PARTS: dict[str, Any] = {"perturb": "none", "partial_channels": 1, "edge_norm": False}

PRESETS: dict[str, dict[str, Any]] = {
    "darts": {"sampler": "softmax", **DEFAULT_PARTS},
    "sdarts-rs": {"sampler": "softmax", **DEFAULT_PARTS, "perturb": "random"},
    "sdarts-adv": {"sampler": "softmax", **DEFAULT_PARTS, "perturb": "adversarial"},
    "pc-darts": {"sampler": "softmax", **DEFAULT_PARTS, "partial_channels": 4,
                 "edge_norm": True},
    "gdas": {"sampler": "gumbel-hard", **DEFAULT_PARTS},
    "drnas": {"sampler": "dirichlet", **DEFAULT_PARTS},
}
"""Each composed method's parts when no option changes them."""


def composition_label(method: str, method_options: dict[str, Any] | None) -> str:
    """The name the leaderboard groups a run under: ``method`` itself, or ``method`` plus
    every composition part the user set to something other than the preset's value, e.g.
    ``drnas+perturb=adversarial`` or ``darts+partial_channels=2``. Runs of methods that are
    not compositions keep their name."""
    preset = PRESETS.get(method, DEFAULT_PARTS)
    opts = method_options or {}
    extra = [f"{k}={_text(opts[k])}" for k in PARTS if k in opts and opts[k] != preset.get(k)]
    return "+".join([method, *extra])


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
