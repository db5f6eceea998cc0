"""K DARTS-cell supernets executed as one: weights stacked on the channel axis.

Why: a search supernet is small, so a step's time is mostly the fixed cost of many small
kernels. K independent searches (K seeds) run the same kernels on the same shapes; stacking
their weights on the channel axis turns K kernels into one K times larger:

* activations are ``(N, K*C, H, W)`` with channels ordered (seed, channel): seed ``s``'s
  images sit in channels ``[s*C, (s+1)*C)`` from the stem's input on;
* every convolution runs with its groups multiplied by K (a dense conv becomes K groups, a
  depthwise conv stays depthwise over K*C channels), so seed ``s``'s outputs depend on seed
  ``s``'s inputs and weights only;
* a BatchNorm over K*C channels is K BatchNorms (statistics are per channel), running
  buffers included; pools, ReLU and identity are per channel anyway;
* each seed mixes its own candidates with its own architecture weights (``(K, E, O)``): a
  per-channel multiply-add;
* the classifier is a batched linear, one weight matrix per seed.

Every parameter and buffer of the K supernets packs the same way: the K tensors concatenated
along dim 0 (0-dim counters are stacked), so seed ``s``'s tensor is the ``s``-th of K equal
chunks. This module reads the structure of one of the K supernets (the template) and runs
the packed arithmetic functionally; the K supernets stay the owners of the per-seed state
(checkpoints, oracles, derivation) between epochs: :meth:`PackedSupernet.unpack_into`.

Only the modules the DARTS cells are built of are known here; anything else (S4's noise,
whose random numbers would be drawn in another order, a plugin's op, MSR's parametrized
convs, drop-path, a method's edge forward) is refused with :class:`PackingError`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..errors import NasbenchEvalError
from ..spaces.darts.dwconv import depthwise_conv2d
from ..spaces.darts.fused_cell import _grad_like_forward as grad_like_forward
from ..spaces.darts.ops import (DilConv, FactorizedReduce, Identity, ReLUConvBN, SepConv,
                                SharpSepConv)
from ..spaces.darts.supernet import DartsSupernet, SearchCell
from .fused import PackedCell


class PackingError(NasbenchEvalError):
    """A run cannot be packed with others (method, space, op or setting); the message says
    which and why, and that the seeds run separately without ``--pack``/``--seeds``."""


def pack(tensors: Sequence[Tensor]) -> Tensor:
    """The packed form of K per-seed tensors: concatenated along dim 0 (0-dim: stacked)."""
    ts = [t.detach() for t in tensors]
    return torch.stack(ts) if ts[0].dim() == 0 else torch.cat(ts, 0)


def unpack(t: Tensor, k: int, scalar: bool = False) -> list[Tensor]:
    """The K per-seed views of a packed tensor (inverse of :func:`pack`; ``scalar``: the
    seeds' tensors were 0-dim and stacked)."""
    return list(t.unbind(0)) if scalar else list(t.chunk(k, 0))


_SEQUENCES = (ReLUConvBN, DilConv, SepConv, SharpSepConv)


class PackedSupernet:
    """The functional forward of K :class:`DartsSupernet` of identical structure.

    ``params`` and ``buffers`` map the template's state names to packed tensors (leaves that
    require grad where the per-seed parameter does); ``forward`` reads only them.
    """

    def __init__(self, nets: Sequence[DartsSupernet], fused: bool | None = None):
        if not nets:
            raise PackingError("no supernets to pack")
        for net in nets:
            if type(net) is not DartsSupernet:
                raise PackingError(
                    f"packing needs the DARTS-cell supernet; this space built a "
                    f"{type(net).__name__} (run the seeds separately)")
        t = nets[0]
        shapes = [[(n, v.shape) for n, v in net.state_dict().items()] for net in nets]
        if any(s != shapes[0] for s in shapes[1:]):
            raise PackingError("the supernets to pack differ in structure (space, channels, "
                               "layers or dataset)")
        self.template = t
        self.k = len(nets)
        self._check(t.stem)
        for cell in t.cells:
            if cell.edge_forward is not None:
                raise PackingError("a method's edge forward (set_edge_forward) cannot be "
                                   "packed: it runs per edge on one seed's tensors")
            self._check(cell.pre0)
            self._check(cell.pre1)
            for edge in cell.edges:
                for op in edge.ops:
                    self._check(op)
        if t.drop_path_prob:
            raise PackingError("drop-path draws per example from torch's global RNG in the "
                               "order of one seed's forward; it cannot be packed")
        named = [dict(net.named_parameters()) for net in nets]
        self.params: dict[str, Tensor] = {
            n: pack([d[n] for d in named]).requires_grad_(p.requires_grad)
            for n, p in t.named_parameters()}
        bufs = [dict(net.named_buffers()) for net in nets]
        self.buffers: dict[str, Tensor] = {n: pack([d[n] for d in bufs]).clone()
                                           for n, _ in t.named_buffers()}
        self.scalar_buffers = {n for n, b in t.named_buffers() if b.dim() == 0}
        self.memory_format = (torch.channels_last
                              if t.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
                              and not t.stem[0].weight.is_contiguous() else torch.contiguous_format)
        for n, p in self.params.items():
            if p.dim() == 4:
                self.params[n] = p.detach().contiguous(memory_format=self.memory_format
                                                       ).requires_grad_(p.requires_grad)
        self.training = True
        self._p, self._b = self.params, self.buffers  # what the running forward reads
        self._shared: dict[tuple, tuple[Tensor, Tensor]] = {}
        """Within one cell: the ReLU and pool outputs of a state, which every edge leaving
        the state shares (keyed by the input's id and the op; the input is kept alive)."""
        on_cpu = t.stem[0].weight.device.type == "cpu"
        self.fused = t.fused_edges and not on_cpu if fused is None else fused
        """Run the cells source-fused (:mod:`.fused`) rather than edge by edge. Default: the
        template's ``fused_edges`` off the CPU. On the CPU a packed edge's kernels are
        already K times wider and fusing the edges only made them larger (the small setting,
        K = 8: 3.23 s per packed step fused vs 2.60 s edge by edge); the fused plan is for
        launch-bound devices (its GPU gain is not measured yet)."""
        self._cells = ([PackedCell(self, cell, f"cells.{i}") for i, cell in enumerate(t.cells)]
                       if self.fused else [])

    # ------------------------------------------------------------------ validation
    def _check(self, m: nn.Module) -> None:
        if any(parametrize.is_parametrized(x) or x._forward_hooks or x._forward_pre_hooks
               for x in m.modules()):
            raise PackingError(f"a candidate with hooks or parametrizations "
                               f"({type(m).__name__}, e.g. MSR's spectral normalisation) "
                               f"cannot be packed")
        if isinstance(m, nn.Sequential):
            for child in m:
                self._check(child)
        elif isinstance(m, _SEQUENCES):
            self._check(m.op)
        elif isinstance(m, FactorizedReduce):
            self._check(m.bn)
        elif isinstance(m, nn.BatchNorm2d):
            if not m.track_running_stats or m.momentum is None:
                raise PackingError("BatchNorm without running statistics or with a "
                                   "cumulative average cannot be packed")
        elif not isinstance(m, (nn.ReLU, nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, Identity)):
            raise PackingError(
                f"the candidate op {type(m).__name__} has no packed form (known: convolution "
                f"blocks, pools, skip, none); S4's noise draws its random numbers in one "
                f"seed's order. Run these seeds separately")

    # ------------------------------------------------------------------ state
    def train(self, mode: bool = True) -> PackedSupernet:
        self.training = mode
        return self

    def eval(self) -> PackedSupernet:
        return self.train(False)

    def weights(self) -> list[Tensor]:
        """The trainable packed tensors, in the template's ``parameters()`` order (the order
        of each method's ``w_params``)."""
        return [p for p in self.params.values() if p.requires_grad]

    def unpack_into(self, nets: Sequence[DartsSupernet]) -> None:
        """Copy each seed's slice of every parameter and buffer into its own supernet."""
        with torch.no_grad():
            for i, net in enumerate(nets):
                for n, p in net.named_parameters():
                    p.copy_(unpack(self.params[n], self.k)[i])
                for n, b in net.named_buffers():
                    b.copy_(unpack(self.buffers[n], self.k, n in self.scalar_buffers)[i])

    # ------------------------------------------------------------------ forward
    def pack_input(self, xs: Sequence[Tensor]) -> Tensor:
        """K batches of images ``(N, C, H, W)`` side by side: ``(N, K*C, H, W)``."""
        return torch.cat(list(xs), 1).contiguous(memory_format=self.memory_format)

    def forward(self, x: Tensor, weights: dict[str, Tensor],
                params: dict[str, Tensor] | None = None,
                buffers: dict[str, Tensor] | None = None) -> Tensor:
        """Logits ``(K, N, classes)`` of the packed input ``x`` (:meth:`pack_input`), each
        seed mixing with its own ``weights[cell_type]`` of shape ``(K, edges, ops)``.
        ``params``/``buffers``: tensors to use instead of the packed state (by name, as
        ``torch.func.functional_call``; second-order DARTS's virtual steps)."""
        self._p = self.params if params is None else {**self.params, **params}
        self._b = self.buffers if buffers is None else {**self.buffers, **buffers}
        try:
            return self._forward(x, weights)
        finally:
            self._p, self._b = self.params, self.buffers

    def _forward(self, x: Tensor, weights: dict[str, Tensor]) -> Tensor:
        t = self.template
        s0 = s1 = self._op(t.stem, "stem", x)
        for i, cell in enumerate(t.cells):
            w = weights[cell.cell_type]
            s0, s1 = s1, (self._cells[i].forward(s0, s1, w) if self._cells
                          else self._cell(cell, f"cells.{i}", s0, s1, w))
        n, kc = s1.shape[:2]
        k = self.k
        feat = s1.mean((2, 3)).view(n, k, kc // k).transpose(0, 1)  # (K, N, C)
        w = self._p["classifier.weight"]
        b = self._p["classifier.bias"]
        classes = w.shape[0] // k
        return torch.baddbmm(b.view(k, 1, classes), feat, w.view(k, classes, -1).transpose(1, 2))

    __call__ = forward

    def _cell(self, cell: SearchCell, name: str, s0: Tensor, s1: Tensor, w: Tensor) -> Tensor:
        states = [self._op(cell.pre0, f"{name}.pre0", s0), self._op(cell.pre1, f"{name}.pre1", s1)]
        c = states[1].shape[1] // self.k
        # (edges, ops, K*C): each seed's weight repeated over its channels
        wc = w.permute(1, 2, 0).repeat_interleave(c, -1)
        e = 0
        for _ in range(cell.nodes):
            total = None
            for j, h in enumerate(states):
                y = self._edge(cell, e + j, f"{name}.edges.{e + j}", h, wc[e + j])
                total = y if total is None else total + y
            e += len(states)
            states.append(total)
        self._shared.clear()
        return self._concat([grad_like_forward(s) for s in states[2:]])

    def _concat(self, parts: list[Tensor]) -> Tensor:
        """Packed tensors ``(N, K*C_i, H, W)`` concatenated per seed: channels (seed, part,
        channel), as each seed's own ``torch.cat(parts, 1)``. In channels_last it is built in
        NHWC order (one copy), so the gradients flowing back into the parts stay
        channels_last; an NCHW-ordered concatenation hands every part an NCHW gradient, which
        each candidate's mixing and BN backward would then convert or run slowly on."""
        n, _, hh, ww = parts[0].shape
        k = self.k
        if self.memory_format == torch.channels_last:
            y = torch.cat([p.permute(0, 2, 3, 1).reshape(n, hh, ww, k, p.shape[1] // k)
                           for p in parts], 4)
            return y.reshape(n, hh, ww, -1).permute(0, 3, 1, 2)
        y = torch.cat([p.reshape(n, k, p.shape[1] // k, hh, ww) for p in parts], 2)
        return y.reshape(n, -1, hh, ww)

    def _edge(self, cell: SearchCell, e: int, name: str, x: Tensor, w: Tensor) -> Tensor:
        edge = cell.edges[e]
        out = None
        for i, (col, op) in enumerate(zip(edge.columns, edge.ops)):
            y = grad_like_forward(self._op(op, f"{name}.ops.{i}", x)) * w[col].view(1, -1, 1, 1)
            out = y if out is None else out + y
        return out

    def _op(self, m: nn.Module, name: str, x: Tensor) -> Tensor:
        if isinstance(m, nn.Sequential):
            for i, child in enumerate(m):
                x = self._op(child, f"{name}.{i}", x)
            return x
        if isinstance(m, _SEQUENCES):
            return self._op(m.op, f"{name}.op", x)
        if isinstance(m, nn.ReLU):
            return self._once(("relu",), x, F.relu)
        if isinstance(m, nn.Conv2d):
            return self._conv(m, name, x)
        if isinstance(m, nn.BatchNorm2d):
            return self._bn(m, name, x)
        if isinstance(m, Identity):
            return x
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            return self._once((type(m), m.kernel_size, m.stride, m.padding), x, m)
        if isinstance(m, FactorizedReduce):
            return self._reduce(m, name, x)
        raise PackingError(f"no packed form for {type(m).__name__}")

    def _once(self, key: tuple, x: Tensor, fn) -> Tensor:
        """``fn(x)``, computed once per cell for the same ``x`` (a state feeds many edges)."""
        k = (id(x), *key)
        hit = self._shared.get(k)
        if hit is None or hit[0] is not x:
            hit = self._shared[k] = (x, fn(x))
        return hit[1]

    def _conv(self, m: nn.Conv2d, name: str, x: Tensor) -> Tensor:
        w = self._p[f"{name}.weight"]
        b = self._p.get(f"{name}.bias")
        if m.groups == m.in_channels == m.out_channels and b is None:
            return depthwise_conv2d(x, w, m.stride, m.padding, m.dilation)  # type: ignore[arg-type]
        return F.conv2d(x, w, b, m.stride, m.padding, m.dilation, m.groups * self.k)

    def _bn(self, m: nn.BatchNorm2d, name: str, x: Tensor) -> Tensor:
        if self.training:
            self._b[f"{name}.num_batches_tracked"].add_(1)
        return F.batch_norm(x, self._b[f"{name}.running_mean"],
                            self._b[f"{name}.running_var"],
                            self._p.get(f"{name}.weight"), self._p.get(f"{name}.bias"),
                            self.training, m.momentum, m.eps)

    def _reduce(self, m: FactorizedReduce, name: str, x: Tensor) -> Tensor:
        x = self._once(("relu",), x, F.relu)
        k = self.k
        a = F.conv2d(x, self._p[f"{name}.conv_1.weight"], None, 2, 0, 1, k)
        b = F.conv2d(x[:, :, 1:, 1:], self._p[f"{name}.conv_2.weight"], None, 2, 0, 1, k)
        if b.shape[-2:] != a.shape[-2:]:
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        # per seed [conv_1, conv_2] channels, as the unpacked module's cat
        y = self._concat([grad_like_forward(a), grad_like_forward(b)])
        return self._bn(m.bn, f"{name}.bn", y)
