"""The supernet seam: the only calls a method, an oracle or the runner makes on a supernet.

Every space family's supernet is a plain ``nn.Module`` that also provides these calls, so a
method never walks private attributes (``cells[].edges[]...``) and a method that changes how
an edge computes (sampled single paths, partial channels, drop-path) has a sanctioned way in.
Architecture weights stay a ``forward`` argument: ``supernet(x, {"normal": W, "reduce": W})``.

A family whose supernet cannot honour a call raises :class:`SupernetSeamError` with a message
saying which call and why, never an AttributeError: :class:`SupernetBase` does that for every
call a family leaves out.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import NasbenchEvalError


class SupernetSeamError(NasbenchEvalError):
    """A supernet does not support a seam call (e.g. drop-path on a family without it)."""


@dataclass(frozen=True)
class Candidate:
    """One candidate op of one mixed edge of one cell instance."""

    cell: int  # index of the cell instance in the supernet (0-based, input to output)
    cell_type: str  # key of the architecture weights ("normal", "reduce", ...)
    edge: int  # row of that key's weight matrix
    column: int  # column of that matrix (index in the edge's candidate list)
    op: str  # the candidate's op name
    module: nn.Module  # the module computing it (zero candidates have none and are skipped)


@dataclass(frozen=True)
class EdgeCall:
    """What an :data:`EdgeForward` receives for one mixed edge in one forward."""

    cell: int
    cell_type: str
    edge: int
    op_names: tuple[str, ...]  # the edge's candidates, by column
    columns: tuple[int, ...]  # the columns that have a module (``none`` has none)
    ops: tuple[nn.Module, ...]  # the modules, aligned with ``columns``
    default: Callable[[Tensor, Tensor], Tensor]  # the standard mixture sum_k w[k] * op_k(x)
    stride: int = 1  # spatial stride of the edge (a zero candidate outputs x[:, :, ::s, ::s] * 0)


EdgeForward = Callable[[EdgeCall, Tensor, Tensor], Tensor]
"""``fn(edge, x, w) -> Tensor``: how a mixed edge computes its output from its input ``x`` and
its row of mixing weights ``w``. ``edge.default(x, w)`` is the usual weighted sum. Under
partial channels (:meth:`Supernet.set_partial_channels`) ``x`` is the share of the channels
that goes through the candidates; the supernet adds the bypass and shuffles."""


@runtime_checkable
class Supernet(Protocol):
    """The calls every family's supernet provides (in addition to being an ``nn.Module``)."""

    def forward(self, x: Tensor, weights: dict[str, Tensor]) -> Tensor: ...

    def arch_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each architecture weight tensor, by key."""

    def candidates(self) -> Iterator[Candidate]:
        """Every candidate module of every mixed edge, cell by cell, edge by edge."""

    @property
    def classifier(self) -> nn.Linear:
        """The final classifier (oracles that re-fit or reset the head use it)."""

    def set_edge_forward(self, fn: EdgeForward | None) -> None:
        """Compute every mixed edge with ``fn`` (None: the standard mixture). Fast paths that
        fuse edges step aside while a custom edge forward is set."""

    def set_drop_path(self, prob: float, scope: str = "op") -> None:
        """Drop-path in train mode with probability ``prob``; ``scope`` is the family's (DARTS
        cells: "op" or "edge"). 0 is "off" and every supernet accepts it (the one-shot oracle
        scores with ``set_drop_path(0.0)``); a non-zero probability is refused where there is
        no drop-path."""

    def set_partial_channels(self, k: int) -> None:
        """PC-DARTS's partial channel connections: every mixed edge sends the first 1/k of its
        input channels through the candidates (rebuilt with 1/k of the channels, so call it
        before an optimizer holds the parameters) and the rest around them (max-pooled on
        strided edges); the two are concatenated and channel-shuffled in k groups. The bypass
        is multiplied by the sum of the edge's weight row, so a row scaled by an edge weight
        (edge normalisation) scales the whole edge output, as PC-DARTS's beta does; a row on
        the simplex leaves it unchanged. k = 1 (off) is accepted by every supernet."""

    def node_edges(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        """For each weight key, the rows (edges) that feed the same node, one tuple per node:
        the groups PC-DARTS's edge normalisation takes a softmax over."""

    def set_fused_edges(self, enabled: bool) -> None:
        """Use the family's fused fast path for mixed edges where it has one (an execution
        setting, ``--fused-edges``: same results up to rounding, fewer kernels; DARTS cells:
        :mod:`.darts.fused_cell`). Families without one ignore it."""


def drop_path(x: Tensor, p: float) -> Tensor:
    """Zero whole examples of ``x`` with probability ``p`` (one Bernoulli draw per example,
    torch's global RNG), scaling the kept ones by 1 / (1 - p) so the expectation is ``x``.
    The search supernets' drop-path (R-DARTS's DP), one definition for every family."""
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype,
                       device=x.device).bernoulli_(keep)
    return x * (mask / keep)


