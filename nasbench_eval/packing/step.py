"""The search step of K packed seeds: per-seed losses, gradients, clipping and optimizers.

Why it equals K separate steps: the K seeds' parameters are disjoint slices of the packed
tensors (:mod:`.net`), so the gradient of the sum of the K per-seed losses is, slice by slice,
each seed's own gradient. SGD (momentum, weight decay) and Adam are elementwise given a
shared step count and learning rate, so one torch optimizer over the packed tensors is K
optimizers. What is not elementwise is done per seed explicitly: the loss (each seed's mean
over its own batch), the gradient-norm clipping (each seed's norm over its own slices),
SDARTS's noise (each seed's generator), SDARTS-ADV's revert decision and second-order
DARTS's finite-difference radius (each seed's own gradient norm).

A method packs only when its step is known here (:data:`PACKED_METHODS`); every other method
is refused by :func:`packed_step_for` with the reason. Between epochs the per-seed method
objects own the state (their optimizers hold each seed's slice of the packed optimizer
state), so checkpoints, the epoch's end (schedules, lambda_max), derivation and resume are
exactly those of separate runs.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..methods.base import ArchWeights, Batch, Method
from ..methods.gradient import GradientMethod
from ..methods.rdarts import RobustDartsBase
from ..methods.sdarts import clip_to_simplex, pgd_update
from .net import PackedSupernet, PackingError, pack, unpack

PACKED_METHODS = ("darts", "darts-2nd", "maxw", "sdarts-rs", "sdarts-adv", "darts-es",
                  "rdarts-l2")
"""Methods whose step runs packed (their exact classes; a subclass may change the step)."""

REFUSED = {
    "rdarts-dp": "drop-path draws per example in one seed's order of torch's RNG",
    "msr": "its spectrally normalised convolutions are parametrized modules",
    "random-ws": "each seed samples its own path through an edge forward",
}
"""Why each registered method that does not pack refuses (shown by the error)."""


def _exact(method: Method) -> bool:
    from ..methods import method_class

    return type(method) is method_class(method.name)


def check_packable(method: Method) -> None:
    """Raise :class:`PackingError` unless ``method``'s step has a packed form here."""
    if method.name in PACKED_METHODS and _exact(method):
        return
    why = REFUSED.get(method.name, "its step has no packed form")
    raise PackingError(f"method '{method.name}' cannot run packed: {why}; packable methods: "
                       f"{', '.join(PACKED_METHODS)}. Run its seeds separately (no --seeds "
                       f"/ --pack)")


def _optimizer_like(opt: torch.optim.Optimizer, params: list[Tensor]) -> torch.optim.Optimizer:
    """A new optimizer of ``opt``'s class and hyperparameters over ``params``."""
    group = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    return type(opt)(params, **group)


def pack_optimizer_state(packed: torch.optim.Optimizer, packed_params: list[Tensor],
                         opts: Sequence[torch.optim.Optimizer],
                         seed_params: Sequence[list[Tensor]], stack: bool = False) -> None:
    """Give ``packed`` the K optimizers' states: tensors shaped like their parameter packed
    (concatenated, or ``stack``ed), step counts checked equal and taken over."""
    for j, p in enumerate(packed_params):
        states = [opt.state.get(ps[j], {}) for opt, ps in zip(opts, seed_params)]
        keys = set(states[0])
        if any(set(s) != keys for s in states[1:]):
            raise PackingError("the seeds' optimizer states differ in kind (resumed from "
                               "different points?); run them separately")
        new: dict[str, Any] = {}
        for key in keys:
            vals = [s[key] for s in states]
            if torch.is_tensor(vals[0]) and vals[0].shape == seed_params[0][j].shape:
                t = torch.stack([v.detach() for v in vals]) if stack else pack(vals)
                new[key] = t.clone().contiguous(memory_format=_format_of(p))
            else:
                if any(not torch.equal(torch.as_tensor(v), torch.as_tensor(vals[0]))
                       for v in vals[1:]):
                    raise PackingError(f"the seeds' optimizers are at different '{key}' "
                                       f"({[float(v) for v in vals]}); run them separately")
                new[key] = vals[0].clone() if torch.is_tensor(vals[0]) else vals[0]
        if new:
            packed.state[p] = new


