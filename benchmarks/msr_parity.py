"""MSR-DARTS side by side with the public code (github.com/mtaecchhi/msrdarts) on identical state.

Runs the authors' ``model_search.py`` (imported from a checkout, never copied) next to our
``msr`` method on the same weights: a supernet of 5 cells (reduction cells at 1 and 3), 4
channels, 3x16x16 inputs, float64. Compared:

1. the stable rank of every candidate's last conv in every cell (their ``MixedOp.
   calc_stable_ranks`` vs our ``Msr.cell_stable_ranks``), split into the edges where both
   rank on the same input size and the stride-1 edges of reduction cells, which the public
   code ranks on the cell *input* size (4x the pixels; a known difference we do not copy);
   on those, also their function evaluated on the real size;
2. the ``stable-rank`` mixing weights, softmax(-rank) per edge in float32 as their
   ``MixedOp.forward`` (computed here from each side's ranks);
3. the derivation: their ``NetworkCIFAR.genotype()`` (per-cell topologies and the
   ``arch_mean_min`` summary) against our ``Msr.derive()``, on their own rank tables and
   ours.

Usage (the repository's git directory from ``fetch``, or any checkout):
    python benchmarks/msr_parity.py /work/.mirror/mtaecchhi+msrdarts/repo
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nasbench_eval.config import RunConfig
from nasbench_eval.methods import create_method
from nasbench_eval.resolve import resolve_config
from nasbench_eval.spaces import DartsSupernet, load_space
from nasbench_eval.spectral import raw_weight

LAYERS, CHANNELS, SIZE = 5, 4, 16


def checkout(src: Path, into: Path) -> Path:
    """A work tree of the public code: ``src`` itself, or extracted from a bare git dir."""
    if (src / "model_search.py").exists():
        return src
    archive = subprocess.run(["git", "--git-dir", str(src), "archive", "HEAD"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def import_public_code(tree: Path):
    """Their modules, with the shims needed to import them (no code of theirs changed):
    ``np.complex`` (removed in NumPy 1.24), and ``Genotype_normal`` / ``Genotype_reduce``,
    which ``model_search.py`` imports from ``genotypes.py`` but the repository defines only
    in the files its ``train_search_cifar.py`` writes (the same two namedtuples)."""
    from collections import namedtuple
    if not hasattr(np, "complex"):
        np.complex = complex  # type: ignore[attr-defined]
    sys.path.insert(0, str(tree))
    import genotypes  # noqa: E402  (theirs)
    genotypes.Genotype_normal = namedtuple("Genotype_normal", "normal normal_concat")
    genotypes.Genotype_reduce = namedtuple("Genotype_reduce", "reduce reduce_concat")
    import model_search  # noqa: E402  (theirs)
    from spectralnorm import spectral_norm_utils  # noqa: E402  (theirs)
    return model_search, spectral_norm_utils


def build_ours(seed: int):
    m = create_method("msr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        space = m.adapt_space(load_space("darts"))
    cfg = resolve_config(RunConfig(method="msr", space="darts", layers=LAYERS, channels=CHANNELS,
                                   epochs=2, seed=seed,
                                   method_options={"msr_mixing": "stable-rank"}))
    torch.manual_seed(seed)
    net = DartsSupernet(space, channels=CHANNELS, layers=LAYERS, num_classes=10, in_channels=3)
    m.setup(net, space, cfg, steps_per_epoch=2)
    return m, net, space


def copy_candidate_weights(ours_net, theirs, space) -> int:
    """Our candidates' conv weights into theirs (raw weights into ``weight_orig``)."""
    n = 0
    for cand in ours_net.candidates():
        e = cand.edge
        mixed = theirs.cells[cand.cell]._ops[e]
        k = list(PRIMS).index(cand.op)
        our_convs = [c for c in cand.module.modules() if isinstance(c, nn.Conv2d)]
        their_convs = [c for c in mixed._ops[k].modules() if isinstance(c, nn.Conv2d)]
        assert len(our_convs) == len(their_convs), (cand, len(our_convs), len(their_convs))
        for a, b in zip(our_convs, their_convs):
            w = raw_weight(a).detach()
            assert b.weight_orig.shape == w.shape
            b.weight_orig.data.copy_(w)
            n += 1
    return n


