"""SDARTS (Chen & Hsieh, ICML 2020): smooth the w step with perturbed architecture weights.

Both variants are presets of the composition (:mod:`.composed`): the softmax sampler with
``--perturb random`` (SDARTS-RS) or ``--perturb adversarial`` (SDARTS-ADV); the pure pieces
live in :mod:`.perturbations` and are re-exported here. One iteration keeps the DARTS order:
the alpha step on a validation batch uses the clean softmax(alpha); the w step on the
training batch then mixes with softmax(alpha) + delta, projected back onto each edge's
simplex. The radius ramps linearly over the search: eps_t = eps_min + (eps_max - eps_min) *
t / T, t the 0-based epoch and T the number of epochs (reference: 0.03 to 0.3).
"""
from __future__ import annotations

from .base import register
from .composed import ComposedMethod, composed_options
from .perturbations import (WeightsLoss, clip_to_simplex, keep_if_stronger, pgd_perturbation,
                            pgd_update, random_perturbation, uniform_delta)

PAPER = ("Chen & Hsieh, Stabilizing Differentiable Architecture Search via "
         "Perturbation-based Regularization, ICML 2020")

__all__ = ["PAPER", "SdartsADV", "SdartsRS", "WeightsLoss", "clip_to_simplex",
           "keep_if_stronger", "pgd_perturbation", "pgd_update", "random_perturbation",
           "uniform_delta"]


@register
class SdartsRS(ComposedMethod):
    """SDARTS-RS: the w step mixes with softmax(alpha) + U(-eps, eps), projected to the simplex."""

    name = "sdarts-rs"
    preset = "sdarts-rs"
    capturable = True
    paper = PAPER
    options = composed_options("sdarts-rs")


@register
class SdartsADV(ComposedMethod):
    """SDARTS-ADV: the w step mixes with PGD-worst-case weights within eps of softmax(alpha)."""

    name = "sdarts-adv"
    preset = "sdarts-adv"
    capturable = True
    paper = PAPER
    options = composed_options("sdarts-adv")
