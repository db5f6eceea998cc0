"""Source-fused execution of a DARTS search cell: the arithmetic of the per-edge loop in
:class:`~nasbench_eval.spaces.darts.supernet.SearchCell`, in fewer and larger kernels.

Why: at search sizes a step's time is mostly the fixed cost of ~24,000 small kernels
(docs/speed.md), not arithmetic. In a cell every state feeds up to four edges, and those
edges run the same candidates on the same input, so grouping work by (source state,
candidate) turns m edges' kernels into one:

* the ReLU that opens every convolution candidate is computed once per state and repeated
  m times (channels ordered (edge, channel));
* the m edges' depthwise convs are one depthwise conv over m*C channels, their 1x1 convs one
  grouped conv (groups = m). (A depthwise conv with channel multiplier m instead of the
  repeat avoids a copy but measured 3-6x slower in oneDNN's backward at these sizes.) The
  two cell inputs are ready together, so their convolution candidates form one group;
* m BatchNorms over C channels are one BatchNorm over m*C channels (batch statistics are per
  channel), on the concatenated running buffers, which are written back once per cell;
* a pool runs once; in training its m BatchNorms see the same input, so one BN serves them
  all and each module's running statistics move by the same batch statistics; in
  evaluation it is one multiply-add with the m modules' running statistics;
* the stride-2 skips (FactorizedReduce) of m edges are two convs with stacked weights;
* the candidates' weighted sum is one fused multiply-add per group on an (N, m, C, H, W)
  view; each edge's slice is then added to its target node.

Parameters and buffers stay where they are, in the per-edge modules: state_dict, checkpoints,
optimizers, ``torch.func.functional_call`` (second-order DARTS) and MSR's spectral
normalisation see the same tensors. The fused weights are assembled from them at every
forward by a few small differentiable cat/stack ops, so gradients reach the same leaves and
double backprop (the Hessian) works. Candidates this module does not know (noise,
sharpDARTS's blocks), candidates with hooks or parametrizations (MSR's spectral
normalisation) and BNs whose settings differ within a group run per edge through their own
modules, inside the same mixing. The plan is built at the cell's first fused forward and
rebuilt when a candidate gains or loses a hook or parametrization; a hook on a mixed edge, on
the cell's edge list, a global module hook or a method's edge forward (the supernet seam's
``set_edge_forward``) makes the cell use the per-edge loop.

The result equals the per-edge loop up to floating-point summation order
(tests/test_fused_cell.py checks outputs, gradients, Hessian-vector products and BN buffers
in float64).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils.hooks import RemovableHandle

from .dwconv import depthwise_conv2d
from .ops import DilConv, FactorizedReduce, Identity, SepConv

if TYPE_CHECKING:
    from .supernet import SearchCell


@dataclass
class _Stage:
    """One [ReLU, depthwise conv, 1x1 conv, BN] block of m edges."""

    dw: list[nn.Conv2d]
    pw: list[nn.Conv2d]
    bn: list[nn.BatchNorm2d]


@dataclass
class _Group:
    """One candidate on the m edges of a phase that have it."""

    kind: str  # "identity" | "pool" | "conv" | "reduce" | "module"
    edges: tuple[int, ...]
    cols: tuple[int, ...]
    stages: list[_Stage] = field(default_factory=list)
    pool: nn.Module | None = None
    bns: list[nn.BatchNorm2d] = field(default_factory=list)
    module: nn.Module | None = None
    modules: list[nn.Module] = field(default_factory=list)  # "reduce": the m FactorizedReduce
    inputs: tuple[tuple[int, int], ...] = ()  # "conv": (state, edges from it), in edge order
    state: int = -1  # the state the group reads (all but "conv")


@dataclass
class _Source:
    """The states whose outgoing edges run together: the two cell inputs at once, then one
    intermediate node after another."""

    states: tuple[int, ...]
    groups: list[_Group]
    index: tuple[Tensor, Tensor] | None = None  # (rows, cols) into w of every group, in order
    sizes: list[int] = field(default_factory=list)  # edges per group


_Member = tuple[int, int, nn.Module, int]
"""(edge, candidate column, module, source state) of one candidate on one edge."""


def _fusable_bn(bn: nn.Module) -> bool:
    return isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats


def _stage_of(block: nn.Sequential) -> _Stage | None:
    if (len(block) == 4 and isinstance(block[0], nn.ReLU) and isinstance(block[1], nn.Conv2d)
            and isinstance(block[2], nn.Conv2d) and _fusable_bn(block[3])
            and block[1].groups == block[1].in_channels == block[1].out_channels
            and block[1].bias is None and block[2].bias is None
            and block[2].kernel_size == (1, 1) and block[2].groups == 1):
        return _Stage([block[1]], [block[2]], [block[3]])
    return None


def _same_settings(bns: list[nn.BatchNorm2d]) -> bool:
    """Whether one BN call can stand for all m modules (mode, affine, eps, running stats)."""
    b0 = bns[0]
    return all(b.training == b0.training and b.affine == b0.affine and b.eps == b0.eps
               and b.track_running_stats == b0.track_running_stats for b in bns)


def _same_momentum(bns: list[nn.BatchNorm2d]) -> bool:
    """Whether the m modules' running statistics move alike in training (momentum None,
    BN recalibration's cumulative average, counts per module)."""
    b0 = bns[0]
    return b0.momentum is not None and all(b.momentum == b0.momentum for b in bns)