def main() -> None:
    global PRIMS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", type=Path, help="msrdarts checkout or git directory")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    with tempfile.TemporaryDirectory() as tmp:
        tree = checkout(args.repo, Path(tmp))
        model_search, sn_utils = import_public_code(tree)
        from genotypes import PRIMITIVES_SPECTRAL  # noqa: E402  (theirs)
        PRIMS = PRIMITIVES_SPECTRAL
        worst = {"same": 0.0, "real": 0.0, "mix": 0.0}
        ratios: list[float] = []
        geno_same = geno_rule = mean_rule = mean_normal = 0
        for seed in range(args.seeds):
            ours, net, space = build_ours(seed)
            torch.manual_seed(seed)
            theirs = model_search.NetworkCIFAR(CHANNELS, 10, LAYERS, nn.CrossEntropyLoss(),
                                               shape=(SIZE, SIZE))
            n = copy_candidate_weights(net, theirs, space)
            x = torch.randn(2, 3, SIZE, SIZE)
            sizes = ours._input_sizes(x)
            our_rows = ours.cell_stable_ranks(sizes)
            theirs.update_stable_ranks()
            affected = 0
            for ci, (cell_type, sr) in enumerate(our_rows):
                tcell = theirs.cells[ci]
                for e, mixed in enumerate(tcell._ops):
                    t = torch.tensor(mixed.stable_ranks)
                    o = torch.tensor([sr[e, list(space.edge_ops[cell_type][e]).index(p)].item()
                                      for p in PRIMS])
                    stride1_in_reduce = tcell.reduction and space.edges[e][0] >= 2
                    if stride1_in_reduce:
                        affected += 1
                        ratios += (t / o).tolist()
                        h, w = mixed.shape[0] // 2, mixed.shape[1] // 2
                        real = torch.tensor([sn_utils.calculate_stable_rank(
                            [c for c in op.modules() if isinstance(c, nn.Conv2d)][-1], (h, w))
                            for op in mixed._ops])
                        worst["real"] = max(worst["real"], ((real - o).abs() / o).max().item())
                    else:
                        worst["same"] = max(worst["same"], ((t - o).abs() / o).max().item())
                        wt = torch.softmax(-t.float(), 0)
                        wo = torch.softmax(-o.float(), 0)
                        worst["mix"] = max(worst["mix"], (wt - wo).abs().max().item())
            # derivation: their genotype() vs our rule on their tables, and on ours
            normals, reduces, mean = theirs.genotype()
            their_cells = [g.reduce if c.reduction else g.normal for c, g in zip(
                theirs.cells, _interleave(theirs, normals, reduces))]
            for ci, (cell_type, _) in enumerate(our_rows):
                table = torch.tensor(np.array(theirs.cells[ci].extract_arch()[1]))
                table = _to_ours(table, space, cell_type)
                rule = [tuple(p) for p in ours._derive_cell(cell_type, table)]
                geno_rule += rule == [tuple(p) for p in their_cells[ci]]
            with torch.no_grad():  # our convs learn their input sizes from a forward
                net.eval()(x, ours._sum_weights())
            derived = ours.derive()
            for cell_type, table, their_pairs in (("normal", theirs.normal_mean, mean.normal),
                                                  ("reduce", theirs.reduce_mean, mean.reduce)):
                rule = ours._derive_cell(cell_type, _to_ours(torch.tensor(table), space, cell_type))
                mean_rule += [tuple(p) for p in rule] == [tuple(p) for p in their_pairs]
            mean_normal += [tuple(p) for p in derived.normal] == [tuple(p) for p in mean.normal]
            ours_cells = [list(p) for _, p in derived.cells]
            same = [ci for ci, c in enumerate(theirs.cells) if not c.reduction]
            geno_same += sum(ours_cells[ci] == [tuple(p) for p in their_cells[ci]] for ci in same)
            print(f"seed {seed}: {n} convs mapped, {len(our_rows)} cells, {affected} stride-1 "
                  f"edges of reduction cells")
        cells = args.seeds * LAYERS
        normal_cells = args.seeds * sum(1 for i in range(LAYERS)
                                        if i not in (LAYERS // 3, 2 * LAYERS // 3))
        print(f"stable ranks, same input size: max relative difference {worst['same']:.2e}")
        print(f"stable ranks, stride-1 edges of reduction cells: theirs / ours = "
              f"{min(ratios):.6f} .. {max(ratios):.6f} (their size is the cell input's); "
              f"their function on the real size: max relative difference {worst['real']:.2e}")
        print(f"stable-rank mixing weights (float32 softmax), same size: max abs difference "
              f"{worst['mix']:.2e}")
        print(f"derivation rule on their rank tables: {geno_rule}/{cells} cells identical")
        print(f"arch_mean_min (shared genotype) rule on their mean tables: "
              f"{mean_rule}/{2 * args.seeds} identical; shared normal cell, our ranks vs "
              f"theirs: {mean_normal}/{args.seeds} identical")
        print(f"per-cell genotypes of normal cells (our ranks vs theirs): "
              f"{geno_same}/{normal_cells} identical")


def _interleave(theirs, normals, reduces):
    """Their per-type genotype lists back in cell order."""
    n, r = iter(normals), iter(reduces)
    return [next(r) if c.reduction else next(n) for c in theirs.cells]


def _to_ours(table: torch.Tensor, space, cell_type: str) -> torch.Tensor:
    """Their (edges, 4) rank table in our column layout (+inf on columns they lack)."""
    out = torch.full(space.arch_shapes()[cell_type], float("inf"), dtype=torch.float64)
    for e, ops in enumerate(space.edge_ops[cell_type]):
        for k, p in enumerate(PRIMS):
            out[e, list(ops).index(p)] = table[e, k]
    return out


PRIMS: list[str] = []

if __name__ == "__main__":
    main()
