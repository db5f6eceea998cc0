"""DARTS-ES (Zela et al., ICLR 2020): DARTS stopped early by the curvature of L_val in alpha.

Every ``es_every`` epochs (epochs 0, 2, 4, ... as the reference's ``epoch % 2 == 0``) and at
the last epoch, after the epoch's steps, the largest eigenvalue of the Hessian of the
validation loss with respect to [alpha_normal, alpha_reduce] is computed on the epoch's last
validation batch, model in train mode (BN running statistics restored afterwards):

* ``es_hessian="full"`` (default, RobustDARTS ``Analyzer``): the full Hessian by double
  backprop, one row per alpha entry, of L_val plus the alpha weight-decay term (which adds
  ``alpha_weight_decay`` * I), and its largest eigenvalue (the reference: ``max(eigvals)``).
* ``es_hessian="power"``: the shared Lanczos estimate of the same number (lambda_max of the
  Hessian of L_val plus ``alpha_weight_decay`` * I, ``GradientMethod.hessian_eigenvalue``)
  from Hessian-vector products, cheaper for many alphas. Before issue 16 this mode used power
  iteration, i.e. the eigenvalue of largest magnitude, which is the negative end whenever
  that end dominates.

Both modes always include the decay term (the rule is RobustDARTS's; ``--no-hessian-weight-
decay`` does not apply here); the metrics record it in ``hessian_eig_wd``.

The stop rule is the reference's ``EVLocalAvg`` with its defaults, implemented by
:class:`EigenvalueStopRule` (see its docstring for the exact indices). When it fires, the
search ends after the current epoch (the runner records ``stop_reason``) and :meth:`derive`
returns the genotype recorded at the epoch the rule names, ``epoch - es_every * (es_window //
2) - es_every * es_delta`` = epoch - 12 with the defaults.
"""
from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

from ..config import RunConfig
from ..lazy_torch import nn, torch
from ..options import Option
from ..spaces.base import Space
from .base import Batch, register
from .rdarts import PAPER, RobustDartsBase

if TYPE_CHECKING:
    from torch import Tensor

HESSIAN_MODES = ("full", "power")


# ----------------------------------------------------------------------------- pure pieces

def full_hessian(loss_fn, params: list[Tensor], weight_decay: float = 0.0) -> Tensor:
    """The Hessian of ``loss_fn(params) + weight_decay / 2 * sum ||p||^2`` with respect to all
    entries of ``params`` (flattened in order), by double backprop: one backward pass per row.

    The result is symmetrised, (H + H^T) / 2; the reference fills the upper triangle row by
    row and mirrors it, which is the same matrix up to rounding.
    """
    xs = [p.detach().clone().requires_grad_() for p in params]
    n = sum(x.numel() for x in xs)
    ref = xs[0]
    loss = loss_fn(xs)
    grads = torch.autograd.grad(loss, xs, create_graph=True, allow_unused=True)
    flat = torch.cat([(g if g is not None else torch.zeros_like(x)).reshape(-1)
                      for g, x in zip(grads, xs)])
    rows = []
    for i in range(n):
        if flat.requires_grad:
            row = torch.autograd.grad(flat[i], xs, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(r if r is not None else torch.zeros_like(x)).reshape(-1)
                                   for r, x in zip(row, xs)]))
        else:
            rows.append(torch.zeros(n, dtype=ref.dtype, device=ref.device))
    h = torch.stack(rows).detach()
    h = 0.5 * (h + h.T)
    return h + weight_decay * torch.eye(n, dtype=h.dtype, device=h.device)


def max_eigenvalue(h: Tensor) -> float:
    """Largest (algebraic) eigenvalue of a symmetric matrix, in float64."""
    return float(torch.linalg.eigvalsh(h.detach().double().cpu()).max())


def _ratio(current: float, previous: float) -> float:
    """current / previous with numpy's conventions (the reference divides numpy floats)."""
    if previous != 0:
        return current / previous
    if current == 0 or math.isnan(current):
        return math.nan
    return math.copysign(math.inf, current)


