"""GDAS, DrNAS and PC-DARTS on the NAS-Bench-201 cell, side by side with the public code.

The NAS-Bench-201 half of ``benchmarks/new_methods_parity.py`` (which calls it): the authors'
modules are imported from checkouts (never copied) and run next to ours on the CPU in
float64, on a tiny search network (N = 1 cell per stage, 8 channels, 16x16 inputs) whose
state dicts are mapped one to one:

* **GDAS** (AutoDL-Projects ``xautodl/models/cell_searchs/search_model_gdas.py``,
  ``TinyNetworkGDAS`` with ``NAS201SearchCell.forward_gdas``): the whole network on one
  Gumbel draw from one RNG state against ours with ``--gdas-unselected sum`` (their
  NAS-Bench-201 cell adds the unsampled hard weights as scalars): hard weights, chosen
  columns, logits, loss, the gradients of alpha and of every weight.
* **DrNAS** (DrNAS ``201-space/search_model.py``, ``TinyNetwork`` with
  ``NAS201SearchCell_PartialChannel``, species ``dirichlet``, k = 4, reg_type ``kl``):
  ours with ``--partial-channels 4 --kl-scale``: the Dirichlet sample, logits and loss on it,
  the gradients of alpha and every weight, the KL regulariser and its gradient, the genotype.
* **PC-DARTS as DrNAS's repository runs it on NAS-Bench-201** (the same ``TinyNetwork``,
  species ``softmax``, k = 4: partial channels, no edge normalisation) against ours
  (``--method pc-darts --edge-norm false``): logits, loss and gradients.

Their 201 code's ``.cuda()`` calls are no-ops here (``their_code``).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nasbench_eval.config import RunConfig
from nasbench_eval.methods import create_method
from nasbench_eval.resolve import resolve_config
from nasbench_eval.spaces import load_space

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
C, N, SIZE, CLASSES = 8, 1, 16, 10


def our_method(name: str, **options):
    """Our method on a float64 nb201 supernet of N cells per stage, C channels."""
    space = load_space("nb201")
    cfg = resolve_config(RunConfig(method=name, space="nb201", layers=3 * N, channels=C,
                                   epochs=4, method_options=options))
    torch.manual_seed(0)
    net = space.build_supernet(channels=C, layers=3 * N, num_classes=CLASSES, in_channels=3)
    m = create_method(name)
    m.setup(net, space, cfg, steps_per_epoch=2)
    net.double()
    m.alphas = {k: v.detach().double().requires_grad_() for k, v in m.alphas.items()}
    m.betas = {k: v.detach().double().requires_grad_() for k, v in m.betas.items()}
    return m, net


def map_state(theirs: nn.Module, ours: nn.Module, skip: tuple[str, ...]) -> int:
    """Copy our state into theirs entry by entry (same order and shapes), leaving out their
    entries named in ``skip`` (the architecture parameter they register as model state) and
    the biases of their convolutions, which are zeroed (AutoDL gives a convolution a bias
    when its BN has no affine parameters; that BN normalises it away in train mode).
    Returns the number of entries mapped."""
    conv_biases = {f"{name}.bias" for name, mod in theirs.named_modules()
                   if isinstance(mod, nn.Conv2d) and mod.bias is not None}
    with torch.no_grad():
        for name, mod in theirs.named_modules():
            if f"{name}.bias" in conv_biases:
                mod.bias.zero_()
    a = {k: v for k, v in theirs.state_dict().items() if k not in conv_biases and k not in skip}
    b = ours.state_dict()
    if len(a) != len(b):
        raise SystemExit(f"state dicts differ in length: {len(a)} vs {len(b)}")
    new = {}
    for (ka, va), (kb, vb) in zip(a.items(), b.items()):
        if va.shape != vb.shape:
            raise SystemExit(f"shape mismatch {ka} {tuple(va.shape)} vs {kb} {tuple(vb.shape)}")
        new[ka] = vb.clone()
    theirs.load_state_dict(new, strict=False)
    return len(new)


def batch():
    g = torch.Generator().manual_seed(3)
    return (torch.randn(4, 3, SIZE, SIZE, generator=g, dtype=torch.float64),
            torch.randint(0, CLASSES, (4,), generator=g))


def maxdiff(a, b) -> float:
    return max(float((x - y).detach().abs().max()) for x, y in zip(a, b))


def their_params(theirs: nn.Module, skip: tuple[str, ...]) -> tuple[list, list]:
    """Their parameters in state order: (those mapped to ours, their zeroed conv biases)."""
    conv_biases = {f"{name}.bias" for name, mod in theirs.named_modules()
                   if isinstance(mod, nn.Conv2d) and mod.bias is not None}
    mapped = [p for n, p in theirs.named_parameters() if n not in skip and n not in conv_biases]
    biases = [p for n, p in theirs.named_parameters() if n in conv_biases]
    return mapped, biases


def compare_step(l_o, l_t, logits_o, logits_t, arch_o, arch_t, net, theirs,
                 skip: tuple[str, ...]) -> list[tuple[str, float]]:
    """Rows: logits, loss, d loss / d alpha, d loss / d every mapped weight, and the
    gradient their zeroed conv biases get (BN cancels them: ~0)."""
    mapped, biases = their_params(theirs, skip)
    ours = list(net.parameters())
    # unsampled candidates (GDAS) take no part: their gradient is zero on both sides
    g_o = torch.autograd.grad(l_o, [arch_o, *ours], allow_unused=True, materialize_grads=True)
    g_t = torch.autograd.grad(l_t, [arch_t, *mapped, *biases], allow_unused=True,
                              materialize_grads=True)
    rows = [("logits", maxdiff([logits_o], [logits_t])),
            ("loss", abs(l_o.item() - l_t.item())),
            ("d loss / d alpha", maxdiff(g_o[:1], g_t[:1])),
            (f"d loss / d weights (all {len(ours)} tensors)",
             maxdiff(g_o[1:], g_t[1:1 + len(mapped)]))]
    if biases:
        rows.append((f"their zeroed conv biases' gradient ({len(biases)} tensors; BN cancels "
                     f"them, absent here)",
                     max(float(g.abs().max()) for g in g_t[1 + len(mapped):])))
    return rows


def table(rows: list[tuple[str, float]]) -> list[str]:
    return ["| quantity | max abs difference |", "|---|---|",
            *(f"| {q} | {v:.2e} |" for q, v in rows)]


def random_alpha(shape, seed: int, scale: float = 0.8) -> torch.Tensor:
    return scale * torch.randn(shape, dtype=torch.float64,
                               generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- GDAS

def gdas_nb201(tree: Path, their_code) -> list[str]:
    out = ["## GDAS on the NAS-Bench-201 cell", ""]
    with their_code(tree):
        from xautodl.models.cell_searchs.search_cells import NAS201SearchCell
        from xautodl.models.cell_searchs.search_model_gdas import TinyNetworkGDAS
        torch.manual_seed(0)
        theirs = TinyNetworkGDAS(C, N, 4, CLASSES, list(NB201_OPS), False, True).double()
        m, net = our_method("gdas", gdas_unselected="sum")
        skip = ("arch_parameters",)
        n = map_state(theirs, net, skip)
        tau = 3.0
        m.sampler.tau = tau
        theirs.set_tau(tau)
        with torch.no_grad():
            m.alphas["cell"].copy_(random_alpha(m.alphas["cell"].shape, 5))
            theirs.arch_parameters.copy_(m.alphas["cell"])
        x, y = batch()
        net.train(), theirs.train()
        captured = {}
        original = NAS201SearchCell.forward_gdas

        def capture(self, inputs, hardwts, index):
            captured.setdefault("w", (hardwts, index))
            return original(self, inputs, hardwts, index)

        NAS201SearchCell.forward_gdas = capture
        try:
            torch.manual_seed(13)
            logits_t = theirs(x)[1]
        finally:
            NAS201SearchCell.forward_gdas = original
        torch.manual_seed(13)
        w_o = m.sample(m.alphas)
        with m.training_edges():
            l_o, logits_o = m.loss((x, y), w_o)
        l_t = nn.functional.cross_entropy(logits_t, y)
        hard_t, index_t = captured["w"]
        same_idx = torch.equal(m.sampler.index["cell"], index_t.squeeze(-1))
        rows = [("hard weights of one Gumbel draw from one RNG state",
                 maxdiff([w_o["cell"]], [hard_t])),
                *compare_step(l_o, l_t, logits_o, logits_t, m.alphas["cell"],
                              theirs.arch_parameters, net, theirs, skip)]
        out += [f"State entries mapped: {n}. Ours: `--method gdas --gdas-unselected sum`. "
                f"Train mode, batch 4 of 3x{SIZE}x{SIZE}, float64, tau {tau}; chosen columns "
                f"{'identical' if same_idx else 'DIFFERENT'}.", "", *table(rows)]
        # the deviation of our default (--gdas-unselected none, their DARTS-space cell's rule)
        torch.manual_seed(13)
        logits_t = theirs(x)[1]
        (g_t,) = torch.autograd.grad(nn.functional.cross_entropy(logits_t, y),
                                     theirs.arch_parameters)
        m.single_path.unselected = "none"
        torch.manual_seed(13)
        w_o = m.sample(m.alphas)
        with m.training_edges():
            l_n, logits_n = m.loss((x, y), w_o)
        (g_n,) = torch.autograd.grad(l_n, m.alphas["cell"])
        out += ["", f"Deviation of our default `--gdas-unselected none` (the rule of their "
                f"DARTS-space cell) from this NAS-Bench-201 cell, same draw: logits "
                f"{maxdiff([logits_n], [logits_t]):.2e} (the forward is the same), "
                f"d loss / d alpha {maxdiff([g_n], [g_t]):.2e} (their largest entry "
                f"{float(g_t.abs().max()):.2e}): the unsampled columns' gradient, which "
                f"`sum` adds. `studies/new-methods-nb201.toml` runs gdas with `sum`."]
    return out


# ----------------------------------------------------------------------------- DrNAS, PC-DARTS

def drnas_nb201(tree: Path, their_code) -> list[str]:
    out = ["## DrNAS and PC-DARTS on the NAS-Bench-201 cell (DrNAS's `201-space`)", ""]
    with their_code(tree / "201-space", tree):
        from torch.distributions import Dirichlet
        import search_model
        import utils as their_utils
        skip = ("_arch_parameters",)
        # DrNAS: Dirichlet, partial channels k = 4, KL regulariser
        scale = 0.5
        torch.manual_seed(0)
        theirs = search_model.TinyNetwork(C, N, 4, CLASSES, nn.CrossEntropyLoss(),
                                          list(NB201_OPS), k=4, species="dirichlet",
                                          reg_type="kl", reg_scale=scale).double()
        m, net = our_method("drnas", partial_channels=4, kl_scale=scale)
        n = map_state(theirs, net, skip)
        with torch.no_grad():
            m.alphas["cell"].copy_(random_alpha(m.alphas["cell"].shape, 5))
            theirs._arch_parameters.copy_(m.alphas["cell"])
        theirs.anchor = Dirichlet(torch.ones_like(m.alphas["cell"].detach()))  # float64
        torch.manual_seed(7)
        w_t = their_utils.process_step_matrix(theirs._arch_parameters, "dirichlet", None)
        torch.manual_seed(7)
        w_o = m.sample(m.alphas)["cell"]
        x, y = batch()
        net.train(), theirs.train()
        torch.manual_seed(9)
        logits_t = theirs(x)
        torch.manual_seed(9)
        l_o, logits_o = m.loss((x, y), m.sample(m.alphas))
        l_t = nn.functional.cross_entropy(logits_t, y)
        rows = [("Dirichlet sample from one RNG state (theirs per row, ours batched)",
                 maxdiff([w_o], [w_t])),
                *compare_step(l_o, l_t, logits_o, logits_t, m.alphas["cell"],
                              theirs._arch_parameters, net, theirs, skip)]
        kl_t, kl_o = theirs._get_kl_reg(), m.sampler.regulariser(m.alphas)
        (gk_t,) = torch.autograd.grad(kl_t, theirs._arch_parameters)
        (gk_o,) = torch.autograd.grad(kl_o, m.alphas["cell"])
        rows += [(f"KL regulariser (reg_scale {scale})", abs(kl_t.item() - kl_o.item())),
                 ("its gradient w.r.t. alpha", maxdiff([gk_o], [gk_t]))]
        same = total = 0
        g = torch.Generator().manual_seed(11)
        for s in (1e-3, 1.0):
            for _ in range(100):
                a = s * torch.randn(m.alphas["cell"].shape, generator=g, dtype=torch.float64)
                with torch.no_grad():
                    m.alphas["cell"].copy_(a)
                    theirs._arch_parameters.copy_(a)
                same += theirs.genotype().tostr() == m.derive().arch_str()
                total += 1
        out += [f"DrNAS: state entries mapped: {n}. Ours: `--method drnas --partial-channels 4 "
                f"--kl-scale {scale}`; theirs: `TinyNetwork(k=4, species='dirichlet', "
                f"reg_type='kl')`. Train mode, batch 4 of 3x{SIZE}x{SIZE}, float64.", "",
                *table(rows), "",
                f"Genotype (their `genotype()` vs our `derive()`, both the argmax of every "
                f"edge, `none` included): the same cell on {same} of {total} random states "
                f"(alphas N(0, s^2), s = 1e-3 and 1)."]
        # PC-DARTS as DrNAS's repository runs it on NAS-Bench-201: softmax, k = 4, no beta
        torch.manual_seed(0)
        theirs = search_model.TinyNetwork(C, N, 4, CLASSES, nn.CrossEntropyLoss(),
                                          list(NB201_OPS), k=4, species="softmax").double()
        m, net = our_method("pc-darts", edge_norm=False)
        n = map_state(theirs, net, skip)
        with torch.no_grad():
            m.alphas["cell"].copy_(random_alpha(m.alphas["cell"].shape, 6))
            theirs._arch_parameters.copy_(m.alphas["cell"])
        net.train(), theirs.train()
        logits_t = theirs(x)
        l_o, logits_o = m.loss((x, y), m.normalise(m.sample(m.alphas)))
        l_t = nn.functional.cross_entropy(logits_t, y)
        rows = compare_step(l_o, l_t, logits_o, logits_t, m.alphas["cell"],
                            theirs._arch_parameters, net, theirs, skip)
        out += ["", f"PC-DARTS: state entries mapped: {n}. Ours: `--method pc-darts "
                f"--edge-norm false` (K = 4); theirs: `TinyNetwork(k=4, species='softmax')`. "
                f"Our bypass is multiplied by the row sum of the weights (1 up to rounding "
                f"here; PC-DARTS's beta scales it), theirs is not: within the differences "
                f"below.", "", *table(rows)]
        # the deviation of our preset (edge normalisation on) from their beta-less cell
        m, net = our_method("pc-darts")
        map_state(theirs, net, skip)
        with torch.no_grad():
            m.alphas["cell"].copy_(random_alpha(m.alphas["cell"].shape, 6))
            theirs._arch_parameters.copy_(m.alphas["cell"])
        logits_t = theirs(x)
        logits_o = m.loss((x, y), m.normalise(m.sample(m.alphas)))[1]
        scale = m.normalise({"cell": torch.ones_like(m.alphas["cell"])})["cell"][:, 0]
        out += ["", f"Deviation of our preset (`--edge-norm`, on by default) from their "
                f"beta-less cell, at the initial beta (1e-3 N(0, 1)): every edge into node t "
                f"is scaled by softmax(beta) ~ 1/t ({', '.join(f'{v:.3f}' for v in scale)}), "
                f"so the logits differ by {maxdiff([logits_o], [logits_t]):.2e}; the derived "
                f"cell cannot differ (an argmax per edge)."]
    return out
