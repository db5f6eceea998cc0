"""MSR-DARTS (Machida et al.): train only the weights, choose ops by minimum stable rank.

There are no architecture parameters and no bilevel optimisation. The supernet holds only
convolutional candidates (:meth:`Msr.adapt_space`), every conv inside a candidate op is
spectrally normalised to norm ``msr_coeff`` before each forward (power iteration on the
conv operator, see :class:`nasbench_eval.spectral.ConvSpectralNorm`), and the weights are
trained by the shared SGD step. The architecture is read off the weights:

* the score of a candidate is the stable rank of its **last** conv (the final 1x1 pointwise
  conv of sep/dil convs) as an operator on its real input size (Sedghi et al.'s singular
  values; for 1x1 convs ``H*W`` times the stable rank of the ``C_out x C_in`` matrix);
* topology, as the paper: every cell instance has its own (its candidates' own stable
  ranks; "each cell has an independent topology in our pipeline"), recorded in the genotype
  record's ``cells`` field (:class:`MsrGenotype`); the *shared* genotype (one normal and one
  reduction cell, from the mean rank over the cells of a type, as the public code's
  ``arch_mean_min``) is the summary the run reports and the one ``evaluate`` trains: our
  evaluation network (like the public code's ``model.py``) builds every cell of a type from
  one genotype and has more cells (20) than the search supernet (8), so per-cell topologies
  have no cell to map to;
* derivation (per cell, and on the averaged table for the shared genotype): on each edge the
  op with the lowest stable rank; per node the 2 edges whose best op has the lowest stable
  rank (ties: lower index);
* mixing (``msr_mixing``): ``sum`` (default, the paper's Eq. 3: every candidate with weight
  1, no architecture weights); ``stable-rank``, the public code's ``MixedOp``: per cell
  instance and per edge softmax(-stable rank) of that cell's own candidates, recomputed at the
  start of every epoch from the current weights (epoch 0: the initial weights), numerically
  one-hot (only the lowest-rank candidate of an edge trains). The runner's ``val_acc`` in that
  mode mixes with the per-cell weights averaged over the cells of a type (it evaluates one
  weight table per type); ``fixed`` is the 1/K mixing that was the default before issue 16.

Differences of the public code we do not copy (docs/methods.md): it ranks stride-1 edges
of reduction cells on the cell *input* size (4x the real pixels, 12 edges affected, biasing
its reduction cells towards inputs 0 and 1); it re-randomises the power-iteration vectors of
depthwise convs on every forward; its 1x1 convs use the convolution-form power iteration
(same converged norm as our matrix form).
"""
from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import TYPE_CHECKING, Any

from ..config import RunConfig
from ..errors import NasbenchEvalError
from ..lazy_torch import nn, torch
from ..spaces.darts.genotype import Genotype, Pair
from ..spaces.darts.ops import OPS
from ..spaces.darts.spec import CELL_TYPES, SearchSpace
from ..options import Option
from .base import ArchWeights, Batch, register
from .weights import WeightTraining

if TYPE_CHECKING:
    from torch import Tensor

    from ..spaces.supernet import EdgeCall

MIXINGS = ("sum", "stable-rank", "fixed")


@dataclasses.dataclass(frozen=True)
class MsrGenotype(Genotype):
    """The shared genotype plus every cell instance's own topology (``cells``: (cell type,
    pairs) in supernet order), which the paper derives. ``to_dict`` adds ``cells``; readers
    of a genotype (``evaluate``, the oracles) take the shared cells and ignore it."""

    cells: tuple[tuple[str, tuple[Pair, ...]], ...] = ()

    def __eq__(self, other: object) -> bool:  # equal to the shared Genotype it summarises
        return isinstance(other, Genotype) and Genotype.to_dict(self) == Genotype.to_dict(other)

    def __hash__(self) -> int:
        return hash((self.normal, self.reduce, self.normal_concat, self.reduce_concat))

    def to_dict(self) -> dict:
        return {**super().to_dict(),
                "cells": [{"type": t, "pairs": [list(p) for p in pairs]}
                          for t, pairs in self.cells]}


def _is_conv_op(name: str) -> bool:
    return OPS[name].parametric and not OPS[name].is_zero