def _running_affine(bns: list[nn.BatchNorm2d], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(scale, shift) of shape (m * C,) with BN(z) = z * scale + shift for non-affine BNs that
    normalise with their running statistics; not part of the autograd graph."""
    eps = bns[0].eps
    with torch.no_grad():
        var = torch.cat([b.running_var for b in bns])
        mean = torch.cat([b.running_mean for b in bns])
        scale = (var + eps).rsqrt_()
        shift = (mean * scale).neg_()
    return scale.to(dtype), shift.to(dtype)


def _eval_bn_affine(bns: list[nn.BatchNorm2d], dtype: torch.dtype
                    ) -> tuple[Tensor, Tensor] | None:
    """(scale, shift) for folding the m BNs into the conv before them when they all
    normalise with running statistics (evaluation: SDARTS-ADV's attack, accuracy); None when
    any of them uses batch statistics or the settings differ. Not under autocast, where the
    conv's output dtype would change."""
    b0 = bns[0]
    if (b0.training or b0.affine or not b0.track_running_stats or not _same_settings(bns)
            or torch.is_autocast_enabled(b0.running_mean.device.type)):
        return None
    return _running_affine(bns, dtype)


def _hooked(m: nn.Module) -> bool:
    return bool(m._forward_pre_hooks or m._forward_hooks or m._backward_hooks
                or m._backward_pre_hooks or parametrize.is_parametrized(m))


def _plain(op: nn.Module) -> bool:
    """No hooks or parametrizations anywhere in ``op`` (e.g. MSR's spectral normalisation):
    the fused path reads weights directly, so such modules must run through their own
    forward."""
    return not any(_hooked(m) for m in op.modules())


def _global_hooks() -> bool:
    """Hooks registered for every module (``nn.modules.module.register_module_*``)."""
    mod = nn.modules.module
    return any(getattr(mod, name, None) for name in (
        "_global_forward_pre_hooks", "_global_forward_hooks", "_global_backward_hooks",
        "_global_backward_pre_hooks"))


def usable(cell: SearchCell) -> bool:
    """Whether the fused forward may replace ``cell``'s per-edge loop: no method edge forward
    (it replaces the mixture the fused path computes) and no hook that the loop would call on
    the mixed edges themselves (the candidates' hooks are handled per candidate)."""
    if cell.edge_forward is not None:
        return False
    edges = cell.edges
    return not (_global_hooks() or _hooked(edges) or any(_hooked(e) for e in edges))


def _classify(op: nn.Module) -> tuple[str, object]:
    if not _plain(op):
        return "module", op
    if isinstance(op, Identity):
        return "identity", None
    if (isinstance(op, FactorizedReduce) and _fusable_bn(op.bn) and op.conv_1.bias is None
            and op.conv_2.bias is None):
        return "reduce", op
    if (isinstance(op, nn.Sequential) and len(op) == 2
            and isinstance(op[0], (nn.MaxPool2d, nn.AvgPool2d)) and _fusable_bn(op[1])):
        return "pool", op
    blocks: list[nn.Module] = []
    if isinstance(op, SepConv):
        blocks = list(op.op)
    elif isinstance(op, DilConv):
        blocks = [op.op]
    stages = [_stage_of(b) for b in blocks if isinstance(b, nn.Sequential)]
    if blocks and len(stages) == len(blocks) and all(stages):
        return "conv", stages
    return "module", op


class CandidateWatch:
    """Whether a fused plan built from a cell's candidate modules still holds: the fused
    cells of every family run the candidates' arithmetic themselves, so a candidate that
    gains a hook or a parametrization since the plan was built must run through its own
    module instead."""

    def __init__(self, cell: nn.Module):
        self.candidates = [m for edge in cell.edges for op in edge.ops  # type: ignore[union-attr]
                           for m in op.modules()]
        self.classes = [type(m) for m in self.candidates]
        self.signature = self._hook_signature()
        self.handles = RemovableHandle.next_id

    def _hook_signature(self) -> tuple[bool, ...]:
        """Which candidates' modules have hooks or parametrizations."""
        return tuple(_hooked(m) for m in self.candidates)

    def current(self) -> bool:
        """False when a candidate gained or lost a hook or parametrization since the plan was
        built. Cheap unless a hook was registered anywhere since the last check (torch counts
        hook handles) or a module's class changed (a parametrization swaps it)."""
        if any(type(m) is not cls for m, cls in zip(self.candidates, self.classes)):
            return False
        n = RemovableHandle.next_id
        if n != self.handles:
            self.handles = n
            return self._hook_signature() == self.signature
        return True


class FusedCell:
    """The fused forward of one :class:`SearchCell` (built once, from its modules)."""

    def __init__(self, cell: SearchCell):
        self.cell = cell
        self.watch = CandidateWatch(cell)
        self.nodes = cell.nodes
        self.target: list[int] = []  # edge -> index of the state it feeds
        sources: dict[int, list[int]] = {}
        e = 0
        for n in range(cell.nodes):
            for j in range(2 + n):
                self.target.append(2 + n)
                sources.setdefault(j, []).append(e)
                e += 1
        # the two inputs are both ready when the cell starts: their convolution candidates
        # run as one group of up to 2 x 4 edges (same shapes: both preprocessed to C channels)
        phases = [(0, 1)] + [(j,) for j in sorted(sources) if j >= 2]
        self.sources = [_Source(ph, self._groups(cell, {j: sources[j] for j in ph if j in sources}))
                        for ph in phases]
        self.device: torch.device | None = None

    def current(self) -> bool:
        """Whether the plan still holds (:meth:`CandidateWatch.current`)."""
        return self.watch.current()

    @staticmethod
    def _groups(cell: SearchCell, by_state: dict[int, list[int]]) -> list[_Group]:
        """One group per candidate name; a convolution candidate spans every state of the
        phase, the others read one state each."""
        by_op: dict[str, list[_Member]] = {}
        for state, edges in by_state.items():
            for e in edges:
                edge = cell.edges[e]
                for col, op in zip(edge.columns, edge.ops):
                    by_op.setdefault(edge.op_names[col], []).append((e, col, op, state))
        groups: list[_Group] = []
        for members in by_op.values():
            classes = [_classify(op) for _, _, op, _ in members]
            widths = {info[0].dw[0].in_channels for kind, info in classes if kind == "conv"}
            if all(kind == "conv" for kind, _ in classes) and len(widths) == 1:
                groups += FusedCell._make_groups(members, classes)
                continue
            for state in by_state:
                own = [i for i, mb in enumerate(members) if mb[3] == state]
                if own:
                    groups += FusedCell._make_groups([members[i] for i in own],
                                                     [classes[i] for i in own])
        return groups

    @staticmethod
    def _make_groups(members: list[_Member], classes: list[tuple[str, Any]]) -> list[_Group]:
        """The group of ``members`` (one candidate on several edges; ``classes`` their
        :func:`_classify`), or one "module" group per edge when the candidate is not one this
        module fuses."""
        kind = classes[0][0]
        if kind == "module" or any(k != kind for k, _ in classes):
            return [_Group("module", (e,), (c,), module=op, state=st) for e, c, op, st in members]
        g = _Group(kind, tuple(e for e, _, _, _ in members), tuple(c for _, c, _, _ in members),
                   state=members[0][3])
        states = [st for _, _, _, st in members]
        g.inputs = tuple((st, states.count(st)) for st in dict.fromkeys(states))
        if kind == "pool":
            g.pool = members[0][2][0]
            g.bns = [op[1] for _, _, op, _ in members]
        elif kind == "reduce":
            g.modules = [op for _, _, op, _ in members]
        elif kind == "conv":
            per_edge = [stages for _, stages in classes]
            g.stages = [_Stage([s[i].dw[0] for s in per_edge], [s[i].pw[0] for s in per_edge],
                               [s[i].bn[0] for s in per_edge])
                        for i in range(len(per_edge[0]))]
        return [g]

    def _to(self, device: torch.device) -> None:
        for src in self.sources:  # every group's mixing weights of a phase in one gather
            rows = [e for g in src.groups for e in g.edges]
            cols = [c for g in src.groups for c in g.cols]
            src.index = (torch.tensor(rows, device=device), torch.tensor(cols, device=device))
            src.sizes = [len(g.edges) for g in src.groups]
        self.device = device

    # ------------------------------------------------------------------ kernels
    @staticmethod
    def _bn(x: Tensor, bns: list[nn.BatchNorm2d], pending: list) -> Tensor:
        b0 = bns[0]
        if len(bns) == 1:
            return b0(x)
        if (not b0.track_running_stats or not _same_settings(bns)
                or (b0.training and not _same_momentum(bns))):
            # cumulative averages (BN recalibration) count per module, and settings that
            # differ between the modules apply per module: run them one by one
            return torch.cat([b(c) for b, c in zip(bns, x.chunk(len(bns), 1))], 1)
        rm = torch.cat([b.running_mean for b in bns])
        rv = torch.cat([b.running_var for b in bns])
        weight = torch.cat([b.weight for b in bns]) if b0.affine else None
        bias = torch.cat([b.bias for b in bns]) if b0.affine else None
        momentum = b0.momentum if b0.training else 0.0  # evaluation: unused, may be None
        y = F.batch_norm(x, rm, rv, weight, bias, b0.training, momentum, b0.eps)
        if b0.training:
            pending.append((bns, rm, rv, False))
        return y

    @staticmethod
    def _pool_bn(p: Tensor, bns: list[nn.BatchNorm2d], pending: list) -> tuple[Tensor, bool]:
        """The BNs after a pool shared by m edges. In training they all normalise the same
        input with its batch statistics, so one BN over C channels serves every edge (the
        result is returned shared, with True); each module's running statistics are then
        moved by the same batch mean and variance. In evaluation each module normalises with
        its own running statistics: one multiply-add with the m modules' scales and shifts."""
        m = len(bns)
        b0 = bns[0]
        if m == 1:
            return b0(p), False
        if not _same_settings(bns):
            return FusedCell._bn(repeat_channels([(p, m)]), bns, pending), False
        if not b0.training and not b0.affine:
            # y_t = (p - mean_t) / sqrt(var_t + eps): one multiply-add into (N, m, C, H, W)
            # (autocast: in the pool output's dtype, as BN returns)
            n, c, h, w = p.shape
            scale, shift = (t.view(m, c) for t in _running_affine(bns, p.dtype))
            if _channels_last(p):  # build the result in NHWC order, as the rest of the cell
                y = torch.addcmul(shift, p.permute(0, 2, 3, 1).unsqueeze(3), scale)
                return y.reshape(n, h, w, m * c).permute(0, 3, 1, 2), False
            y = torch.addcmul(shift.view(1, m, c, 1, 1), p.unsqueeze(1), scale.view(1, m, c, 1, 1))
            return y.flatten(1, 2), False
        if not b0.training or b0.affine or not _same_momentum(bns):
            return FusedCell._bn(repeat_channels([(p, m)]), bns, pending), False
        y = F.batch_norm(p, None, None, None, None, True, 0.0, b0.eps)
        with torch.no_grad():
            var, mean = torch.var_mean(p.to(b0.running_mean.dtype), (0, 2, 3), correction=1)
        pending.append((bns, mean, var, True))
        return y, True

    def _reduce(self, g: _Group, r: Tensor, pending: list) -> Tensor:
        """m FactorizedReduce ops on the same ReLU output ``r``: two 1x1 stride-2 convs each,
        as two convs with the m weights stacked; result ordered (edge, channel)."""
        frs = g.modules
        m = len(frs)
        a = F.conv2d(r, torch.cat([f.conv_1.weight for f in frs]), None, 2)
        b = F.conv2d(r[:, :, 1:, 1:], torch.cat([f.conv_2.weight for f in frs]), None, 2)
        if b.shape[-2:] != a.shape[-2:]:  # odd input sizes, as FactorizedReduce pads
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        n, c2, h, w = a.shape
        half = c2 // m
        if _channels_last(a) and _channels_last(b):  # interleave in NHWC order
            y = torch.cat([a.permute(0, 2, 3, 1).reshape(n, h, w, m, half),
                           b.permute(0, 2, 3, 1).reshape(n, h, w, m, half)], 4)
            y = y.reshape(n, h, w, 2 * c2).permute(0, 3, 1, 2)
        else:
            y = torch.cat([a.view(n, m, half, h, w), b.view(n, m, half, h, w)], 2).flatten(1, 2)
        return self._bn(y, [f.bn for f in frs], pending)

    def _conv(self, g: _Group, x: Tensor, pending: list) -> Tensor:
        """``x``: the source's ReLU output repeated m times, channels ordered (edge, channel)."""
        m = len(g.edges)
        y = x
        for i, st in enumerate(g.stages):
            d = st.dw[0]
            if i:
                y = F.relu(y)
            wd = torch.cat([q.weight for q in st.dw]) if m > 1 else d.weight
            y = depthwise_conv2d(y, wd, d.stride, d.padding, d.dilation)
            wp = torch.cat([q.weight for q in st.pw]) if m > 1 else st.pw[0].weight
            folded = _eval_bn_affine(st.bn, wp.dtype)
            if folded is None:
                y = F.conv2d(y, wp, None, 1, 0, 1, m)
                y = self._bn(y, st.bn, pending)
            else:  # evaluation BN folded into the 1x1 conv: W * scale, bias shift
                scale, shift = folded
                y = F.conv2d(y, wp * scale.view(-1, 1, 1, 1), shift, 1, 0, 1, m)
        return y

    # ------------------------------------------------------------------ forward
    def forward(self, s0: Tensor, s1: Tensor, w: Tensor) -> Tensor:
        cell = self.cell
        if self.device != w.device:
            self._to(w.device)
        states = [cell.pre0(s0), cell.pre1(s1)]
        parts: dict[int, list[Tensor]] = {}
        pending: list = []
        last = 2 + self.nodes
        for src in self.sources:
            while len(states) <= max(src.states):  # every edge into it has been added
                states.append(_sum(parts.pop(len(states))))
            self._source(src, states, w, parts, pending)
        while len(states) < last:
            states.append(_sum(parts.pop(len(states))))
        if pending:
            _write_back(pending)
        return torch.cat(states[2:], dim=1)

    def _source(self, src: _Source, states: list[Tensor], w: Tensor,
                parts: dict[int, list[Tensor]], pending: list) -> None:
        relu: dict[int, Tensor] = {}
        repeated: dict[tuple[tuple[int, int], ...], Tensor] = {}
        accs: dict[tuple[int, ...], Tensor] = {}

        def relu_of(state: int) -> Tensor:  # opens every convolution candidate: once per state
            if state not in relu:
                relu[state] = F.relu(states[state])
            return relu[state]

        weights = w[src.index].split(src.sizes)
        for i, g in enumerate(src.groups):
            m = len(g.edges)
            h = states[g.state]
            if g.kind == "identity":
                y = _grad_like_forward(h).unsqueeze(1)
            elif g.kind == "pool":
                y, shared = self._pool_bn(g.pool(h), g.bns, pending)
                y = _grad_like_forward(y)
                y = y.unsqueeze(1) if shared else y.view(y.shape[0], m, -1, *y.shape[2:])
            elif g.kind == "conv":
                if g.inputs not in repeated:
                    repeated[g.inputs] = repeat_channels([(relu_of(st), k) for st, k in g.inputs])
                y = _grad_like_forward(self._conv(g, repeated[g.inputs], pending))
                y = y.view(y.shape[0], m, -1, *y.shape[2:])
            elif g.kind == "reduce":
                y = _grad_like_forward(self._reduce(g, relu_of(g.state), pending))
                y = y.view(y.shape[0], m, -1, *y.shape[2:])
            else:
                y = g.module(h).unsqueeze(1)
            s = weights[i].to(y.dtype).view(1, m, 1, 1, 1)
            acc = accs.get(g.edges)
            accs[g.edges] = y * s if acc is None else torch.addcmul(acc, y, s)
        for edges, acc in accs.items():
            for t, e in enumerate(edges):
                parts.setdefault(self.target[e], []).append(acc[:, t])


class _GradLikeForward(torch.autograd.Function):
    """Identity whose backward hands on the gradient in the forward tensor's memory format.

    The mixing's per-edge slices (``acc[:, t]``) send gradients back as NCHW tensors (autograd
    allocates slice gradients contiguous), and oneDNN's channels_last BN and conv backward
    then take slow paths on them; one layout copy here is cheaper."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.channels_last = _channels_last(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        if ctx.channels_last and not g.is_contiguous(memory_format=torch.channels_last):
            return g.contiguous(memory_format=torch.channels_last)
        return g


def _grad_like_forward(x: Tensor) -> Tensor:
    return _GradLikeForward.apply(x) if _channels_last(x) and x.requires_grad else x


def _channels_last(x: Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def repeat_channels(parts: list[tuple[Tensor, int]]) -> Tensor:
    """``torch.cat([x.repeat(1, k, 1, 1) for x, k in parts], 1)`` as one copy, in the inputs'
    memory format (``repeat`` returns NCHW, which would put every fused kernel after it on
    oneDNN's slower NCHW paths)."""
    if len(parts) == 1 and parts[0][1] == 1:
        return parts[0][0]
    if not all(_channels_last(x) for x, _ in parts):
        return torch.cat([x.repeat(1, k, 1, 1) for x, k in parts], 1)
    n, c, h, w = parts[0][0].shape
    nhwc = [x.permute(0, 2, 3, 1).unsqueeze(3).expand(n, h, w, k, c) for x, k in parts]
    total = sum(k for _, k in parts)
    out = nhwc[0].reshape(n, h, w, total * c) if len(nhwc) == 1 else torch.cat(nhwc, 3)
    return out.reshape(n, h, w, total * c).permute(0, 3, 1, 2)


def _write_back(pending: list) -> None:
    """After the cell: the fused BNs' running statistics back into their modules, and every
    fused BN's ``num_batches_tracked`` advanced, as each module's own forward would."""
    dst: list[Tensor] = []
    val: list[Tensor] = []
    counters: list[Tensor] = []
    lerp: dict[float, tuple[list[Tensor], list[Tensor]]] = {}
    for bns, a, b, shared in pending:
        if shared:  # a, b: the batch mean and unbiased variance every module saw
            d, v = lerp.setdefault(float(bns[0].momentum), ([], []))
            d += [x.running_mean for x in bns] + [x.running_var for x in bns]
            v += [a] * len(bns) + [b] * len(bns)
        else:  # a, b: the concatenated running buffers F.batch_norm updated
            c = bns[0].num_features
            dst += [x.running_mean for x in bns] + [x.running_var for x in bns]
            val += list(a.split(c)) + list(b.split(c))
        counters += [x.num_batches_tracked for x in bns]
    with torch.no_grad():
        if dst:
            torch._foreach_copy_(dst, val)
        for momentum, (d, v) in lerp.items():
            torch._foreach_lerp_(d, v, momentum)  # (1 - momentum) * running + momentum * batch
        torch._foreach_add_(counters, 1)


def _sum(xs: list[Tensor]) -> Tensor:
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    return total