def unpack_optimizer_state(packed: torch.optim.Optimizer, packed_params: list[Tensor],
                           opts: Sequence[torch.optim.Optimizer],
                           seed_params: Sequence[list[Tensor]], stack: bool = False) -> None:
    """Write each seed's slice of ``packed``'s state into its own optimizer."""
    k = len(opts)
    for j, p in enumerate(packed_params):
        state = packed.state.get(p)
        if not state:
            continue
        for i, (opt, ps) in enumerate(zip(opts, seed_params)):
            own: dict[str, Any] = {}
            for key, v in state.items():
                if torch.is_tensor(v) and v.shape == p.shape:
                    part = v[i] if stack else unpack(v, k)[i]
                    own[key] = part.clone().contiguous(memory_format=_format_of(ps[j]))
                else:
                    own[key] = v.clone() if torch.is_tensor(v) else v
            opt.state[ps[j]] = own


def _format_of(t: Tensor) -> torch.memory_format:
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
            and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def clip_per_seed(params: list[Tensor], k: int, max_norm: float) -> Tensor:
    """``clip_grad_norm_`` of each seed's slices of ``params`` separately (the norm of the
    per-tensor norms, coefficient ``max_norm / (norm + 1e-6)`` clamped to 1, as torch's);
    returns the K total norms. No host sync."""
    grads = [p.grad.unflatten(0, (k, -1)) for p in params if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g, 2, dim=tuple(range(1, g.dim())))
                         for g in grads])  # (P, K)
    total = torch.linalg.vector_norm(norms, 2, dim=0)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:  # views of the packed gradients: seed i is slice i of dim 0
        g.mul_(coef.to(g.dtype).view(k, *([1] * (g.dim() - 1))))
    return total


