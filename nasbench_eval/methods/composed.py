"""Methods as compositions: sampler x perturbation x partial channels x edge normalisation.

:class:`ComposedMethod` is the DARTS alpha machinery (:class:`GradientMethod`) with four
parts (:mod:`nasbench_eval.composition` names them):

* a **sampler** (:mod:`.samplers`, fixed by the method: darts/sdarts/pc-darts softmax, gdas
  gumbel-hard, drnas dirichlet) draws the mixing weights of every training forward; a
  single-path sampler (GDAS) also makes every edge compute only its chosen candidate,
  through the supernet seam's edge forward;
* a **perturbation** (``--perturb none|random|adversarial``, :mod:`.perturbations`) of the
  weights the w step mixes with (SDARTS); not for a single-path sampler (refused);
* **partial channels** (``--partial-channels K``, PC-DARTS): the supernet's
  ``set_partial_channels(K)``, before the optimizers exist;
* **edge normalisation** (``--edge-norm``, PC-DARTS): a beta per edge, softmax over the edges
  into each node (the supernet's ``node_edges()``), multiplied into the edge's weight row
  after sampling and perturbation; trained by Adam with the alphas; derivation then ranks
  edges by softmax(beta) x sampler weights.

One step keeps the DARTS order: the alpha step on the validation batch (a fresh sample; the
sampler's regulariser added), then the w step on the training batch (another sample,
perturbed). With the default parts (softmax, none, 1, off) a step computes exactly what
GradientMethod's does, so ``darts``, ``sdarts-rs`` and ``sdarts-adv`` keep their results
(benchmarks/behaviour_check.py).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from ..composition import DEFAULT_PARTS, PARTS, PERTURBATIONS, PRESETS
from ..config import RunConfig
from ..lazy_torch import F, nn, torch
from ..options import Option, OptionError
from ..spaces.base import Genotype, Space
from .base import ArchWeights, Batch
from .gradient import GradientMethod
from .perturbations import pgd_perturbation, random_perturbation
from .samplers import Sampler, SinglePath, SoftmaxSampler

if TYPE_CHECKING:
    from torch import Tensor

PERTURB_OPTIONS = ("eps_min", "eps_max", "pgd_steps", "pgd_step_size")


def composed_options(preset: str) -> dict[str, Option]:
    """The composition options, defaulted to ``preset``'s parts (:data:`PRESETS`)."""
    p = PRESETS[preset]
    return {
        "perturb": Option(p["perturb"], str, "SDARTS perturbation of the w step's weights "
                          "(random: SDARTS-RS, adversarial: SDARTS-ADV)", choices=PERTURBATIONS),
        "partial_channels": Option(p["partial_channels"], int, "PC-DARTS partial channels: "
                                   "1/K of the channels through the candidates (1: off)",
                                   minimum=1),
        "edge_norm": Option(p["edge_norm"], bool, "PC-DARTS edge normalisation (a beta per "
                            "edge, softmax over the edges into each node)"),
        "eps_min": Option(0.03, float, "perturbation radius at the first epoch (ramps "
                          "linearly to eps_max; with --perturb only)", minimum=0.0),
        "eps_max": Option(0.3, float, "perturbation radius the linear ramp reaches at epoch T "
                          "(the last epoch uses eps_min + (eps_max - eps_min) * (T-1)/T)",
                          minimum=0.0),
        "pgd_steps": Option(7, int, "sign-gradient ascent steps of the attack (1 = FGSM-like, "
                            "cheaper; with --perturb adversarial only)", minimum=1),
        "pgd_step_size": Option(None, float, "ascent step size (default: 2 * eps / pgd_steps; "
                                "with --perturb adversarial only)", positive=True,
                                none_ok=True),
    }


def edge_scale(beta: Tensor, groups: tuple[tuple[int, ...], ...]) -> Tensor:
    """softmax(beta) within each group of edges (the edges into one node), in edge order."""
    idx = torch.tensor([e for g in groups for e in g], device=beta.device)
    parts = torch.cat([F.softmax(beta[list(g)], dim=-1) for g in groups])
    return torch.zeros_like(beta).index_copy(0, idx, parts)


