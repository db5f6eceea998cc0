"""Largest eigenvalue of a Hessian by Lanczos iteration on Hessian-vector products.

Used to track the curvature of the validation loss w.r.t. the architecture parameters, the
signal RobustDARTS links to DARTS's collapse. RobustDARTS reports ``lambda_max = max(eig(H))``
(algebraic, not the largest magnitude) of the Hessian of L_val *including* the alpha
weight-decay term (+ wd * I); :func:`max_eigenvalue` computes that number without forming H:
only Hessian-vector products (double backprop), so the cost is a few dozen backward passes
whatever the number of alphas.

Why Lanczos and not plain power iteration: power iteration converges to the eigenvalue of
largest *magnitude*; when the most negative eigenvalue is larger in magnitude than the most
positive one (common early in a search) it returns the negative end, which is not lambda_max
(issue 16: -0.349 where RobustDARTS reports +0.198). Lanczos with full reorthogonalisation
gives the algebraically largest Ritz value directly and is exact once the Krylov space spans
the whole parameter space (a few hundred alphas at most here).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import NasbenchEvalError
from .lazy_torch import torch

if TYPE_CHECKING:
    from torch import Tensor


class HessianError(NasbenchEvalError):
    """The eigenvalue could not be computed (bad arguments)."""


def hessian_vector_product(loss_fn: Callable[[list[Tensor]], Tensor], params: list[Tensor],
                           vec: list[Tensor]) -> list[Tensor]:
    """``H @ vec`` for the Hessian of ``loss_fn`` at ``params`` (double backprop)."""
    xs = [p.detach().requires_grad_() for p in params]
    grads = torch.autograd.grad(loss_fn(xs), xs, create_graph=True, materialize_grads=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vec))
    return list(torch.autograd.grad(dot, xs, materialize_grads=True))


def lanczos_max_eigenvalue(matvec: Callable[[Tensor], Tensor], n: int, iters: int = 20,
                           tol: float = 1e-6, restarts: int = 10, seed: int = 0) -> float:
    """Largest algebraic eigenvalue of the symmetric operator ``matvec`` on R^n (float64).

    Lanczos with full reorthogonalisation, at most ``iters`` products per cycle; a cycle
    ends when the Ritz value's residual bound ``|beta_j * s_j[-1]|`` is below ``tol`` times
    ``max(|theta|, 1)``, or the Krylov space is invariant (then the value is exact). An
    unconverged cycle restarts from its Ritz vector, at most ``restarts`` times. The start
    vector is drawn from ``seed``, so the result is a deterministic function of the operator.
    """
    if n < 1:
        raise HessianError("the Hessian has no rows (no parameters)")
    if iters < 1:
        raise HessianError(f"need at least one Lanczos iteration, got {iters}")
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, generator=g, dtype=torch.float64)
    theta = float("nan")
    for _ in range(restarts + 1):
        q = q / q.norm()
        basis = [q]
        alphas: list[float] = []
        betas: list[float] = []
        converged = False
        ritz = q
        for j in range(min(iters, n)):
            w = matvec(basis[j]).to(torch.float64)
            a = float(w @ basis[j])
            alphas.append(a)
            # full reorthogonalisation (twice is enough, Kahan/Parlett), stable at this size
            stack = torch.stack(basis)
            for _r in range(2):
                w = w - stack.T @ (stack @ w)
            b = float(w.norm())
            t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
            if betas:
                off = torch.tensor(betas, dtype=torch.float64)
                t = t + torch.diag(off, 1) + torch.diag(off, -1)
            evals, evecs = torch.linalg.eigh(t)
            theta, s = float(evals[-1]), evecs[:, -1]
            ritz = stack.T @ s
            scale = max(abs(theta), 1.0)
            if b <= 1e-12 * scale or len(basis) == n or abs(b * float(s[-1])) <= tol * scale:
                converged = True
                break
            betas.append(b)
            basis.append(w / b)
        if converged:
            return theta
        q = ritz
    return theta


def max_eigenvalue(loss_fn: Callable[[list[Tensor]], Tensor], params: list[Tensor],
                   weight_decay: float = 0.0, iters: int = 20, tol: float = 1e-6,
                   seed: int = 0) -> float:
    """lambda_max of ``d^2 [loss + weight_decay / 2 * ||params||^2] / d params^2``.

    The decay term adds ``weight_decay * I`` (RobustDARTS differentiates the alpha gradient
    *with* Adam's weight-decay term). ``loss_fn`` must be deterministic (callers fix the RNG
    of stochastic ops); ``iters`` is the number of Hessian-vector products per Lanczos cycle.
    """
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    ref = params[0]

    def matvec(v: Tensor) -> Tensor:
        parts = torch.split(v.to(device=ref.device, dtype=ref.dtype), sizes)
        vec = [x.reshape(s) for x, s in zip(parts, shapes)]
        hv = hessian_vector_product(loss_fn, params, vec)
        return torch.cat([h.reshape(-1) for h in hv]).detach().to("cpu", torch.float64)

    lam = lanczos_max_eigenvalue(matvec, sum(sizes), iters=iters, tol=tol, seed=seed)
    return lam + weight_decay


def dominant_eigenvalue(loss_fn: Callable[[list[Tensor]], Tensor], params: list[Tensor],
                        iters: int = 20, tol: float = 1e-4, seed: int = 0) -> float:
    """Eigenvalue of largest *magnitude* (Rayleigh quotient of power iteration): what
    ``--hessian-every`` reported before issue 16. Kept for comparing with old run
    directories; it is not RobustDARTS's lambda_max (see the module docstring).
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
