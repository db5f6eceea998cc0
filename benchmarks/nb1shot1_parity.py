"""GDAS and PC-DARTS on NAS-Bench-1Shot1 next to the benchmark's own code (automl/nasbench-1shot1).

Their ``optimizers/gdas`` and ``optimizers/pc_darts`` define how the two methods run on these
spaces; this module imports their modules from a checkout (never copied) and runs them next
to ours on the CPU in float64, on a tiny one-shot model (3 cells, 8 channels, 3x16x16 input)
whose state dict is mapped entry by entry (:func:`map_state`). Used by
``benchmarks/new_methods_parity.py --nb1shot1 PATH``.

Running their code needs three shims, none of which changes what their methods compute:

* their model modules import ``nasbench_analysis.search_spaces.search_space_<n>`` (which
  pulls in TensorFlow's ``nasbench`` API, matplotlib, ConfigSpace) only for a type test
  (``type(search_space) == SearchSpace1``) and ``num_intermediate_nodes``: stub modules with
  those classes stand in (:func:`their_code`);
* ``torch.Tensor.cuda`` is a no-op while their alphas are created;
* two differences of our one-shot model from theirs that predate issue 18 and concern every
  method on these spaces are neutralised so that the method-specific parts can be compared
  (each is measured first, :func:`model_deviations`): their down-sampling max-pool has
  ``padding=1`` (``nn.MaxPool2d(2, 2, padding=1)``: 32 -> 17 -> 9 on CIFAR; ours 32 -> 16 ->
  8, as NAS-Bench-101's 'same' pooling), replaced by ``padding=0`` through their module's
  ``nn`` name; and their BNs in cells (projections, conv ops) are affine and their head BN
  is not (ours the other way round): the affine parameters are set to 1 and 0, which is the
  identity in train mode.
"""
from __future__ import annotations

import re
import sys
import types
from argparse import Namespace
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nasbench_eval.config import RunConfig
from nasbench_eval.methods import create_method
from nasbench_eval.resolve import resolve_config
from nasbench_eval.spaces import load_space

C, LAYERS, SIZE, CLASSES = 8, 3, 16, 10
SPACES = {1: "nb1shot1-1", 2: "nb1shot1-2", 3: "nb1shot1-3"}
THEIR_ROOTS = ("optimizers", "nasbench_analysis")


class _PoolPadding:
    """Their model modules' ``nn``: torch.nn, except that the 2x2 down-sampling max-pool gets
    ``padding`` = :attr:`pad` (theirs: 1; 0 to compare with ours)."""

    pad = 1

    def __getattr__(self, name: str) -> Any:
        return getattr(nn, name)

    def MaxPool2d(self, kernel_size, stride=None, padding=0, **kw):  # noqa: N802
        if kernel_size == 2:
            padding = self.pad
        return nn.MaxPool2d(kernel_size, stride, padding, **kw)


POOL = _PoolPadding()


@contextmanager
def their_code(tree: Path):
    """Their packages importable from ``tree``, the search-space classes stubbed, ``.cuda()`` a
    no-op and their model modules' ``nn`` the pooling switch; all undone afterwards."""
    saved_path, saved_cuda = list(sys.path), torch.Tensor.cuda
    sys.path.insert(0, str(tree))
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    for n, steps in ((1, 4), (2, 4), (3, 5)):
        mod = types.ModuleType(f"nasbench_analysis.search_spaces.search_space_{n}")
        cls = type(f"SearchSpace{n}", (), {"num_intermediate_nodes": steps})
        setattr(mod, cls.__name__, cls)
        sys.modules[mod.__name__] = mod
    try:
        import optimizers.darts.model_search as darts_ms
        import optimizers.gdas.model_search as gdas_ms
        darts_ms.nn = gdas_ms.nn = POOL
        yield
    finally:
        sys.path[:] = saved_path
        torch.Tensor.cuda = saved_cuda  # type: ignore[method-assign]
        for name in list(sys.modules):
            if name.split(".")[0] in THEIR_ROOTS:
                del sys.modules[name]


def search_space(n: int):
    return getattr(sys.modules[f"nasbench_analysis.search_spaces.search_space_{n}"],
                   f"SearchSpace{n}")()


# ----------------------------------------------------------------------------- state