class ComposedMethod(GradientMethod):
    """A gradient method built from a sampler, a perturbation, partial channels and edge
    normalisation; subclasses are presets (``make_sampler`` and option defaults)."""

    preset: ClassVar[str] = "darts"
    """The :data:`~nasbench_eval.composition.PRESETS` entry of the option defaults."""

    def __init__(self) -> None:
        super().__init__()
        self.sampler: Sampler = SoftmaxSampler()
        self.single_path: SinglePath | None = None
        self.betas: ArchWeights = {}
        self.groups: dict[str, tuple[tuple[int, ...], ...]] = {}
        self.parts: dict[str, Any] = dict(DEFAULT_PARTS)
        self.eps_min = self.eps_max = 0.0
        """The perturbation radius ramp (set when --perturb is not none)."""
        self.pgd_steps: int = 0
        self.pgd_step_size: float | None = None

    @classmethod
    def options_in_use(cls, given: dict[str, Any]) -> set[str]:
        """The perturbation's settings only where this method perturbs (``--perturb``
        given, else the preset's), as the run itself requires."""
        perturb = given.get("perturb", cls.options["perturb"].default)
        unused = {k for k in PERTURB_OPTIONS
                  if perturb == "none" or (perturb == "random" and k.startswith("pgd_"))}
        return super().options_in_use(given) - unused

    def make_sampler(self) -> Sampler:
        """The preset's sampler, built from ``self.opts``."""
        return SoftmaxSampler()

    # ------------------------------------------------------------------ setup
    def _check_parts(self, opts: dict[str, Any], given: dict[str, Any]) -> None:
        """Relations between options: perturbation settings without a perturbation, a
        perturbation of one-hot samples, eps_min > eps_max."""
        perturb = self.parts["perturb"]
        stray = [k for k in PERTURB_OPTIONS if k in given and (
            perturb == "none" or (perturb == "random" and k.startswith("pgd_")))]
        if stray:
            need = "adversarial" if all(k.startswith("pgd_") for k in stray) else \
                "random or adversarial"
            raise OptionError(
                f"method '{self.name}': {', '.join('--' + k.replace('_', '-') for k in stray)} "
                f"apply only with --perturb {need} (this run: --perturb {perturb})")
        if perturb != "none" and not self.sampler.perturbable:
            raise OptionError(
                f"method '{self.name}': --perturb {perturb} does not apply to its "
                f"{self.sampler.name} sampler (SDARTS perturbs a mixture; a one-hot sample "
                f"computes one candidate per edge, so a perturbed weight row has nothing to "
                f"mix); use --perturb none")
        if perturb != "none" and opts.get("eps_min", 0.0) > opts.get("eps_max", 0.0):
            raise OptionError(
                f"method '{self.name}' needs --eps-min <= --eps-max, got eps_min="
                f"{opts['eps_min']}, eps_max={opts['eps_max']}")

    def setup(self, supernet: nn.Module, space: Space, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        opts = self.resolve_options(cfg)
        self.parts = {**DEFAULT_PARTS, **{k: opts[k] for k in PARTS if k in opts}}
        self.opts = opts
        self.sampler = self.make_sampler()
        self._check_parts(opts, dict(cfg.method_options))
        if self.parts["perturb"] != "none":
            self.eps_min, self.eps_max = float(opts["eps_min"]), float(opts["eps_max"])
            self.pgd_steps = int(opts["pgd_steps"])
            size = opts["pgd_step_size"]
            self.pgd_step_size = None if size is None else float(size)
        k = int(self.parts["partial_channels"])
        if k > 1:  # rebuilds the candidates: before any optimizer holds them
            supernet.set_partial_channels(k)
        super().setup(supernet, space, cfg, steps_per_epoch)  # alphas, w and alpha optimizers
        if self.parts["edge_norm"]:
            self.groups = supernet.node_edges()
            # PC-DARTS: 1e-3 * randn per edge, after the alphas
            self.betas = {key: (1e-3 * torch.randn(len(self.alphas[key]),
                                                   device=self.device)).requires_grad_()
                          for key in self.alphas}
        if self.betas or self.arch_weight_decay() != cfg.alpha_weight_decay:
            self.alpha_opt = torch.optim.Adam(self.arch_parameters(), lr=cfg.alpha_lr,
                                              betas=cfg.alpha_betas,
                                              weight_decay=self.arch_weight_decay())
        if self.sampler.single_path:
            self.single_path = self.make_single_path()
            supernet.set_edge_forward(None)  # refuses now, not mid-step, where unsupported
            supernet.set_edge_forward(self.single_path)
            supernet.set_edge_forward(None)
        self.sampler.set_progress(0, cfg.epochs)
        self.mixing = self.evaluation_weights

    def make_single_path(self) -> SinglePath:
        return SinglePath()

    def arch_weight_decay(self) -> float:
        """Adam's weight decay on the architecture parameters (DrNAS's KL mode: 0)."""
        return self.cfg.alpha_weight_decay

    def arch_parameters(self) -> list[Tensor]:
        return list(self.alphas.values()) + list(self.betas.values())

    # ------------------------------------------------------------------ the parts
    def normalise(self, weights: ArchWeights, betas: ArchWeights | None = None) -> ArchWeights:
        """Edge normalisation: each row times softmax(beta) over its node's edges (the
        weights unchanged when it is off)."""
        betas = self.betas if betas is None else betas
        if not betas:
            return weights
        return {k: w * edge_scale(betas[k], self.groups[k])[:, None] for k, w in weights.items()}

    def evaluation_weights(self, alphas: ArchWeights) -> ArchWeights:
        """``self.mixing``: the sampler's evaluation weights, edge-normalised (betas fixed)."""
        return self.normalise(self.sampler.expected(alphas),
                              {k: b.detach() for k, b in self.betas.items()})

    def sample(self, alphas: ArchWeights) -> ArchWeights:
        """A training sample; a single-path sampler's choice goes to the edge forward."""
        w = self.sampler.sample(alphas)
        if self.single_path is not None:
            self.single_path.load(self.sampler.index)
        return w

    @contextmanager
    def training_edges(self) -> Iterator[None]:
        """The single-path edge forward around a training forward (none otherwise)."""
        if self.single_path is None:
            yield
            return
        self.supernet.set_edge_forward(self.single_path)
        try:
            yield
        finally:
            self.supernet.set_edge_forward(None)

    def eps_at(self, epoch: int) -> float:
        """Perturbation radius of epoch ``epoch`` (0-based): eps_min + (eps_max - eps_min) *
        epoch / T."""
        return self.eps_min + (self.eps_max - self.eps_min) * epoch / self.cfg.epochs

    @property
    def eps(self) -> float:
        """Radius the current epoch's w steps use."""
        return self.eps_at(self.epoch)

    def perturb(self, batch: Batch, clean: ArchWeights, eps: float) -> ArchWeights:
        """The w step's weights from the clean sample: SDARTS-RS noise or the SDARTS-ADV
        attack on the training loss of ``batch`` (BN on running statistics, eval mode; the
        supernet's mode restored)."""
        kind = self.parts["perturb"]
        if kind == "random":
            with torch.no_grad():
                return random_perturbation(clean, eps)
        if kind == "adversarial":
            net = self.supernet
            was_training = net.training
            net.eval()
            betas = {k: b.detach() for k, b in self.betas.items()}
            try:
                return pgd_perturbation(lambda w: self.loss(batch, self.normalise(w, betas))[0],
                                        clean, eps, self.pgd_steps, self.pgd_step_size)
            finally:
                net.train(was_training)
        return clean

    # ------------------------------------------------------------------ the step
    def alpha_grads(self, train_batch: Batch, val_batch: Batch) -> tuple[list[Tensor], Tensor]:
        """d (L_val + regulariser) / d (alphas, betas) at a fresh sample."""
        with self.training_edges():
            loss, _ = self.loss(val_batch, self.normalise(self.sample(self.alphas)))
        reg = self.sampler.regulariser(self.alphas)
        total = loss if reg is None else loss + reg
        grads = torch.autograd.grad(total, self.arch_parameters(), materialize_grads=True)
        return list(grads), loss.detach()

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Tensor:
        grads, val_loss = self.alpha_grads(train_batch, val_batch)
        for a, g in zip(self.arch_parameters(), grads):
            a.grad = g
        self.alpha_opt.step()
        return val_loss

    def w_step_weights(self, batch: Batch) -> ArchWeights:
        with torch.no_grad():
            clean = self.sample(self.alphas)
        w = self.perturb(batch, clean, self.eps) if self.parts["perturb"] != "none" else clean
        with torch.no_grad():
            return self.normalise(w)

    def w_step(self, batch: Batch) -> dict[str, Tensor]:
        with self.training_edges():
            return super().w_step(batch)

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        extra = {"eps": self.eps} if self.parts["perturb"] != "none" else {}
        extra.update(self.sampler.log())  # this epoch's values, before the schedules move
        out = {**super().end_epoch(epoch), **extra}
        self.sampler.set_progress(self.epoch, self.cfg.epochs)
        return out

    def derive(self) -> Genotype:
        """The space's rule on the sampler's derivation weights, edge-normalised."""
        with torch.no_grad():
            w = self.normalise(self.sampler.derivation(self.alphas))
            return self.space.derive({k: v.detach().clone() for k, v in w.items()})

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.betas:
            state["betas"] = {k: v.detach().cpu() for k, v in self.betas.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for k, v in state.get("betas", {}).items():
                self.betas[k].copy_(v)
        super().load_state_dict(state)
        self.sampler.set_progress(self.epoch, self.cfg.epochs)
