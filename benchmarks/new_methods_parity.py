"""GDAS, DrNAS and PC-DARTS side by side with their authors' public code on identical state.

Imports the authors' modules from checkouts (never copied) and runs each method's defining
computation next to ours on the CPU in float64, on tiny models whose state dicts are mapped
one to one (the S3 candidates none / skip_connect / sep_conv_3x3, set as their
``PRIMITIVES``, so that every op exists on both sides with the same parameters):

* **PC-DARTS** (github.com/yuhuixu1993/PC-DARTS ``model_search.py``): the whole search
  network (3 cells, 8 channels, K=4) with the same alphas and betas: logits, loss, the
  gradients of alphas, betas and weights; the genotype (``genotype()`` vs our ``derive()``)
  on 200 random architecture states.
* **DrNAS** (github.com/xiangning-chen/DrNAS ``DARTS-space/model_search.py``, ``utils.py``):
  the Dirichlet sample (their row-by-row ``process_step_matrix`` vs our batched sampler from
  the same RNG state), the network's logits on that sample, the KL regulariser and its
  gradient, the genotype on 200 random states (theirs ranks edges including ``none``).
* **GDAS** (github.com/D-X-Y/AutoDL-Projects ``xautodl/models/cell_searchs``): the Gumbel
  sample (hard weights and chosen columns captured from their ``NASNetworkGDAS`` forward vs
  our sampler from the same RNG state), and one normal and one reduction cell's
  ``forward_gdas`` vs our cell with the single-path edge forward: output and the gradient
  of the hard weights.
* **On the NAS-Bench-201 cell** (``benchmarks/new_methods_parity_nb201.py``): GDAS against
  AutoDL's ``TinyNetworkGDAS``, DrNAS (partial channels K=4, KL) and PC-DARTS as DrNAS's
  ``201-space`` runs it (softmax, K=4, no edge normalisation) against its ``TinyNetwork``.

Usage (the repositories' git directories from ``fetch``, or checkouts):
    python benchmarks/new_methods_parity.py --gdas /work/.mirror/D-X-Y+AutoDL-Projects/repo \\
        --drnas /work/.mirror/xiangning-chen+DrNAS/repo \\
        --pc-darts /work/.mirror/yuhuixu1993+PC-DARTS/repo/.git \\
        --nb1shot1 /work/.mirror/automl+nasbench-1shot1/repo/.git
(each repository optional: only the comparisons given run). ``--nb1shot1``: GDAS and
PC-DARTS on the three NAS-Bench-1Shot1 spaces against that benchmark's own optimizers
(:mod:`nb1shot1_parity`). Prints a Markdown report
(results/benchmarks/new-methods-parity.md holds one).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from nasbench_eval.config import RunConfig
from nasbench_eval.methods import create_method
from nasbench_eval.methods.samplers import SinglePath, gumbel_hard
from nasbench_eval.resolve import resolve_config
from nasbench_eval.spaces import DartsSupernet, load_space
from nasbench_eval.spaces.darts.supernet import SearchCell

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nb1shot1_parity import report as nb1shot1_report  # noqa: E402

OPS = ["none", "skip_connect", "sep_conv_3x3"]  # S3
XAUTODL_OPS = ["none", "skip_connect", "dua_sepc_3x3"]  # the same ops by AutoDL's names
C, LAYERS, SIZE = 8, 3, 16
THEIR_MODULES = ("genotypes", "operations", "model_search", "utils", "xautodl",
                 "search_model", "search_model_gdas", "search_cells", "cell_operations",
                 "net2wider")


def extract(src: Path, into: Path) -> Path:
    """A work tree: ``src`` itself, or the HEAD of a git directory extracted into ``into``."""
    if not ((src / "HEAD").is_file() and (src / "objects").is_dir()):
        return src  # already a work tree
    archive = subprocess.run(["git", "--git-dir", str(src), "archive", "HEAD"], check=True,
                             capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


@contextmanager
def their_code(*paths: Path):
    """Their modules importable from ``paths``; ``.cuda()`` a no-op (their constructors call
    it); their modules forgotten afterwards (the repositories share module names)."""
    saved_path, saved_cuda = list(sys.path), torch.Tensor.cuda
    sys.path[:0] = [str(p) for p in paths]
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        sys.path[:] = saved_path
        torch.Tensor.cuda = saved_cuda  # type: ignore[method-assign]
        for name in list(sys.modules):
            if name.split(".")[0] in THEIR_MODULES:
                del sys.modules[name]


def copy_state(theirs: nn.Module, ours: nn.Module) -> int:
    """Copy ours into theirs entry by entry (same order, same shapes); returns the count.
    Where theirs has more entries, its extra ``bias`` vectors (AutoDL's convolutions carry a
    bias when ``affine=False``; every one feeds a batch-normalising BN, which cancels it in
    train mode) are zeroed and left out of the mapping."""
    a, b = theirs.state_dict(), ours.state_dict()
    if len(a) != len(b):
        biases = {k for k in a if k.endswith(".bias")}
        zeroed = {k: torch.zeros_like(a[k]) for k in biases}
        theirs.load_state_dict({**a, **zeroed})
        a = {k: v for k, v in theirs.state_dict().items() if k not in biases}
    if len(a) != len(b):
        raise SystemExit(f"state dicts differ in length: {len(a)} vs {len(b)}")
    new = {}
    for (ka, va), (kb, vb) in zip(a.items(), b.items()):
        if va.shape != vb.shape:
            raise SystemExit(f"shape mismatch {ka} {tuple(va.shape)} vs {kb} {tuple(vb.shape)}")
        new[ka] = vb.clone()
    theirs.load_state_dict(new, strict=False)
    return len(new)


def our_method(name: str, **options):
    space = load_space("s3")
    cfg = resolve_config(RunConfig(method=name, space="s3", layers=LAYERS, channels=C,
                                   epochs=4, method_options=options))
    torch.manual_seed(0)
    net = DartsSupernet(space, channels=C, layers=LAYERS, num_classes=10, in_channels=3)
    m = create_method(name)
    m.setup(net, space, cfg, steps_per_epoch=2)
    net.double()
    m.alphas = {k: v.detach().double().requires_grad_() for k, v in m.alphas.items()}
    m.betas = {k: v.detach().double().requires_grad_() for k, v in m.betas.items()}
    return m, net


def batch():
    g = torch.Generator().manual_seed(3)
    return (torch.randn(4, 3, SIZE, SIZE, generator=g, dtype=torch.float64),
            torch.randint(0, 10, (4,), generator=g))


def maxdiff(a, b) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def genotype_pairs(g) -> tuple:
    return tuple(tuple(p) for p in g.normal), tuple(tuple(p) for p in g.reduce)


def random_states(m, n: int, scale: float):
    g = torch.Generator().manual_seed(11)
    for _ in range(n):
        with torch.no_grad():
            for a in [*m.alphas.values(), *m.betas.values()]:
                a.copy_(scale * torch.randn(a.shape, generator=g, dtype=a.dtype))
        yield


# ----------------------------------------------------------------------------- PC-DARTS

def pc_darts(tree: Path) -> list[str]:
    out = ["## PC-DARTS", ""]
    with their_code(tree):
        import genotypes
        genotypes.PRIMITIVES = list(OPS)
        import model_search
        m, net = our_method("pc-darts")
        torch.manual_seed(0)
        theirs = model_search.Network(C, 10, LAYERS, nn.CrossEntropyLoss()).double()
        n = copy_state(theirs, net)
        g = torch.Generator().manual_seed(5)
        for k in ("normal", "reduce"):
            with torch.no_grad():
                m.alphas[k].copy_(0.5 * torch.randn(m.alphas[k].shape, generator=g))
                m.betas[k].copy_(0.5 * torch.randn(m.betas[k].shape, generator=g))
        theirs.alphas_normal = m.alphas["normal"].detach().clone().requires_grad_()
        theirs.alphas_reduce = m.alphas["reduce"].detach().clone().requires_grad_()
        theirs.betas_normal = m.betas["normal"].detach().clone().requires_grad_()
        theirs.betas_reduce = m.betas["reduce"].detach().clone().requires_grad_()
        x, y = batch()
        net.train(), theirs.train()
        l_ours, logits_ours = m.loss((x, y), m.normalise(m.sample(m.alphas)))
        logits_theirs = theirs(x)
        l_theirs = nn.functional.cross_entropy(logits_theirs, y)
        arch_o = [m.alphas["normal"], m.alphas["reduce"], m.betas["normal"], m.betas["reduce"]]
        arch_t = [theirs.alphas_normal, theirs.alphas_reduce, theirs.betas_normal,
                  theirs.betas_reduce]
        g_o = torch.autograd.grad(l_ours, arch_o + list(net.parameters()))
        g_t = torch.autograd.grad(l_theirs, arch_t + list(theirs.parameters()))
        out += [f"State entries mapped: {n}. Train mode, batch 4 of 3x{SIZE}x{SIZE}, float64.",
                "", "| quantity | max abs difference |", "|---|---|",
                f"| logits | {maxdiff([logits_ours], [logits_theirs]):.2e} |",
                f"| loss | {abs(l_ours.item() - l_theirs.item()):.2e} |",
                f"| d loss / d alpha (normal, reduce) | {maxdiff(g_o[:2], g_t[:2]):.2e} |",
                f"| d loss / d beta (normal, reduce) | {maxdiff(g_o[2:4], g_t[2:4]):.2e} |",
                f"| d loss / d weights (all {len(g_o) - 4} tensors) | "
                f"{maxdiff(g_o[4:], g_t[4:]):.2e} |"]
        same = total = 0
        for scale in (1e-3, 1.0):
            for _ in random_states(m, 100, scale):
                for k in ("normal", "reduce"):
                    setattr(theirs, f"alphas_{k}", m.alphas[k].detach().clone())
                    setattr(theirs, f"betas_{k}", m.betas[k].detach().clone())
                gt = theirs.genotype()
                theirs_pairs = (tuple(tuple(p) for p in gt.normal),
                                tuple(tuple(p) for p in gt.reduce))
                # the same cells as sets per node (both print the two kept edges strongest
                # first, ties aside)
                ours_pairs = genotype_pairs(m.derive())
                same += _same_cells(theirs_pairs, ours_pairs)
                total += 1
        out += ["", f"Genotype (their `genotype()` vs our `derive()`): the same cells on "
                f"{same} of {total} random states (alphas and betas N(0, s^2), s = 1e-3 "
                f"and 1)."]
    return out


def _same_cells(a, b) -> bool:
    def nodes(cell):
        return [frozenset(cell[2 * i: 2 * i + 2]) for i in range(len(cell) // 2)]
    return all(nodes(x) == nodes(y) for x, y in zip(a, b))


# ----------------------------------------------------------------------------- DrNAS

def drnas(tree: Path) -> list[str]:
    out = ["## DrNAS", ""]
    with their_code(tree / "DARTS-space", tree):
        import genotypes
        genotypes.PRIMITIVES = list(OPS)
        import model_search
        import utils as their_utils
        from torch.distributions import Dirichlet
        m, net = our_method("drnas", kl_scale=0.5)
        torch.manual_seed(0)
        theirs = model_search.Network(C, 10, LAYERS, nn.CrossEntropyLoss(), k=1,
                                      reg_type="kl", reg_scale=0.5).double()
        n = copy_state(theirs, net)
        g = torch.Generator().manual_seed(5)
        for k in ("normal", "reduce"):
            with torch.no_grad():
                m.alphas[k].copy_(0.7 * torch.randn(m.alphas[k].shape, generator=g))
            setattr(theirs, f"alphas_{k}", m.alphas[k].detach().clone().requires_grad_())
            setattr(theirs, f"anchor_{k}",
                    Dirichlet(torch.ones_like(m.alphas[k].detach())))  # float64 like q
        theirs._arch_parameters = [theirs.alphas_normal, theirs.alphas_reduce]
        # the sample from one RNG state: their row-by-row draw vs our batched one
        torch.manual_seed(7)
        w_t = {k: their_utils.process_step_matrix(getattr(theirs, f"alphas_{k}"), "dirichlet",
                                                  None) for k in ("normal", "reduce")}
        torch.manual_seed(7)
        w_o = m.sample(m.alphas)
        d_sample = maxdiff(list(w_o.values()), list(w_t.values()))
        x, y = batch()
        net.train(), theirs.train()
        torch.manual_seed(9)
        logits_theirs = theirs(x)
        torch.manual_seed(9)
        logits_ours = m.loss((x, y), m.sample(m.alphas))[1]
        kl_t = theirs._get_kl_reg()
        kl_o = m.sampler.regulariser(m.alphas)
        g_t = torch.autograd.grad(kl_t, [theirs.alphas_normal, theirs.alphas_reduce])
        g_o = torch.autograd.grad(kl_o, [m.alphas["normal"], m.alphas["reduce"]])
        out += [f"State entries mapped: {n}. Train mode, float64.", "",
                "| quantity | max abs difference |", "|---|---|",
                f"| Dirichlet sample from one RNG state (theirs per row, ours batched) | "
                f"{d_sample:.2e} |",
                f"| logits on a sample from one RNG state | "
                f"{maxdiff([logits_ours], [logits_theirs]):.2e} |",
                f"| KL regulariser (reg_scale 0.5) | {abs(kl_t.item() - kl_o.item()):.2e} |",
                f"| its gradient w.r.t. alpha | {maxdiff(g_o, g_t):.2e} |"]
        same = total = 0
        for scale in (1e-3, 1.0):
            for _ in random_states(m, 100, scale):
                for k in ("normal", "reduce"):
                    setattr(theirs, f"alphas_{k}", m.alphas[k].detach().clone())
                gt = theirs.genotype()
                same += _same_cells((tuple(map(tuple, gt.normal)), tuple(map(tuple, gt.reduce))),
                                    genotype_pairs(m.derive()))
                total += 1
        out += ["", f"Genotype (their `genotype()`, which ranks edges by their strongest "
                f"weight *including* `none`, vs our `derive()`, which excludes it): the same "
                f"cells on {same} of {total} random states (alphas N(0, s^2), s = 1e-3 and 1)."]
    return out


# ----------------------------------------------------------------------------- GDAS

def gdas(tree: Path) -> list[str]:
    out = ["## GDAS", ""]
    with their_code(tree):
        from xautodl.models.cell_searchs import search_cells
        from xautodl.models.cell_searchs.search_model_gdas_nasnet import NASNetworkGDAS
        torch.manual_seed(0)
        theirs_net = NASNetworkGDAS(4, 1, 4, 4, 3, 10, list(XAUTODL_OPS), False, True).double()
        m, net = our_method("gdas")
        tau = 3.0
        m.sampler.tau = tau
        theirs_net.set_tau(tau)
        with torch.no_grad():
            theirs_net.arch_normal_parameters.copy_(m.alphas["normal"])
            theirs_net.arch_reduce_parameters.copy_(m.alphas["reduce"])
        captured = {}
        original = search_cells.NASNetSearchCell.forward_gdas

        def capture(self, s0, s1, hardwts, index):
            captured.setdefault("reduce" if self.reduction else "normal", (hardwts, index))
            return original(self, s0, s1, hardwts, index)

        search_cells.NASNetSearchCell.forward_gdas = capture
        try:
            torch.manual_seed(13)
            theirs_net(batch()[0])
        finally:
            search_cells.NASNetSearchCell.forward_gdas = original
        torch.manual_seed(13)
        w_o = m.sample(m.alphas)
        d_w = maxdiff([w_o["normal"], w_o["reduce"]],
                      [captured["normal"][0], captured["reduce"][0]])
        same_idx = all(torch.equal(m.sampler.index[k], captured[k][1].squeeze(-1))
                       for k in ("normal", "reduce"))
        rows = [f"| hard weights of one sample from one RNG state (tau {tau}) | {d_w:.2e} |",
                f"| chosen columns | {'identical' if same_idx else 'DIFFERENT'} |"]
        for reduction in (False, True):
            cell_t = search_cells.NASNetSearchCell(list(XAUTODL_OPS), 4, 4, C, C, C, reduction, False,
                                                   False, True).double()
            cell_o = SearchCell(load_space("s3"), "reduce" if reduction else "normal", C, C, C,
                                False).double()
            n = copy_state(cell_t, cell_o)
            k = "reduce" if reduction else "normal"
            a = (0.8 * torch.randn(14, len(OPS), generator=torch.Generator().manual_seed(
                17 + reduction), dtype=torch.float64)).requires_grad_()
            torch.manual_seed(19)
            hard, index = gumbel_hard(a, tau)
            sp = SinglePath()
            sp.load({k: index})
            cell_o.edge_forward = sp
            g = torch.Generator().manual_seed(23)
            s0 = torch.randn(2, C, 8, 8, generator=g, dtype=torch.float64)
            s1 = torch.randn(2, C, 8, 8, generator=g, dtype=torch.float64)
            cell_o.train(), cell_t.train()
            y_o = cell_o(s0, s1, hard)
            y_t = cell_t.forward_gdas(s0, s1, hard, index.unsqueeze(-1))
            proj = torch.randn(y_o.shape, generator=g, dtype=torch.float64)
            (g_o,) = torch.autograd.grad((y_o * proj).sum(), a, retain_graph=True)
            (g_t,) = torch.autograd.grad((y_t * proj).sum(), a)
            rows += [f"| {k} cell output ({n} state entries mapped) | "
                     f"{maxdiff([y_o], [y_t]):.2e} |",
                     f"| {k} cell: gradient w.r.t. alpha through the hard weights | "
                     f"{maxdiff([g_o], [g_t]):.2e} |"]
        out += ["Float64, train mode.", "", "| quantity | max abs difference |", "|---|---|",
                *rows]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gdas", type=Path)
    ap.add_argument("--drnas", type=Path)
    ap.add_argument("--pc-darts", type=Path)
    ap.add_argument("--nb1shot1", type=Path, help="automl/nasbench-1shot1: its GDAS and "
                    "PC-DARTS on the NAS-Bench-1Shot1 spaces (benchmarks/nb1shot1_parity.py)")
    args = ap.parse_args(argv)
    torch.set_default_dtype(torch.float64)
    with tempfile.TemporaryDirectory() as tmp:
        lines = ["# GDAS, DrNAS and PC-DARTS against the authors' code", "",
                 "`python benchmarks/new_methods_parity.py " + " ".join(sys.argv[1:]) + "`", ""]
        print("\n".join(lines), flush=True)
        trees = {}
        for fn, src, sub in ((pc_darts, args.pc_darts, "pc"), (drnas, args.drnas, "drnas"),
                             (gdas, args.gdas, "gdas"),
                             (nb1shot1_report, args.nb1shot1, "nb1s1")):
            if src is not None:  # the comparisons whose repositories are given
                trees[sub] = extract(src, Path(tmp) / sub)
                print("\n".join(fn(trees[sub]) + [""]), flush=True)
        # the NAS-Bench-201 cell (new_methods_parity_nb201.py) with the same checkouts
        from new_methods_parity_nb201 import drnas_nb201, gdas_nb201
        for fn, sub in ((gdas_nb201, "gdas"), (drnas_nb201, "drnas")):
            if sub in trees:
                print("\n".join(fn(trees[sub], their_code) + [""]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