def our_key(their_key: str, steps: int) -> str | None:
    """Our state-dict name of one of theirs (None: an entry we do not have)."""
    rules = [
        (r"^stem\.op\.(.*)$", r"stem.op.\1"),
        (r"^cells\.(\d+)\._choice_blocks\.(\d+)\.mixed_op\._ops\.(\d+)\.op\.(.*)$",
         r"cells.\1.choice.\2.ops.\3.\4"),
        (r"^postprocess\.op\.(.*)$", r"head.\1"),
        (r"^classifier\.(.*)$", r"classifier.\1"),
    ]
    m = re.match(r"^cells\.(\d+)\._input_projections\.(\d+)\.op\.(.*)$", their_key)
    if m:
        cell, idx, rest = m.groups()
        if int(idx) == steps:
            return f"cells.{cell}.out_proj.op.{rest}"
        return f"cells.{cell}.proj.{idx}.op.{rest}"
    for pattern, repl in rules:
        if re.match(pattern, their_key):
            return re.sub(pattern, repl, their_key)
    return None


def map_state(theirs: nn.Module, ours: nn.Module, steps: int) -> tuple[dict[str, str], int]:
    """Copy our state into theirs; their extra affine BN parameters (cells) become 1 and 0,
    our extra ones (head BN) too. Returns {their parameter name: ours} for the gradient
    comparison and the number of entries mapped."""
    mine = ours.state_dict()
    new, names = {}, {}
    our_params = dict(ours.named_parameters())
    for k, v in theirs.state_dict().items():
        o = our_key(k, steps)
        if o in mine:
            if mine[o].shape != v.shape:
                raise SystemExit(f"shape mismatch {k} {tuple(v.shape)} vs {o} "
                                 f"{tuple(mine[o].shape)}")
            new[k] = mine[o].clone()
            if o in our_params:
                names[k] = o
        elif k.endswith(".weight") and v.dim() == 1:  # an affine BN scale we lack
            new[k] = torch.ones_like(v)
        elif k.endswith(".bias") and v.dim() == 1:
            new[k] = torch.zeros_like(v)
        else:
            raise SystemExit(f"their state entry {k} has no counterpart ({o})")
    missing = set(mine) - {our_key(k, steps) for k in new}
    with torch.no_grad():
        for o in missing:  # our head BN's affine parameters: the identity
            if not re.match(r"^head\.\d+\.(weight|bias)$", o):
                raise SystemExit(f"our state entry {o} has no counterpart")
            our_params[o].fill_(1.0 if o.endswith("weight") else 0.0)
    theirs.load_state_dict(new)
    return names, len(new)


def our_method(name: str, space: str, **options):
    cfg = resolve_config(RunConfig(method=name, space=space, layers=LAYERS, channels=C,
                                   epochs=4, method_options=options))
    torch.manual_seed(0)
    net = load_space(space).build_supernet(C, LAYERS, CLASSES, 3)
    m = create_method(name)
    m.setup(net, load_space(space), cfg, steps_per_epoch=2)
    return m, net, cfg


def batches():
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(4, 3, SIZE, SIZE, generator=g, dtype=torch.float64),
             torch.randint(0, CLASSES, (4,), generator=g)) for _ in range(2)]


def maxdiff(a, b) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def set_their_alphas(theirs, alphas: dict[str, Tensor]) -> list[Tensor]:
    """Their arch parameters (ops, output, inputs in order) as copies of ours."""
    keys = list(alphas)
    new = [alphas[k].detach().clone().requires_grad_() for k in keys]
    theirs.alphas_mixed_op, theirs.alphas_output = new[0], new[1]
    theirs.alphas_inputs = new[2:]
    theirs._arch_parameters = new
    return new


