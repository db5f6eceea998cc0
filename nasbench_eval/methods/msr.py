"""MSR-DARTS (Machida et al.): train only the weights, choose ops by minimum stable rank.

There are no architecture parameters and no bilevel optimisation. The supernet holds only
convolutional candidates (:meth:`Msr.adapt_space`), every conv inside a candidate op is
spectrally normalised to norm ``msr_coeff`` before each forward (power iteration on the
conv operator, see :class:`nasbench_eval.spectral.ConvSpectralNorm`), and the weights are
trained by the shared SGD step. The architecture is read off the weights:

* the score of a candidate is the stable rank of its **last** conv (the final 1x1 pointwise
  conv of sep/dil convs) as an operator on its real input size (Sedghi et al.'s singular
  values; for 1x1 convs ``H*W`` times the stable rank of the ``C_out x C_in`` matrix);
* the supernet has one weight matrix per cell type, so a candidate's score is the mean over
  the cells of that type (the reference also writes such a cell-averaged genotype);
* derivation: on each edge the op with the lowest stable rank; per node the 2 edges whose
  best op has the lowest stable rank (ties: lower index);
* mixing: ``fixed`` (default) weights every candidate of an edge 1/K (the paper: alpha fixed);
  ``stable-rank`` uses softmax(-stable rank) per edge, recomputed once per epoch in
  :meth:`Msr.end_epoch` (the public code). Its first epoch, before any stable rank of trained
  weights exists, mixes with 1/K.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..config import RunConfig
from ..errors import NasbenchEvalError
from ..spaces.darts.genotype import Genotype, Pair
from ..spaces.darts.ops import OPS
from ..spaces.darts.spec import CELL_TYPES, SearchSpace
from ..spectral import conv_stable_rank, raw_weight, spectral_norm_of, spectral_normalize_conv
from ..options import Option
from .base import ArchWeights, register
from .weights import WeightTraining

MIXINGS = ("fixed", "stable-rank")


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
        "msr_mixing": Option("fixed", str, "edge mixing: 'fixed' (1/K, paper) or 'stable-rank' "
                             "(softmax(-rank) per edge, once per epoch, public code)",
                             choices=MIXINGS),
        "msr_coeff": Option(1.0, float, "spectral norm C every conv of a candidate op is set to",
                            positive=True),
        "msr_power_iters": Option(5, int, "power iterations per training forward of each conv",
                                  minimum=1),
    }
    config_defaults = {"batch_size": 128, "train_portion": 0.8}

    # ------------------------------------------------------------------ space
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
        self.train_weights = self._uniform_weights()

    # ------------------------------------------------------------------ weights
    def _real_columns(self) -> dict[str, Tensor]:
        """Per cell type, an (edges, K) mask of the candidates that are not ``none``."""
        out = {}
        for cell in CELL_TYPES:
            mask = [[not OPS[op].is_zero for op in ops] for ops in self.space.edge_ops[cell]]
            out[cell] = torch.tensor(mask, dtype=torch.bool, device=self.device)
        return out

    def _uniform_weights(self) -> ArchWeights:
        out = {}
        for cell, mask in self._real_columns().items():
            m = mask.float()
            out[cell] = m / m.sum(1, keepdim=True)
        return out

    def cell_stable_ranks(self) -> list[tuple[str, Tensor]]:
        """(cell type, (edges, K) float64 CPU tensor) per cell of the supernet: the stable rank
        of the last conv of every candidate, +inf on ``none`` columns.

        A conv that has not seen an input yet (no forward) counts its 1x1 operator as one
        pixel (the matrix stable rank).
        """
        rows = []
        for cell_type, entries in self.candidates:
            sr = torch.full(self.space.arch_shapes()[cell_type], float("inf"),
                            dtype=torch.float64)
            values = []
            for _, _, _, conv in entries:
                hw = conv.parametrizations["weight"][0].input_size or (1, 1)
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

    def _stable_rank_weights(self, sr: dict[str, Tensor]) -> ArchWeights:
        """softmax(-stable rank) over each edge's candidates (``none`` gets 0)."""
        return {cell: torch.softmax(-s, dim=1).float().to(self.device) for cell, s in sr.items()}

    # ------------------------------------------------------------------ protocol
    def end_epoch(self, epoch: int) -> dict[str, float]:
        out = super().end_epoch(epoch)
        sr = self.stable_ranks()
        if self.opts["msr_mixing"] == "stable-rank":
            self.train_weights = self._stable_rank_weights(sr)
        present = {cell for cell, _ in self.candidates}
        for cell, s in sr.items():
            finite = s[torch.isfinite(s)]
            if cell in present and finite.numel():  # mean over the candidates, for logging
                out[f"msr_stable_rank_{cell}"] = float(finite.mean())
        return out

    def derive(self) -> Genotype:
        sr = self.stable_ranks()
        concat = tuple(range(2, 2 + self.space.nodes))
        return Genotype(normal=self._derive_cell("normal", sr["normal"]),
                        reduce=self._derive_cell("reduce", sr["reduce"]),
                        normal_concat=concat, reduce_concat=concat)

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
        return {**super().state_dict(),
                "mixing": {k: v.detach().cpu() for k, v in self.train_weights.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.train_weights = {k: v.to(self.device) for k, v in state["mixing"].items()}
