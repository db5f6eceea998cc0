"""DARTS (Liu et al., ICLR 2019), first order and second order (unrolled).

The second-order alpha gradient follows the reference implementation (quark0/darts
``architect.py``): a virtual SGD step w' = w - xi (momentum * buf + dL_train/dw + wd * w)
with xi the current learning rate, then

    dL_val(w', alpha)/dalpha - xi * [dL_train(w+)/dalpha - dL_train(w-)/dalpha] / (2 eps),

with w+- = w +- eps * dL_val/dw' and eps = 0.01 / ||dL_val/dw'||.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..lazy_torch import F, torch
from ..options import Option
from .base import Batch, register
from .composed import ComposedMethod, composed_options
from .gradient import GradientMethod

if TYPE_CHECKING:
    from torch import Tensor

LossFn = Callable[[list["Tensor"], list["Tensor"]], "Tensor"]
"""loss(w, alpha) for lists of weight tensors and architecture tensors."""


def unrolled_alpha_grads(train_loss: LossFn, val_loss: LossFn, w: list[Tensor],
                         alphas: list[Tensor], xi: float, momentum: float,
                         momentum_bufs: list[Tensor | None], weight_decay: float,
                         r: float = 0.01) -> tuple[list[Tensor], Tensor]:
    """Second-order DARTS gradient of L_val w.r.t. alpha, finite-difference HVP.

    Pure function of the two losses, so it is tested on problems with known answers.
    Returns (grads per alpha tensor, L_val at the virtual step).
    """
    w = [p.detach() for p in w]
    alphas_d = [a.detach() for a in alphas]
    # 1. virtual step
    w_req = [p.clone().requires_grad_() for p in w]
    g_train = torch.autograd.grad(train_loss(w_req, alphas_d), w_req, materialize_grads=True)
    w_virtual = []
    for p, g, buf in zip(w, g_train, momentum_bufs):
        d = g + weight_decay * p
        if buf is not None:
            d = d + momentum * buf
        w_virtual.append((p - xi * d).requires_grad_())
    # 2. gradient of the validation loss at w'
    a_req = [a.clone().requires_grad_() for a in alphas_d]
    loss_val = val_loss(w_virtual, a_req)
    grads = torch.autograd.grad(loss_val, a_req + w_virtual, materialize_grads=True)
    d_alpha, d_w = list(grads[: len(a_req)]), list(grads[len(a_req):])
    # 3. Hessian-vector product by central differences around w
    norm = torch.sqrt(sum((g * g).sum() for g in d_w))
    eps = r / norm.clamp_min(1e-12)  # zero gradient: the HVP term is zero, not NaN
    hvp_terms = []
    for sign in (1.0, -1.0):
        w_shift = [p + sign * eps * g for p, g in zip(w, d_w)]
        a_req = [a.clone().requires_grad_() for a in alphas_d]
        hvp_terms.append(torch.autograd.grad(train_loss(w_shift, a_req), a_req,
                                             materialize_grads=True))
    out = [da - xi * (gp - gn) / (2.0 * eps)
           for da, gp, gn in zip(d_alpha, hvp_terms[0], hvp_terms[1])]
    return out, loss_val.detach()


@register
class Darts(ComposedMethod):
    """DARTS, first order: alpha follows dL_val/dalpha at the current weights (softmax sampler)."""

    name = "darts"
    preset = "darts"
    capturable = True
    paper = "Liu, Simonyan & Yang, DARTS: Differentiable Architecture Search, ICLR 2019"
    options = composed_options("darts")


@register
class Darts2nd(GradientMethod):
    """DARTS, second order: unrolled one SGD step, finite-difference Hessian-vector product."""

    name = "darts-2nd"
    capturable = True
    paper = "Liu, Simonyan & Yang, DARTS: Differentiable Architecture Search, ICLR 2019"
    options = {"hvp_r": Option(0.01, float, "finite-difference radius of the Hessian-vector "
                               "product (divided by ||dL_val/dw'||; reference: 0.01)",
                               positive=True)}

    def alpha_grads(self, train_batch: Batch, val_batch: Batch) -> tuple[list[Tensor], Tensor]:
        net = self.supernet
        names = [n for n, p in net.named_parameters() if p.requires_grad]
        # the extra forwards must not move the real BN running statistics
        buffers = {n: b.clone() for n, b in net.named_buffers()}
        keys = list(self.alphas)

        def make_loss(batch: Batch) -> LossFn:
            x, y = batch

            def loss(w: list[Tensor], a: list[Tensor]) -> Tensor:
                weights = self.mixing(dict(zip(keys, a)))
                with self.autocast():  # the run's precision, as every other forward
                    logits = torch.func.functional_call(net, {**dict(zip(names, w)), **buffers},
                                             (x, weights))
                if logits.dtype in (torch.bfloat16, torch.float16):
                    logits = logits.float()
                return F.cross_entropy(logits, y)

            return loss

        bufs = [self.w_opt.state.get(p, {}).get("momentum_buffer") for p in self.w_params]
        return unrolled_alpha_grads(
            make_loss(train_batch), make_loss(val_batch), self.w_params,
            list(self.alphas.values()), xi=self.lr, momentum=self.cfg.w_momentum,
            momentum_bufs=bufs, weight_decay=self.cfg.w_weight_decay,
            r=self.opts["hvp_r"])