def random_alphas(m, scale: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for a in m.alphas.values():
            a.copy_(scale * torch.randn(a.shape, generator=g, dtype=a.dtype))


def their_step(theirs, architect, w_opt, train, val, lr: float, grad_clip: float) -> float:
    """One step of their search loop (``train_search.py``): the architect's first-order step
    on the validation batch, then SGD on the training batch with the gradient clipped.
    Returns the weight gradient's norm before clipping."""
    architect.step(train[0], train[1], val[0], val[1], lr, w_opt, unrolled=False)
    w_opt.zero_grad()
    loss = nn.functional.cross_entropy(theirs(train[0]), train[1])
    loss.backward()
    norm = nn.utils.clip_grad_norm_(theirs.parameters(), grad_clip)
    w_opt.step()
    return float(norm)


def their_optimisers(theirs, cfg, architect_cls, lr: float):
    args = Namespace(momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay,
                     arch_learning_rate=cfg.alpha_lr, arch_weight_decay=cfg.alpha_weight_decay,
                     grad_clip=cfg.grad_clip)
    architect = architect_cls(theirs, args)
    w_opt = torch.optim.SGD(theirs.parameters(), lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay)
    return architect, w_opt


def after_step_rows(m, names, theirs, arch_t, before: list[Tensor], norm: float) -> list[str]:
    """Alphas and mapped weights after one step of each loop (``before``: the alphas before
    it, to show the step's own size; ``norm``: their weight gradient's norm before
    clipping)."""
    ours_p = dict(m.supernet.named_parameters())
    w_t = [p for k, p in theirs.named_parameters() if k in names]
    w_o = [ours_p[names[k]] for k, _ in theirs.named_parameters() if k in names]
    moved = maxdiff(list(m.alphas.values()), before)
    return [f"| alphas after one step (alpha step, then w step; the step moved them by up "
            f"to {moved:.1e}) | {maxdiff(list(m.alphas.values()), arch_t):.2e} |",
            f"| weights after that step ({len(w_o)} mapped tensors; their w gradient norm "
            f"{norm:.2f}, clipped at {m.cfg.grad_clip:g}) | {maxdiff(w_o, w_t):.2e} |"]


def grad_rows(l_o, l_t, logits_o, logits_t, m, net, names, theirs, arch_t) -> list[str]:
    ours_p = dict(net.named_parameters())
    their_named = [(k, p) for k, p in theirs.named_parameters() if k in names]
    g_o = torch.autograd.grad(l_o, list(m.alphas.values())
                              + [ours_p[names[k]] for k, _ in their_named], allow_unused=True)
    g_t = torch.autograd.grad(l_t, arch_t + [p for _, p in their_named], allow_unused=True)
    g_o = [torch.zeros(1) if g is None else g for g in g_o]
    g_t = [torch.zeros(1) if g is None else g for g in g_t]
    n = len(arch_t)
    return [f"| logits | {maxdiff([logits_o], [logits_t]):.2e} |",
            f"| loss | {abs(l_o.item() - l_t.item()):.2e} |",
            f"| d loss / d alpha ({n} tensors: ops, output, parents) | "
            f"{maxdiff(g_o[:n], g_t[:n]):.2e} |",
            f"| d loss / d weights ({len(g_o) - n} mapped tensors) | "
            f"{maxdiff(g_o[n:], g_t[n:]):.2e} |"]


# ----------------------------------------------------------------------------- DARTS (model)

def model_deviations(n: int) -> list[str]:
    """Their DARTS one-shot network vs ours with softmax weights: the model itself, first
    with their pooling (the pre-existing deviation's size), then with it neutralised."""
    import optimizers.darts.model_search as ms
    space = SPACES[n]
    m, net, _ = our_method("darts", space)
    torch.manual_seed(0)
    theirs = ms.Network(C, CLASSES, LAYERS, nn.CrossEntropyLoss(), True, search_space(n),
                        steps=search_space(n).num_intermediate_nodes)
    names, count = map_state(theirs, net, search_space(n).num_intermediate_nodes)
    random_alphas(m, 0.5, 5)
    arch_t = set_their_alphas(theirs, m.alphas)
    (x, y), _ = batches()
    net.train(), theirs.train()
    POOL.pad = 1
    with torch.no_grad():
        padded = theirs(x)
    POOL.pad = 0
    l_o, logits_o = m.loss((x, y), m.sample(m.alphas))
    logits_t = theirs(x)
    l_t = nn.functional.cross_entropy(logits_t, y)
    rel = float((padded - logits_o).norm() / logits_o.norm().detach())
    return [f"### nb1shot1-{n}: the one-shot model (DARTS, softmax weights)", "",
            f"State entries mapped: {count}. Train mode, batch 4 of 3x{SIZE}x{SIZE}, float64.",
            "", "| quantity | max abs difference |", "|---|---|",
            f"| logits with their pooling (padding=1; relative L2 difference {rel:.2f}) | "
            f"{maxdiff([logits_o], [padded]):.2e} |",
            *grad_rows(l_o, l_t, logits_o, logits_t, m, net, names, theirs, arch_t), ""]


# ----------------------------------------------------------------------------- PC-DARTS

def pc_darts(n: int) -> list[str]:
    import optimizers.darts.architect as arch
    import optimizers.pc_darts.model_search as ms
    space = SPACES[n]
    m, net, cfg = our_method("pc-darts", space)
    steps = search_space(n).num_intermediate_nodes
    torch.manual_seed(0)
    theirs = ms.PCDARTSNetwork(C, CLASSES, LAYERS, nn.CrossEntropyLoss(), True,
                               search_space(n), steps=steps)
    names, count = map_state(theirs, net, steps)
    random_alphas(m, 0.5, 5)
    with torch.no_grad():  # edge normalisation on: betas far from 0 change nothing here
        for b in m.betas.values():
            b.copy_(2.0 * torch.randn(b.shape, generator=torch.Generator().manual_seed(6)))
    arch_t = set_their_alphas(theirs, m.alphas)
    train, val = batches()
    net.train(), theirs.train()
    l_o, logits_o = m.loss(train, m.normalise(m.sample(m.alphas)))
    logits_t = theirs(train[0])
    l_t = nn.functional.cross_entropy(logits_t, train[1])
    rows = grad_rows(l_o, l_t, logits_o, logits_t, m, net, names, theirs, arch_t)
    # one whole step of each search loop from this state (their architect: Adam, first order)
    lr = m.lr
    architect, w_opt = their_optimisers(theirs, cfg, arch.Architect, lr)
    before = [a.detach().clone() for a in m.alphas.values()]
    m.step(train, val)
    norm = their_step(theirs, architect, w_opt, train, val, lr, cfg.grad_clip)
    rows += after_step_rows(m, names, theirs, arch_t, before, norm)
    same = 0
    for t in range(100):
        random_alphas(m, 1.0 if t % 2 else 1e-3, 100 + t)
        same += m.derive() == m.space.derive({k: torch.softmax(a.detach(), -1)
                                              for k, a in m.alphas.items()})
    return [f"### nb1shot1-{n}: PC-DARTS (K = 4)", "",
            f"State entries mapped: {count}. Betas N(0, 4) (edge normalisation on).", "",
            "| quantity | max abs difference |", "|---|---|", *rows, "",
            f"Derived cell with edge normalisation (random betas) vs the plain NB-1Shot1 rule "
            f"on softmax(alpha), which their PC-DARTS uses (it has no beta): the same on "
            f"{same} of 100 random states.", ""]


# ----------------------------------------------------------------------------- GDAS

class SharedGumbel:
    """Their model modules' ``F`` for GDAS: ``gumbel_softmax`` is torch's own, but the RNG is
    set, per architecture tensor, to the state our sampler drew that tensor's noise from, so
    every cell of their network gets our (shared) sample. ``states`` is a list of forwards,
    each {id(their tensor): RNG state}; every call consumes from the current forward, and a
    forward ends after ``calls_per_forward`` calls."""

    def __init__(self, calls_per_forward: int):
        self.per_forward = calls_per_forward
        self.states: list[dict[int, Tensor]] = []
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(nn.functional, name)

    def gumbel_softmax(self, logits, tau=1.0, hard=False, dim=-1):
        torch.set_rng_state(self.states[self.calls // self.per_forward][id(logits)])
        self.calls += 1
        return nn.functional.gumbel_softmax(logits, tau=tau, hard=hard, dim=dim)


def rng_states(alphas: dict[str, Tensor], arch_t: list[Tensor]) -> dict[int, Tensor]:
    """From the current RNG state: the state before each tensor's noise as our sampler draws
    it (one ``exponential_`` per tensor, keys in order), keyed by their tensor's id; the RNG is
    left where our sampler leaves it."""
    out = {}
    for a, t in zip(alphas.values(), arch_t):
        out[id(t)] = torch.get_rng_state()
        torch.empty_like(a).exponential_()
    return out


def gdas(n: int) -> list[str]:
    import optimizers.gdas.architect as arch
    import optimizers.gdas.model_search as ms
    space = SPACES[n]
    tau = 3.0
    m, net, cfg = our_method("gdas", space)
    steps = search_space(n).num_intermediate_nodes
    torch.manual_seed(0)
    theirs = ms.GDASNetwork(tau, C, CLASSES, LAYERS, nn.CrossEntropyLoss(), True,
                            search_space(n), steps=steps)
    names, count = map_state(theirs, net, steps)
    random_alphas(m, 0.5, 5)
    arch_t = set_their_alphas(theirs, m.alphas)
    m.sampler.tau = tau
    train, val = batches()
    net.train(), theirs.train()
    # the samples themselves: their calls of torch's gumbel_softmax vs our sampler
    torch.manual_seed(13)
    w_o = m.sample(m.alphas)
    torch.manual_seed(13)
    w_t = [nn.functional.gumbel_softmax(t, tau=tau, hard=(i == 0), dim=-1)
           for i, t in enumerate(arch_t)]
    rows = [f"| sample from one RNG state (ops hard, parents/output relaxed; tau {tau}) | "
            f"{maxdiff(list(w_o.values()), w_t):.2e} |"]
    # the network on one shared sample (their cells each draw their own; see below)
    shared = SharedGumbel(len(arch_t) * LAYERS)
    saved_f = ms.F
    ms.F = shared
    try:
        torch.manual_seed(21)
        shared.states = [rng_states(m.alphas, arch_t)]
        torch.manual_seed(21)
        with m.training_edges():
            l_o, logits_o = m.loss(train, m.sample(m.alphas))
        logits_t = theirs(train[0])
        l_t = nn.functional.cross_entropy(logits_t, train[1])
        rows += grad_rows(l_o, l_t, logits_o, logits_t, m, net, names, theirs, arch_t)
        # one whole step: our alpha sample and w sample, fed to their two forwards
        lr = m.lr
        architect, w_opt = their_optimisers(theirs, cfg, arch.ArchitectGDAS, lr)
        torch.manual_seed(22)
        shared.states, shared.calls = [rng_states(m.alphas, arch_t),
                                       rng_states(m.alphas, arch_t)], 0
        before = [a.detach().clone() for a in m.alphas.values()]
        torch.manual_seed(22)
        m.step(train, val)
        norm = their_step(theirs, architect, w_opt, train, val, lr, cfg.grad_clip)
        rows += after_step_rows(m, names, theirs, arch_t, before, norm)
    finally:
        ms.F = saved_f
    return [f"### nb1shot1-{n}: GDAS", "",
            f"State entries mapped: {count}. Train mode, float64.", "",
            "| quantity | max abs difference |", "|---|---|", *rows, "",
            *per_cell_sampling(n, m, theirs, arch_t, train, tau), ""]


def per_cell_sampling(n: int, m, theirs, arch_t, batch, tau: float,
                      draws: int = 256) -> list[str]:
    """The deviation our interface cannot express: their network draws a fresh sample in
    every cell; ours draws one per forward, shared by all cells (architecture weights are one
    forward argument). Measured on the alpha gradient: mean and spread over ``draws`` samples
    each way, from the same state."""
    theirs.set_tau(tau)
    m.sampler.tau = tau
    arch = set_their_alphas(theirs, m.alphas)
    ours_g, theirs_g = [], []
    for d in range(draws):
        torch.manual_seed(1000 + d)
        with m.training_edges():
            loss, _ = m.loss(batch, m.sample(m.alphas))
        ours_g.append(torch.cat([g.flatten() for g in torch.autograd.grad(
            loss, list(m.alphas.values()))]))
        torch.manual_seed(1000 + d)
        loss_t = nn.functional.cross_entropy(theirs(batch[0]), batch[1])
        theirs_g.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss_t, arch)]))
    go, gt = torch.stack(ours_g), torch.stack(theirs_g)
    se = ((go.var(0) + gt.var(0)) / draws).sqrt()
    z = ((go.mean(0) - gt.mean(0)).abs() / se.clamp_min(1e-30))
    return [f"Per-cell samples (theirs) vs one sample shared by the {LAYERS} cells (ours), "
            f"{draws} draws each from one state, tau {tau}, {go.shape[1]} alpha coordinates: "
            f"alpha-gradient norm {float(go.norm(dim=1).mean()):.3g} (ours) vs "
            f"{float(gt.norm(dim=1).mean()):.3g} (theirs) on average; per-coordinate standard "
            f"deviation {float(go.std(0).mean()):.3g} vs {float(gt.std(0).mean()):.3g}; the "
            f"mean gradients differ by {float((go.mean(0) - gt.mean(0)).norm()):.3g} in L2 "
            f"(sampling noise alone: about {float(se.norm()):.3g}; their mean's norm "
            f"{float(gt.mean(0).norm()):.3g}; largest per-coordinate |difference| / standard "
            f"error {float(z.max()):.2f})."]


def report(tree: Path) -> list[str]:
    out = ["## NAS-Bench-1Shot1: GDAS and PC-DARTS against automl/nasbench-1shot1", ""]
    torch.set_default_dtype(torch.float64)
    with their_code(tree):
        for n in (1, 2, 3):
            out += model_deviations(n)
            out += pc_darts(n)
            out += gdas(n)
        POOL.pad = 1
    return out


__all__ = ["report"]