class PackedGradientStep:
    """DARTS's first-order step (alpha step on search-val, then w step on search-train) for
    K seeds at once, mixing through the methods' own ``mixing`` (softmax, Max-W)."""

    def __init__(self, methods: Sequence[GradientMethod], net: PackedSupernet):
        for m in methods:
            check_packable(m)
        self.methods = list(methods)
        self.net = net
        self.k = k = len(methods)
        m0 = methods[0]
        self.mixing = m0.mixing
        self.cfg = m0.cfg
        self.autocast = m0.autocast
        keys = list(m0.alphas)
        self.alphas: ArchWeights = {
            key: torch.stack([m.alphas[key].detach() for m in methods]).clone().requires_grad_()
            for key in keys}
        self.w_params = net.weights()
        self.w_opt = _optimizer_like(m0.w_opt, self.w_params)
        for m in methods[1:]:
            if m.lr != m0.lr:
                raise PackingError(f"the seeds are at different learning rates ({m.lr} vs "
                                   f"{m0.lr}); run them separately")
        pack_optimizer_state(self.w_opt, self.w_params, [m.w_opt for m in methods],
                             [m.w_params for m in methods])
        self.alpha_opt = _optimizer_like(m0.alpha_opt, list(self.alphas.values()))
        pack_optimizer_state(self.alpha_opt, list(self.alphas.values()),
                             [m.alpha_opt for m in methods],
                             [list(m.alphas.values()) for m in methods], stack=True)
        self.k = k

    # ------------------------------------------------------------------ pieces
    def losses(self, x: Tensor, y: Tensor, weights: ArchWeights,
               params: dict[str, Tensor] | None = None,
               buffers: dict[str, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Per-seed mean cross-entropies ``(K,)`` and the logits ``(K, N, classes)``
        (``params``/``buffers``: see :meth:`PackedSupernet.forward`)."""
        with self.autocast():
            logits = self.net(x, weights, params, buffers)
        if logits.dtype in (torch.bfloat16, torch.float16):
            logits = logits.float()
        k, n, c = logits.shape
        ce = F.cross_entropy(logits.reshape(k * n, c), y.reshape(k * n), reduction="none")
        return ce.view(k, n).mean(1), logits

    def alpha_grads(self, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor]
                    ) -> tuple[list[Tensor], Tensor]:
        """First order: every seed's d L_val / d alpha at its current weights (packed
        batches), and the per-seed validation losses ``(K,)``."""
        val_losses, _ = self.losses(*val, self.mixing(self.alphas))
        grads = torch.autograd.grad(val_losses.sum(), list(self.alphas.values()),
                                    materialize_grads=True)
        return list(grads), val_losses.detach()

    def w_step_weights(self, clean: ArchWeights, generators: Sequence[torch.Generator] | None,
                       batch: tuple[Tensor, Tensor]) -> ArchWeights:
        """The mixing weights ``(K, edges, ops)`` of the w step, given the clean ones (no
        grad), each seed's stream of torch's global RNG and the packed training batch."""
        return clean

    def step(self, train: Sequence[Batch], val: Sequence[Batch],
             generators: Sequence[torch.Generator] | None = None) -> dict[str, Tensor]:
        """One step of every seed on its own batches; per-seed sums ``(K,)`` of what
        ``Method.step`` returns (``train_loss``, ``train_correct``, ``train_count``,
        ``alpha_val_loss``). ``generators``: one per seed, standing for the torch global RNG
        its separate run would draw from (seeded as the runner seeds it; methods that draw
        nothing in a step ignore them)."""
        net = self.net
        for m, b in zip(self.methods, val):
            m._last_val_batch = b  # each seed's lambda_max at the epoch's end reads its own
        xv, yv = net.pack_input([b[0] for b in val]), torch.stack([b[1] for b in val])
        xt, yt = net.pack_input([b[0] for b in train]), torch.stack([b[1] for b in train])
        # alpha step: each seed's gradient is the gradient of the sum in its slice
        grads, val_losses = self.alpha_grads((xt, yt), (xv, yv))
        for a, g in zip(self.alphas.values(), grads):
            a.grad = g
        self.alpha_opt.step()
        # w step
        with torch.no_grad():
            clean = {key: v.detach() for key, v in self.mixing(self.alphas).items()}
            weights = self.w_step_weights(clean, generators, (xt, yt))
        self.w_opt.zero_grad(set_to_none=True)
        losses, logits = self.losses(xt, yt, weights)
        losses.sum().backward()
        clip_per_seed(self.w_params, self.k, self.cfg.grad_clip)
        self.w_opt.step()
        n = torch.full((self.k,), float(yt.shape[1]), device=yt.device)
        return {"train_loss": losses.detach() * n,
                "train_correct": (logits.detach().argmax(2) == yt).sum(1).to(n.dtype),
                "train_count": n, "alpha_val_loss": val_losses.detach() * n}

    def unpack_into(self) -> None:
        """Write every seed's weights, buffers, alphas and optimizer states back into its own
        supernet and method (the state separate runs would hold now)."""
        ms = self.methods
        self.net.unpack_into([m.supernet for m in ms])
        with torch.no_grad():
            for i, m in enumerate(ms):
                for key, a in self.alphas.items():
                    m.alphas[key].copy_(a[i])
        unpack_optimizer_state(self.w_opt, self.w_params, [m.w_opt for m in ms],
                               [m.w_params for m in ms])
        unpack_optimizer_state(self.alpha_opt, list(self.alphas.values()),
                               [m.alpha_opt for m in ms],
                               [list(m.alphas.values()) for m in ms], stack=True)


class PackedSdartsRS(PackedGradientStep):
    """SDARTS-RS: each seed's w step mixes with clip(softmax(alpha) + U(-eps, eps)), its noise
    drawn from its own generator in the order its separate run draws it (cell types in
    order, one ``rand_like`` each)."""

    def w_step_weights(self, clean: ArchWeights, generators: Sequence[torch.Generator] | None,
                       batch: tuple[Tensor, Tensor]) -> ArchWeights:
        eps = self.methods[0].eps  # type: ignore[attr-defined]
        return self.random_perturbation(clean, generators, eps)

    def random_perturbation(self, clean: ArchWeights,
                            generators: Sequence[torch.Generator] | None,
                            eps: float) -> ArchWeights:
        """:func:`~nasbench_eval.methods.sdarts.random_perturbation` of every seed, each
        seed's noise from its own generator (every cell type in order, as its run draws)."""
        if generators is None or len(generators) != self.k:
            raise PackingError(f"method '{self.methods[0].name}' needs one random generator "
                               f"per packed seed")
        per_seed = [{key: torch.rand(v.shape[1:], generator=g, dtype=v.dtype, device=v.device)
                     for key, v in clean.items()} for g in generators]
        return {key: clip_to_simplex(v + (2.0 * torch.stack([d[key] for d in per_seed]) - 1.0)
                                     * eps)
                for key, v in clean.items()}


class PackedSdartsADV(PackedSdartsRS):
    """SDARTS-ADV: each seed's PGD attack on its own training batch (eval-mode BN), from its
    own random start; the sign steps and the projection are elementwise and row-wise, so the
    seeds' attacks are independent, and each seed keeps its attack or reverts to the clean
    weights by its own losses."""

    def w_step_weights(self, clean: ArchWeights, generators: Sequence[torch.Generator] | None,
                       batch: tuple[Tensor, Tensor]) -> ArchWeights:
        m0 = self.methods[0]
        eps, steps = m0.eps, m0.pgd_steps  # type: ignore[attr-defined]
        size = m0.pgd_step_size  # type: ignore[attr-defined]
        step = 2.0 * eps / steps if size is None else float(size)
        x, y = batch
        keys = list(clean)
        net = self.net
        was_training = net.training
        net.eval()
        try:
            w = self.random_perturbation(clean, generators, eps)
            for _ in range(steps):
                w_req = [w[key].clone().requires_grad_() for key in keys]
                with torch.enable_grad():
                    loss = self.losses(x, y, dict(zip(keys, w_req)))[0].sum()
                    grads = torch.autograd.grad(loss, w_req, materialize_grads=True)
                w = {key: pgd_update(wk.detach(), g, clean[key], eps, step)[1]
                     for key, wk, g in zip(keys, w_req, grads)}
            keep = self.losses(x, y, w)[0] >= self.losses(x, y, clean)[0]  # (K,), per seed
            return {key: torch.where(keep.view(-1, 1, 1), w[key], clean[key]) for key in keys}
        finally:
            net.train(was_training)


def _per_seed(v: Tensor, t: Tensor) -> Tensor:
    """``v`` (K,) shaped to scale the K seed slices of ``t`` unflattened to (K, -1, ...)."""
    return v.to(t.dtype).view(-1, *([1] * t.dim()))


def unrolled_alpha_grads_packed(train_loss: Any, val_loss: Any, w: list[Tensor],
                                alphas: list[Tensor], xi: float, momentum: float,
                                momentum_bufs: list[Tensor | None], weight_decay: float,
                                r: float, k: int) -> tuple[list[Tensor], Tensor]:
    """:func:`nasbench_eval.methods.darts.unrolled_alpha_grads` of K packed seeds: the losses
    return ``(K,)`` per-seed values, the weights are packed (seed = slice of dim 0), the
    alphas stacked ``(K, ...)``. The virtual step is elementwise; what is per seed is the
    finite-difference radius, ``r / ||dL_val/dw'||`` with each seed's own norm."""
    w = [p.detach() for p in w]
    alphas_d = [a.detach() for a in alphas]
    w_req = [p.clone().requires_grad_() for p in w]
    g_train = torch.autograd.grad(train_loss(w_req, alphas_d).sum(), w_req,
                                  materialize_grads=True)
    w_virtual = []
    for p, g, buf in zip(w, g_train, momentum_bufs):
        d = g + weight_decay * p
        if buf is not None:
            d = d + momentum * buf
        w_virtual.append((p - xi * d).requires_grad_())
    a_req = [a.clone().requires_grad_() for a in alphas_d]
    loss_val = val_loss(w_virtual, a_req)
    grads = torch.autograd.grad(loss_val.sum(), a_req + w_virtual, materialize_grads=True)
    d_alpha, d_w = list(grads[: len(a_req)]), list(grads[len(a_req):])
    sq = sum((g.unflatten(0, (k, -1)) ** 2).flatten(1).sum(1) for g in d_w)
    eps = r / torch.sqrt(sq).clamp_min(1e-12)  # (K,): each seed's own radius
    hvp_terms = []
    for sign in (1.0, -1.0):
        w_shift = [(p.unflatten(0, (k, -1)) + _per_seed(sign * eps, p) * g.unflatten(0, (k, -1))
                    ).flatten(0, 1) for p, g in zip(w, d_w)]
        a_req = [a.clone().requires_grad_() for a in alphas_d]
        hvp_terms.append(torch.autograd.grad(train_loss(w_shift, a_req).sum(), a_req,
                                             materialize_grads=True))
    out = [da - xi * (gp - gn) / (2.0 * eps.to(da.dtype).view(-1, *([1] * (da.dim() - 1))))
           for da, gp, gn in zip(d_alpha, hvp_terms[0], hvp_terms[1])]
    return out, loss_val.detach()


class PackedDarts2nd(PackedGradientStep):
    """Second-order DARTS: the unrolled alpha gradient of every seed, with its own
    finite-difference radius; the virtual forwards use cloned BN buffers, as the method's."""

    def alpha_grads(self, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor]
                    ) -> tuple[list[Tensor], Tensor]:
        net = self.net
        names = [n for n, p in net.params.items() if p.requires_grad]
        buffers = {n: b.clone() for n, b in net.buffers.items()}
        keys = list(self.alphas)

        def make_loss(batch: tuple[Tensor, Tensor]) -> Any:
            def loss(w: list[Tensor], a: list[Tensor]) -> Tensor:
                return self.losses(*batch, self.mixing(dict(zip(keys, a))),
                                   dict(zip(names, w)), buffers)[0]
            return loss

        bufs = [self.w_opt.state.get(p, {}).get("momentum_buffer") for p in self.w_params]
        return unrolled_alpha_grads_packed(
            make_loss(train), make_loss(val), self.w_params, list(self.alphas.values()),
            xi=self.w_opt.param_groups[0]["lr"], momentum=self.cfg.w_momentum,
            momentum_bufs=bufs, weight_decay=self.cfg.w_weight_decay,
            r=self.methods[0].opts["hvp_r"], k=self.k)


_STEPS: dict[str, type[PackedGradientStep]] = {
    "darts": PackedGradientStep, "darts-2nd": PackedDarts2nd, "maxw": PackedGradientStep,
    "sdarts-rs": PackedSdartsRS,
    "sdarts-adv": PackedSdartsADV}


def packed_step_for(methods: Sequence[Method], net: PackedSupernet) -> PackedGradientStep:
    """The packed step of ``methods`` (one per seed, the same method and settings)."""
    names = {m.name for m in methods}
    if len(names) != 1:
        raise PackingError(f"packed seeds must share one method, got {', '.join(sorted(names))}")
    for m in methods:
        check_packable(m)
    m0 = methods[0]
    if isinstance(m0, RobustDartsBase):  # darts-es, rdarts-l2: first or second order
        cls = PackedDarts2nd if m0.darts_order == 2 else PackedGradientStep
    else:
        cls = _STEPS[m0.name]
    return cls(methods, net)  # type: ignore[arg-type]
