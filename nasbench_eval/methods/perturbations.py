"""SDARTS's perturbations of the mixing weights (Chen & Hsieh, ICML 2020), as pure functions.

A composed method (:mod:`.composed`, ``--perturb random|adversarial``) perturbs the weights
its w step mixes with; alpha itself is never perturbed.

- random (SDARTS-RS): delta ~ U(-eps, eps) per entry, projected back onto each edge's simplex
  by :func:`clip_to_simplex`.
- adversarial (SDARTS-ADV): delta maximises the training loss of the same batch (PGD with
  sign steps in the L-inf ball of radius eps, random start); the clean weights are used
  instead when the attack ends below the clean loss.

All randomness comes from torch's global RNG (reseeded by the runner every epoch), and no
function here reads a tensor value on the host, so a step never syncs.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..lazy_torch import F, torch
from .base import ArchWeights

if TYPE_CHECKING:
    from torch import Tensor

WeightsLoss = Callable[[ArchWeights], "Tensor"]
"""loss(weights) of mixing weights (one tensor per cell type) -> scalar tensor."""


# ----------------------------------------------------------------------------- pure pieces

def clip_to_simplex(w: Tensor) -> Tensor:
    """Project every row (one edge's candidates) back onto the simplex, as SDARTS' clip():
    clamp to [0, 1]; a row that is then all zero becomes one-hot at its pre-clamp argmax;
    finally each row is divided by its sum."""
    clamped = w.clamp(0.0, 1.0)
    total = clamped.sum(dim=-1, keepdim=True)
    one_hot = F.one_hot(w.argmax(dim=-1), w.shape[-1]).to(w.dtype)
    clamped = torch.where(total == 0, one_hot, clamped)
    return clamped / clamped.sum(dim=-1, keepdim=True)


def uniform_delta(like: Tensor, eps: float) -> Tensor:
    """Noise U(-eps, eps) per entry, from torch's global RNG (on ``like``'s device)."""
    return (2.0 * torch.rand_like(like) - 1.0) * eps


def random_perturbation(clean: ArchWeights, eps: float) -> ArchWeights:
    """SDARTS-RS: clip(clean + U(-eps, eps)) for every cell type."""
    return {k: clip_to_simplex(w + uniform_delta(w, eps)) for k, w in clean.items()}


def pgd_update(weights: Tensor, grad: Tensor, clean: Tensor, eps: float,
               step_size: float) -> tuple[Tensor, Tensor]:
    """One L-inf ascent step: w + step_size * sign(grad), its offset from ``clean`` clamped to
    [-eps, eps], then projected onto the simplex. Returns (clamped delta, projected weights);
    the projection's renormalisation may take the result slightly beyond eps."""
    delta = (weights + step_size * grad.sign() - clean).clamp(-eps, eps)
    return delta, clip_to_simplex(clean + delta)


def keep_if_stronger(perturbed: ArchWeights, clean: ArchWeights, perturbed_loss: Tensor,
                     clean_loss: Tensor) -> ArchWeights:
    """The perturbed weights where the attack did not lower the loss, else the clean ones
    (a device-side choice: no host sync)."""
    keep = perturbed_loss >= clean_loss
    return {k: torch.where(keep, perturbed[k], clean[k]) for k in clean}


def pgd_perturbation(loss_fn: WeightsLoss, clean: ArchWeights, eps: float, steps: int,
                     step_size: float | None = None) -> ArchWeights:
    """SDARTS-ADV: weights within eps of ``clean`` (before renormalisation) that maximise
    ``loss_fn`` by ``steps`` sign-gradient steps from a random start; ``clean`` itself when
    the result's loss is below the clean loss. ``step_size`` None: 2 * eps / steps.

    Only the gradient with respect to the weights is taken (``torch.autograd.grad``), so
    nothing accumulates in the ``.grad`` of any parameter ``loss_fn`` closes over.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    step = 2.0 * eps / steps if step_size is None else float(step_size)
    keys = list(clean)
    clean = {k: v.detach() for k, v in clean.items()}
    w = random_perturbation(clean, eps)
    for _ in range(steps):
        w_req = [w[k].clone().requires_grad_() for k in keys]
        with torch.enable_grad():
            loss = loss_fn(dict(zip(keys, w_req)))
            grads = torch.autograd.grad(loss, w_req, materialize_grads=True)
        with torch.no_grad():
            w = {k: pgd_update(wk.detach(), g, clean[k], eps, step)[1]
                 for k, wk, g in zip(keys, w_req, grads)}
    with torch.no_grad():
        return keep_if_stronger(w, clean, loss_fn(w), loss_fn(clean))