@register
class Msr(WeightTraining):
    """MSR-DARTS: weights only (spectrally normalised convs); ops picked by minimum stable rank.

    The power-iteration vectors of every conv are persistent buffers (also for grouped convs,
    which the reference re-randomises on every call); they live in the supernet's state_dict,
    so a resumed search continues them.
    """

    name = "msr"
    families = ("darts-cell",)
    paper = ("Machida, Uto, Shinoda & Suzuki, Neural Architecture Search Using Stable Rank of "
             "Convolutional Layers (MSR-DARTS)")
    options = {
        "msr_mixing": Option("sum", str, "edge mixing: 'sum' (every candidate weight 1, the "
                             "paper's Eq. 3), 'stable-rank' (per cell and edge softmax(-rank), "
                             "each epoch, the public code) or 'fixed' (1/K, before issue 16)",
                             choices=MIXINGS, in_run_id=True),  # its default changed: see Option
        "msr_coeff": Option(1.0, float, "spectral norm C every conv of a candidate op is set to",
                            positive=True),
        "msr_power_iters": Option(5, int, "power iterations per training forward of each conv",
                                  minimum=1),
    }
    config_defaults = {"batch_size": 128, "train_portion": 0.8}

    # ------------------------------------------------------------------ space
    @classmethod
    def legacy_resume_conflict(cls, config: dict[str, Any]) -> str | None:
        if (config.get("method_options") or {}).get("msr_mixing") == "stable-rank":
            return ("msr's 'stable-rank' mixing averaged the ranks over the cells of a type "
                    "and now follows the public code per cell")
        return None

    def adapt_space(self, space: SearchSpace) -> SearchSpace:
        """Keep only convolutional candidates (``OPS[op].parametric``).

        Refuses a space without any conv, or with an edge left without a candidate. Edges left
        with fewer candidates than others are padded with ``none`` (skipped by the supernet,
        weight 0, never derived), since a cell's edges must all have the same width.
        """
        super().adapt_space(space)  # refuses a family other than darts-cell
        used = {op for cell in CELL_TYPES for ops in space.edge_ops[cell] for op in ops}
        if not any(_is_conv_op(op) for op in used):
            raise NasbenchEvalError(
                f"method 'msr' searches convolutional ops only, and space '{space.name}' has "
                f"none (its ops: {', '.join(sorted(used))}); use a space with sep_conv_* / "
                f"dil_conv_* candidates, e.g. darts")
        empty: list[str] = []
        edge_ops: dict[str, tuple[tuple[str, ...], ...]] = {}
        for cell in CELL_TYPES:
            kept = []
            for e, ops in enumerate(space.edge_ops[cell]):
                k = tuple(op for op in ops if _is_conv_op(op))
                if not k:
                    src, node = space.edges[e]
                    empty.append(f"{cell} cell edge {e} (state {src} -> node {node}: "
                                 f"{', '.join(ops)})")
                kept.append(k)
            width = max(len(k) for k in kept)
            edge_ops[cell] = tuple(k + ("none",) * (width - len(k)) for k in kept)
        if empty:
            raise NasbenchEvalError(
                f"method 'msr' keeps only convolutional ops, which leaves no candidate on "
                f"{len(empty)} edge(s) of space '{space.name}': {'; '.join(empty)}")
        dropped = sorted(op for op in used if not _is_conv_op(op))
        if dropped:
            warnings.warn(f"msr: space '{space.name}': dropping the non-convolutional "
                          f"candidates {', '.join(dropped)} (MSR-DARTS searches convolutions "
                          f"only)", UserWarning, stacklevel=2)
        meta = {**space.meta, "adapted_by": "msr", "dropped_ops": dropped}
        return dataclasses.replace(space, edge_ops=edge_ops, meta=meta)

    # ------------------------------------------------------------------ setup
    def setup(self, supernet: nn.Module, space: SearchSpace, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        opts = self.resolve_options(cfg)
        coeff, iters = float(opts["msr_coeff"]), opts["msr_power_iters"]
        from ..spectral import spectral_norm_of, spectral_normalize_conv  # torch

        # spectral normalisation first: the w optimizer then sees the parametrized weights
        by_cell: dict[int, list[tuple[int, int, str, nn.Conv2d]]] = {}
        cell_types: dict[int, str] = {}
        n_conv = 0
        for cand in supernet.candidates():
            convs = [m for m in cand.module.modules() if isinstance(m, nn.Conv2d)]
            if not convs:
                raise NasbenchEvalError(
                    f"msr: op '{cand.op}' is marked parametric but has no Conv2d; MSR "
                    f"needs convolutional candidates")
            for conv in convs:
                if spectral_norm_of(conv) is None:  # a second setup keeps the first
                    spectral_normalize_conv(conv, coeff, iters,
                                            seed=cfg.seed * 1_000_003 + n_conv)
                n_conv += 1
            by_cell.setdefault(cand.cell, []).append((cand.edge, cand.column, cand.op, convs[-1]))
            cell_types[cand.cell] = cand.cell_type
        self.candidates: list[tuple[str, list[tuple[int, int, str, nn.Conv2d]]]] = [
            (cell_types[i], by_cell[i]) for i in sorted(by_cell)]
        """Per cell instance: (cell type, [(edge, column, op name, last conv)])."""
        self.n_normalized_convs = n_conv
        super().setup(supernet, space, cfg, steps_per_epoch)
        mode = self.opts["msr_mixing"]
        self.train_weights = self._sum_weights() if mode == "sum" else self._uniform_weights()
        self.cell_mixing: list[Tensor] | None = None
        """stable-rank mode: per cell instance (supernet order), its (edges, K) weights."""
        self._cell_pos = {cell: i for i, cell in enumerate(sorted(by_cell))}

    # ------------------------------------------------------------------ weights
    def _real_columns(self) -> dict[str, Tensor]:
        """Per cell type, an (edges, K) mask of the candidates that are not ``none``."""
        out = {}
        for cell in CELL_TYPES:
            mask = [[not OPS[op].is_zero for op in ops] for ops in self.space.edge_ops[cell]]
            out[cell] = torch.tensor(mask, dtype=torch.bool, device=self.device)
        return out

    def _sum_weights(self) -> ArchWeights:
        """The paper's Eq. (3): weight 1 on every candidate (0 on ``none`` padding)."""
        return {cell: mask.float() for cell, mask in self._real_columns().items()}

    def _uniform_weights(self) -> ArchWeights:
        out = {}
        for cell, mask in self._real_columns().items():
            m = mask.float()
            out[cell] = m / m.sum(1, keepdim=True)
        return out

    def cell_stable_ranks(self, sizes: list[list[tuple[int, int]]] | None = None
                          ) -> list[tuple[str, Tensor]]:
        """(cell type, (edges, K) float64 CPU tensor) per cell of the supernet: the stable rank
        of the last conv of every candidate, +inf on ``none`` columns.

        ``sizes`` (per cell, per candidate) gives the input sizes when the convs have not
        seen one yet; otherwise a conv without a forward counts its 1x1 operator as one
        pixel (the matrix stable rank).
        """
        from ..spectral import conv_stable_rank, raw_weight  # torch

        rows = []
        for i, (cell_type, entries) in enumerate(self.candidates):
            sr = torch.full(self.space.arch_shapes()[cell_type], float("inf"),
                            dtype=torch.float64)
            values = []
            for j, (_, _, _, conv) in enumerate(entries):
                hw = (sizes[i][j] if sizes is not None
                      else conv.parametrizations["weight"][0].input_size or (1, 1))
                values.append(conv_stable_rank(raw_weight(conv), *hw, conv.stride,
                                               conv.padding, conv.dilation, conv.groups))
            if values:
                vals = torch.stack(values).cpu()  # one host transfer per cell
                for (e, k, _, _), v in zip(entries, vals):
                    sr[e, k] = v
            rows.append((cell_type, sr))
        return rows

    def stable_ranks(self) -> dict[str, Tensor]:
        """Per cell type, the mean over its cells of :meth:`cell_stable_ranks` (the supernet
        mixes, and a genotype describes, one cell per type)."""
        rows = self.cell_stable_ranks()
        out: dict[str, Tensor] = {}
        for cell in CELL_TYPES:
            mats = [sr for c, sr in rows if c == cell]
            if mats:
                out[cell] = torch.stack(mats).mean(0)
            else:  # e.g. fewer than 3 layers: no reduction cell, nothing to rank
                real = self._real_columns()[cell].cpu()
                out[cell] = torch.zeros(real.shape, dtype=torch.float64).masked_fill(
                    ~real, float("inf"))
        return out

    # ------------------------------------------------------------------ stable-rank mixing
    def _input_sizes(self, x: Tensor) -> list[list[tuple[int, int]]]:
        """Input size of every candidate's last conv for inputs like ``x``, from a forward of
        a copy of the supernet (the real one's BN statistics and power-iteration vectors
        must not move before the first step)."""
        probe = copy.deepcopy(self.supernet).eval()
        with torch.no_grad():
            probe(x[:1], self._sum_weights())
        by_cell: dict[int, list[tuple[int, int]]] = {}
        for cand in probe.candidates():
            conv = [m for m in cand.module.modules() if isinstance(m, nn.Conv2d)][-1]
            size = conv.parametrizations["weight"][0].input_size
            by_cell.setdefault(cand.cell, []).append(size or (1, 1))
        return [by_cell[c] for c in sorted(by_cell)]

    def _update_cell_mixing(self, sizes: list[list[tuple[int, int]]] | None = None) -> None:
        """The public code's ``MixedOp`` weights: per cell instance and edge, softmax over
        that cell's own candidates of -stable rank (float32 as ``torch.Tensor(ranks)``;
        ``none`` padding gets 0); the per-type average becomes ``train_weights`` (what
        :meth:`mixing_weights` reports)."""
        rows = self.cell_stable_ranks(sizes)
        self.cell_mixing = [torch.softmax(-sr.float(), dim=1).to(self.device) for _, sr in rows]
        for cell in CELL_TYPES:
            mats = [w for (c, _), w in zip(rows, self.cell_mixing) if c == cell]
            if mats:
                self.train_weights[cell] = torch.stack(mats).mean(0)

    def _edge_forward(self, call: EdgeCall, x: Tensor, w: Tensor) -> Tensor:
        assert self.cell_mixing is not None
        return call.default(x, self.cell_mixing[self._cell_pos[call.cell]][call.edge])

    def loss(self, batch: Batch, weights: ArchWeights, autocast: bool = True
             ) -> tuple[Tensor, Tensor]:
        """The shared loss; in ``stable-rank`` mode every cell mixes with its own weights
        (an edge forward set for this forward only, so oracles and evaluation of other
        weights are unaffected)."""
        if self.cell_mixing is None:
            return super().loss(batch, weights, autocast)
        self.supernet.set_edge_forward(self._edge_forward)
        try:
            return super().loss(batch, weights, autocast)
        finally:
            self.supernet.set_edge_forward(None)

    # ------------------------------------------------------------------ protocol
    def step(self, train_batch: Batch, val_batch: Batch) -> dict[str, Tensor]:
        if self.opts["msr_mixing"] == "stable-rank" and self.cell_mixing is None:
            # epoch 0 mixes with the ranks of the initial weights, as the public code
            self._update_cell_mixing(self._input_sizes(train_batch[0]))
        return super().step(train_batch, val_batch)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        out = super().end_epoch(epoch)
        sr = self.stable_ranks()
        if self.opts["msr_mixing"] == "stable-rank":
            # the weights the next epoch starts with (the code recomputes before each epoch)
            self._update_cell_mixing()
        present = {cell for cell, _ in self.candidates}
        for cell, s in sr.items():
            finite = s[torch.isfinite(s)]
            if cell in present and finite.numel():  # mean over the candidates, for logging
                out[f"msr_stable_rank_{cell}"] = float(finite.mean())
        return out

    def derive(self) -> MsrGenotype:
        """The shared genotype (mean ranks per cell type) with every cell's own topology in
        ``cells`` (the paper's per-cell derivation)."""
        sr = self.stable_ranks()
        concat = tuple(range(2, 2 + self.space.nodes))
        cells = tuple((cell_type, self._derive_cell(cell_type, r))
                      for cell_type, r in self.cell_stable_ranks())
        return MsrGenotype(normal=self._derive_cell("normal", sr["normal"]),
                           reduce=self._derive_cell("reduce", sr["reduce"]),
                           normal_concat=concat, reduce_concat=concat, cells=cells)

    def _derive_cell(self, cell: str, sr: Tensor) -> tuple[Pair, ...]:
        """Per edge the lowest-rank op; per node the 2 edges whose best op ranks lowest."""
        edge_ops = self.space.edge_ops[cell]
        pairs: list[Pair] = []
        for node in range(self.space.nodes):
            best: list[tuple[float, int, str]] = []  # (stable rank, source state, op)
            for e, (src, tgt) in enumerate(self.space.edges):
                if tgt != node:
                    continue
                allowed = [k for k, op in enumerate(edge_ops[e]) if not OPS[op].is_zero]
                k = min(allowed, key=lambda j: (sr[e, j].item(), j))
                best.append((sr[e, k].item(), src, edge_ops[e][k]))
            top = sorted(range(len(best)), key=lambda i: best[i][0])[:2]  # stable: ties by index
            pairs += [(best[i][2], best[i][1]) for i in top]
        return tuple(pairs)

    def state_dict(self) -> dict[str, Any]:
        # the spectral-norm vectors are buffers of the supernet, saved with it
        out = {**super().state_dict(),
               "mixing": {k: v.detach().cpu() for k, v in self.train_weights.items()}}
        if self.cell_mixing is not None:
            out["cell_mixing"] = [w.detach().cpu() for w in self.cell_mixing]
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.train_weights = {k: v.to(self.device) for k, v in state["mixing"].items()}
        if "cell_mixing" in state:
            self.cell_mixing = [w.to(self.device) for w in state["cell_mixing"]]