def mix_candidates(x: Tensor, w: Tensor, columns: Sequence[int], ops: Sequence[nn.Module],
                   drop_prob: float = 0.0, spared: type | tuple[type, ...] = ()
                   ) -> Tensor | None:
    """``sum_k w[columns[k]] * ops[k](x)``, the mixed edge of every family, in candidate
    order (the order fixes the float rounding the parity checks compare). ``drop_prob`` > 0:
    drop-path on every candidate that is not a ``spared`` instance (the identities), drawn in
    candidate order. None when the edge has no candidate module (only ``none``)."""
    out = None
    for k, op in zip(columns, ops):
        h = op(x)
        if drop_prob > 0.0 and not isinstance(op, spared):
            h = drop_path(h, drop_prob)
        y = w[k] * h
        out = y if out is None else out + y
    return out


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` equal blocks (PC-DARTS / ShuffleNet): channel
    ``g * n + i`` moves to ``i * groups + g`` (n = channels per group). The shuffle of
    :meth:`Supernet.set_partial_channels`, shared by every family that offers it."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def partial_channel_edge(x: Tensor, w: Tensor, k: int, stride: int,
                         inner: Callable[[Tensor], Tensor]) -> Tensor:
    """PC-DARTS's partial-channel edge, the one definition every family's supernet uses:
    ``inner`` (the candidates' computation) on the first 1/``k`` of the channels of ``x``,
    concatenated with the rest (the bypass: max-pooled ``stride`` x ``stride`` on a strided
    edge, times the row sum of ``w`` so an edge-normalised row scales the whole edge) and
    channel-shuffled in ``k`` groups. ``k`` = 1: ``inner(x)``."""
    if k == 1:
        return inner(x)
    n = x.shape[1] // k
    part, rest = x[:, :n], x[:, n:]
    if stride > 1:
        rest = F.max_pool2d(rest, stride, stride, ceil_mode=True)
    return channel_shuffle(torch.cat([inner(part), w.sum() * rest], dim=1), k)


class SupernetBase(nn.Module):
    """Base of a family's supernet: every seam call a family does not support refuses with a
    :class:`SupernetSeamError` naming it, so callers never probe (``hasattr``) for a call.

    A subclass sets ``self.classifier`` (an ``nn.Linear``) and overrides what it supports.
    Switching something *off* is never refused (``set_edge_forward(None)``,
    ``set_drop_path(0.0)``), and execution hints without a fast path to use are ignored
    (``set_fused_edges``), so the runner and the oracles call these unconditionally.
    """

    def _refuse(self, call: str, why: str) -> SupernetSeamError:
        return SupernetSeamError(f"the supernet {type(self).__name__} does not support "
                                 f"{call}: {why}")

    def arch_shapes(self) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def candidates(self) -> Iterator[Candidate]:
        raise self._refuse("candidates()", "it does not enumerate its candidate modules")

    def set_edge_forward(self, fn: EdgeForward | None) -> None:
        if fn is not None:
            raise self._refuse("set_edge_forward()", "its edges cannot be replaced")

    def set_drop_path(self, prob: float, scope: str = "op") -> None:
        if prob:
            raise self._refuse(f"set_drop_path({prob})", "it has no drop-path")

    def set_partial_channels(self, k: int) -> None:
        if k != 1:
            raise self._refuse(f"set_partial_channels({k}) (partial channels)",
                               "its edges cannot run on a share of the channels")

    def node_edges(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        raise self._refuse("node_edges() (edge normalisation)",
                           "it does not say which edges feed which node")

    def set_fused_edges(self, enabled: bool) -> None:
        """No fused fast path: the edges run as they always do."""


SEAM_PROBES: dict[str, Callable[[SupernetBase], object]] = {
    "candidates": lambda net: list(net.candidates()),
    "set_edge_forward": lambda net: net.set_edge_forward(lambda edge, x, w: edge.default(x, w)),
    "set_partial_channels": lambda net: net.set_partial_channels(2),
    "node_edges": lambda net: net.node_edges(),
    "set_drop_path": lambda net: net.set_drop_path(0.1),
}
"""How to try each seam call a supernet may refuse (harmless arguments; a supernet built
with an even number of channels). ``classifier`` and ``set_fused_edges`` are never refused."""


def refused_calls(net: SupernetBase, calls: tuple[str, ...]) -> list[str]:
    """Which of ``calls`` (names in :data:`SEAM_PROBES`) the supernet refuses, found by making
    each call on it: the seam's own answer, no probing for attributes. The calls change the
    supernet (partial channels rebuild its candidates), so pass a throwaway one. Tests check
    each family's declared ``SpaceFamily.supernet_calls`` with it. A name that is not a
    refusable seam call counts as refused."""
    refused = []
    for call in calls:
        if call not in SEAM_PROBES:
            refused.append(call)
            continue
        try:
            SEAM_PROBES[call](net)
        except SupernetSeamError:
            refused.append(call)
    return refused