class EigenvalueStopRule:
    """RobustDARTS's early-stopping rule (``utils.EVLocalAvg`` with ``early_stop``).

    Feed it ``update(epoch, eigenvalue, genotype)`` at every epoch an eigenvalue is computed
    (0-based epochs 0, every, 2*every, ... and the last one). With n eigenvalues so far:

    * once n >= ceil(window / 2), and not at the last epoch, a local average is appended: the
      mean of the last min(n, window) eigenvalues. It is attributed to the window's centre,
      ``epoch - every * (window // 2)`` (epoch - 4 with the defaults);
    * the rule is checked (except at the last epoch) when the comparison epoch ``centre -
      every * delta`` (epoch - 12) is >= ``start_epoch`` (10): it compares the newest local
      average with the one ``delta`` (4) entries earlier and stops if
      ``newest / earlier > factor`` (1.3, strictly greater);
    * on a stop, the genotype recorded at the comparison epoch is the result.

    With the defaults the first check is at epoch 22 (centre 18 against centre 10).
    """

    def __init__(self, epochs: int, window: int = 5, every: int = 2, delta: int = 4,
                 factor: float = 1.3, start_epoch: int = 10):
        self.epochs, self.window, self.every = epochs, window, every
        self.delta, self.factor, self.start_epoch = delta, factor, start_epoch
        self.eigenvalues: list[tuple[int, float]] = []
        self.local_averages: list[tuple[int, float]] = []  # (centre epoch, mean)
        self.genotypes: dict[int, Any] = {}
        self.stop_epoch: int | None = None
        self.stopped_at: int | None = None

    @property
    def stopped(self) -> bool:
        return self.stop_epoch is not None

    @property
    def stop_genotype(self) -> Any:
        return self.genotypes[self.stop_epoch] if self.stop_epoch is not None else None

    def update(self, epoch: int, eigenvalue: float, genotype: Any) -> dict[str, float]:
        """Record one eigenvalue; returns what to log (``es_local_avg``, ``es_ratio``,
        ``es_stop_epoch`` when they exist). After a stop, further updates are ignored."""
        if self.stopped:
            return {}
        self.eigenvalues.append((epoch, float(eigenvalue)))
        self.genotypes[epoch] = genotype
        out: dict[str, float] = {}
        n = len(self.eigenvalues)
        last = epoch == self.epochs - 1
        if last or n < self.window - self.window // 2:
            return out
        recent = [v for _, v in self.eigenvalues[-self.window:]]
        centre = epoch - self.every * (self.window // 2)
        self.local_averages.append((centre, sum(recent) / len(recent)))
        out["es_local_avg"] = self.local_averages[-1][1]
        compare = centre - self.every * self.delta
        if compare < self.start_epoch or len(self.local_averages) <= self.delta:
            return out
        ratio = _ratio(self.local_averages[-1][1], self.local_averages[-1 - self.delta][1])
        out["es_ratio"] = ratio
        if ratio > self.factor:
            if compare not in self.genotypes:  # only with irregular updates (not the
                # reference's schedule): the latest genotype recorded at or before it
                compare = max((e for e in self.genotypes if e <= compare),
                              default=min(self.genotypes))
            self.stop_epoch, self.stopped_at = compare, epoch
            out["es_stop_epoch"] = float(compare)
        return out

    # state for checkpoints; genotypes are converted by the caller
    def state_dict(self, genotype_to: Any = lambda g: g) -> dict[str, Any]:
        return {"eigenvalues": list(self.eigenvalues), "local_averages": list(self.local_averages),
                "genotypes": {e: genotype_to(g) for e, g in self.genotypes.items()},
                "stop_epoch": self.stop_epoch, "stopped_at": self.stopped_at}

    def load_state_dict(self, state: dict[str, Any], genotype_from: Any = lambda g: g) -> None:
        self.eigenvalues = [tuple(x) for x in state["eigenvalues"]]
        self.local_averages = [tuple(x) for x in state["local_averages"]]
        self.genotypes = {int(e): genotype_from(g) for e, g in state["genotypes"].items()}
        self.stop_epoch, self.stopped_at = state["stop_epoch"], state["stopped_at"]


# ----------------------------------------------------------------------------- method

@register
class DartsES(RobustDartsBase):
    """DARTS-ES: DARTS stopped by RobustDARTS's rule on the largest Hessian eigenvalue."""

    name = "darts-es"
    paper = PAPER
    options = {
        **RobustDartsBase.options,
        "es_hessian": Option("full", str, "'full': explicit Hessian incl. the alpha weight-decay "
                             "term, max eigenvalue (RobustDARTS); 'power': the same lambda_max "
                             "by Lanczos on Hessian-vector products", choices=HESSIAN_MODES),
        "es_every": Option(2, int, "eigenvalue every k epochs (epochs 0, k, 2k, ...) and at the "
                           "last", minimum=1),
        "es_window": Option(5, int, "eigenvalues per local average", minimum=1),
        "es_delta": Option(4, int, "the newest local average is compared with the one es_delta "
                           "entries earlier", minimum=1),
        "es_factor": Option(1.3, float, "stop when newest / earlier local average > es_factor",
                            positive=True),
        "es_start_epoch": Option(10, int, "check only when the earlier local average's epoch is "
                                 ">= this", minimum=0),
    }

    @classmethod
    def legacy_resume_conflict(cls, config: dict[str, Any]) -> str | None:
        if (config.get("method_options") or {}).get("es_hessian") == "power":
            return ("darts-es in 'power' mode computed the eigenvalue of largest magnitude "
                    "without the weight-decay term; its stop rule would compare those with "
                    "lambda_max")
        return None

    def setup(self, supernet: nn.Module, space: Space, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        super().setup(supernet, space, cfg, steps_per_epoch)
        o = self.opts
        if cfg.hessian_every:
            warnings.warn("darts-es computes the Hessian eigenvalue on its own schedule "
                          "(es_every, column hessian_eig); --hessian-every is ignored",
                          UserWarning, stacklevel=2)
        self.rule = EigenvalueStopRule(cfg.epochs, window=o["es_window"], every=o["es_every"],
                                       delta=o["es_delta"], factor=float(o["es_factor"]),
                                       start_epoch=o["es_start_epoch"])

    # ------------------------------------------------------------------ curvature
    def full_hessian_eigenvalue(self, batch: Batch) -> float:
        """Largest eigenvalue of the full Hessian of L_val + alpha weight decay on ``batch``
        (train mode, BN running statistics restored, stochastic ops on a fixed seed)."""
        self.supernet.train()
        keys = list(self.alphas)
        device = batch[0].device
        cuda = [device.index or 0] if device.type == "cuda" else []

        def loss(a: list[Tensor]) -> Tensor:
            # fp32 whatever the run's precision: the stop rule must not see bf16 rounding
            return self.loss(batch, self.mixing(dict(zip(keys, a))), autocast=False)[0]

        saved = {k: v.clone() for k, v in self.supernet.state_dict().items() if "running" in k}
        try:
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(0)
                h = full_hessian(loss, list(self.alphas.values()), self.cfg.alpha_weight_decay)
            return max_eigenvalue(h)
        finally:
            self.supernet.load_state_dict(saved, strict=False)

    def es_eigenvalue(self, batch: Batch) -> float:
        """The eigenvalue the stop rule sees (the ``es_hessian`` mode's)."""
        if self.opts["es_hessian"] == "power":
            return self.hessian_eigenvalue(batch, weight_decay=True)
        return self.full_hessian_eigenvalue(batch)

    # ------------------------------------------------------------------ protocol
    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """Eigenvalue and stop rule on this method's own schedule (``--hessian-every`` is not
        used: the column ``hessian_eig`` holds the rule's eigenvalue)."""
        out: dict[str, Any] = {"lr": self.lr}
        last = epoch + 1 == self.cfg.epochs
        due = epoch % self.rule.every == 0 or last
        if due and not self.rule.stopped and self._last_val_batch is not None:
            ev = self.es_eigenvalue(self._last_val_batch)
            out["hessian_eig"] = ev
            out["hessian_eig_wd"] = self.cfg.alpha_weight_decay
            out.update(self.rule.update(epoch, ev, self.current_genotype()))
            if self.rule.stopped:
                r = self.rule
                out["stop_reason"] = (
                    f"DARTS-ES: at epoch {epoch} the local average of the dominant Hessian "
                    f"eigenvalue centred on epoch {r.local_averages[-1][0]} is "
                    f"{out['es_ratio']:.4g} times the one centred on epoch "
                    f"{r.local_averages[-1 - r.delta][0]} (> {r.factor:g}); the result is the "
                    f"genotype of epoch {r.stop_epoch}")
        self.advance_epoch(epoch)
        return out

    def current_genotype(self):
        """The genotype of the current alphas (what :meth:`derive` returns until a stop)."""
        return super().derive()

    def derive(self):
        if self.rule.stopped:
            return self.rule.stop_genotype
        return self.current_genotype()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(),
                "es_rule": self.rule.state_dict(lambda g: g.to_dict())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "es_rule" in state:
            self.rule.load_state_dict(state["es_rule"], self.space.genotype_from_dict)
