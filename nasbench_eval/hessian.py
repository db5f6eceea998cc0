"""Dominant eigenvalue of a Hessian by power iteration on Hessian-vector products.

Used to track the curvature of the validation loss w.r.t. the architecture parameters, the
signal RobustDARTS links to DARTS's collapse. Only Hessian-vector products are formed
(double backprop), so the cost is a few backward passes, whatever the number of alphas.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def hessian_vector_product(loss_fn: Callable[[list[Tensor]], Tensor], params: list[Tensor],
                           vec: list[Tensor]) -> list[Tensor]:
    xs = [p.detach().requires_grad_() for p in params]
    grads = torch.autograd.grad(loss_fn(xs), xs, create_graph=True, materialize_grads=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vec))
    return list(torch.autograd.grad(dot, xs, materialize_grads=True))


def dominant_eigenvalue(loss_fn: Callable[[list[Tensor]], Tensor], params: list[Tensor],
                        iters: int = 20, tol: float = 1e-4, seed: int = 0) -> float:
    """Eigenvalue of largest magnitude of d^2 loss / d params^2 (Rayleigh quotient).

    ``loss_fn`` must be deterministic (callers fix the RNG of stochastic ops); iteration stops
    when the estimate changes by less than ``tol`` relative.
    """
    g = torch.Generator().manual_seed(seed)
    vec = [torch.randn(p.shape, generator=g).to(p) for p in params]
    norm = torch.sqrt(sum((v * v).sum() for v in vec))
    vec = [v / norm for v in vec]
    eig = 0.0
    for _ in range(iters):
        hv = hessian_vector_product(loss_fn, params, vec)
        new = float(sum((h * v).sum() for h, v in zip(hv, vec)))
        norm = torch.sqrt(sum((h * h).sum() for h in hv))
        if float(norm) == 0.0:
            return 0.0
        vec = [h / norm for h in hv]
        if abs(new - eig) <= tol * max(abs(new), 1e-12):
            return new
        eig = new
    return eig
