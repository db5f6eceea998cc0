"""Architecture samplers: how a composed method turns alphas into mixing weights.

A sampler gives three things (:class:`Sampler`): the weights of each *training* forward
(:meth:`Sampler.sample`, drawn afresh for the alpha step and for the w step), the
deterministic weights the supernet is *evaluated* with (:meth:`Sampler.expected`) and the
weights the genotype is *derived* from (:meth:`Sampler.derivation`), plus an optional
regulariser of the alpha loss.

* :class:`SoftmaxSampler` (DARTS): softmax(alpha) everywhere.
* :class:`GumbelHardSampler` (GDAS, Dong & Yang, CVPR 2019): per edge one Gumbel-max sample
  of softmax(alpha) at temperature tau, used as the one-hot ``one_hot - p.detach() + p``
  (straight-through: the value is one-hot, the gradient that of the relaxed p); the chosen
  columns are kept for :class:`SinglePath`, which computes only the chosen candidate.
* :class:`DirichletSampler` (DrNAS, Chen et al., ICLR 2021): a reparameterised sample of
  Dirichlet(elu(alpha) + 1) per edge; optionally the KL to the Dirichlet(1) anchor.

All randomness comes from torch's global RNG (the runner reseeds it every epoch).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..lazy_torch import F, torch
from .base import ArchWeights

if TYPE_CHECKING:
    from torch import Tensor

    from ..spaces.supernet import EdgeCall


class Sampler:
    """Alphas -> mixing weights of a training forward, of evaluation and of derivation."""

    name: ClassVar[str] = ""
    single_path: ClassVar[bool] = False
    """Training weights are one-hot: an edge computes only its chosen candidate."""
    perturbable: ClassVar[bool] = True
    """SDARTS's perturbations of the w step's weights make sense for it."""
    capturable: ClassVar[bool] = True
    """A step that uses it keeps no host-side state between steps (CUDA graphs)."""

    def sample(self, alphas: ArchWeights) -> ArchWeights:
        raise NotImplementedError

    def expected(self, alphas: ArchWeights) -> ArchWeights:
        """What the supernet is evaluated with (val_acc, one-shot oracles)."""
        return {k: F.softmax(a, dim=-1) for k, a in alphas.items()}

    def derivation(self, alphas: ArchWeights) -> ArchWeights:
        """What the genotype is derived from (the space's rule)."""
        return self.expected(alphas)

    def regulariser(self, alphas: ArchWeights) -> Tensor | None:
        """A term added to the alpha step's loss (never to the w step's), or None."""
        return None

    def set_progress(self, epoch: int, epochs: int) -> None:
        """Epoch ``epoch`` (0-based) of ``epochs`` begins: schedules (GDAS's tau)."""

    def log(self) -> dict[str, float]:
        """Values the epoch's metrics row records."""
        return {}


class SoftmaxSampler(Sampler):
    """DARTS: softmax over each edge's candidates, for training, evaluation and derivation."""

    name = "softmax"

    def sample(self, alphas: ArchWeights) -> ArchWeights:
        return {k: F.softmax(a, dim=-1) for k, a in alphas.items()}


def gdas_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """GDAS's temperature of epoch ``epoch`` (0-based): linear from tau_max at the first
    epoch to tau_min at the last, tau_max - (tau_max - tau_min) * epoch / (epochs - 1), as
    AutoDL-Projects' ``GDAS.py`` sets it before each epoch (one epoch: tau_max)."""
    if epochs <= 1:
        return tau_max
    return tau_max - (tau_max - tau_min) * epoch / (epochs - 1)


def gumbel_hard(alpha: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """One straight-through Gumbel sample per row: (hard weights, chosen columns).

    p = softmax((log_softmax(alpha) + g) / tau) with g = -log(Exp(1)) (standard Gumbel);
    the column is argmax p; the weights are one_hot - p.detach() + p (value one-hot,
    gradient dp/dalpha). A draw with an infinite Gumbel or a non-finite p is redrawn, as
    GDAS's code does; that check reads the tensors on the host (GDAS steps sync anyway)."""
    while True:
        g = -torch.empty_like(alpha).exponential_().log()
        p = F.softmax((F.log_softmax(alpha, dim=-1) + g) / tau, dim=-1)
        if bool(torch.isfinite(g).all()) and bool(torch.isfinite(p).all()):
            break
    index = p.argmax(dim=-1)
    one_hot = F.one_hot(index, alpha.shape[-1]).to(p.dtype)
    return one_hot - p.detach() + p, index


def gumbel_soft(alpha: Tensor, tau: float) -> Tensor:
    """One relaxed Gumbel-softmax sample per row, softmax((log_softmax(alpha) + g) / tau)
    (torch's ``gumbel_softmax(hard=False)``; the same noise draw and redraw rule as
    :func:`gumbel_hard`)."""
    while True:
        g = -torch.empty_like(alpha).exponential_().log()
        p = F.softmax((F.log_softmax(alpha, dim=-1) + g) / tau, dim=-1)
        if bool(torch.isfinite(g).all()) and bool(torch.isfinite(p).all()):
            return p


class GumbelHardSampler(Sampler):
    """GDAS: one hard straight-through Gumbel-softmax sample per edge and forward.

    Keys in :attr:`relaxed_keys` get the relaxed sample (:func:`gumbel_soft`) instead: rows
    that weight whole states rather than choose among candidate modules (NAS-Bench-1Shot1's
    parent and output rows), as NAS-Bench-1Shot1's GDAS does (hard samples there "very
    quickly gave exploding gradients", its code says)."""

    name = "gumbel-hard"
    single_path = True
    perturbable = False
    capturable = False

    def __init__(self, tau_max: float = 10.0, tau_min: float = 0.1,
                 relaxed_keys: frozenset[str] = frozenset()):
        self.tau_max, self.tau_min = tau_max, tau_min
        self.tau = tau_max
        self.relaxed_keys = relaxed_keys
        self.index: dict[str, Tensor] = {}
        """The columns of the last sample, by weight key (device tensors; hard keys only)."""

    def set_progress(self, epoch: int, epochs: int) -> None:
        self.tau = gdas_tau(epoch, epochs, self.tau_max, self.tau_min)

    def sample(self, alphas: ArchWeights) -> ArchWeights:
        out: ArchWeights = {}
        for k, a in alphas.items():
            if k in self.relaxed_keys:
                out[k] = gumbel_soft(a, self.tau)
            else:
                out[k], self.index[k] = gumbel_hard(a, self.tau)
        return out

    def log(self) -> dict[str, float]:
        return {"tau": self.tau}


def concentration(alpha: Tensor, kind: str = "elu") -> Tensor:
    """DrNAS's Dirichlet concentration: elu(alpha) + 1 (its public code) or softplus(alpha)
    (always > 0; the paper's text allows any positive map)."""
    if kind == "elu":
        return F.elu(alpha) + 1.0
    if kind == "softplus":
        return F.softplus(alpha)
    raise ValueError(f"concentration must be 'elu' or 'softplus', got {kind!r}")


def dirichlet_kl_to_anchor(alpha: Tensor, kind: str = "elu", anchor: float = 1.0) -> Tensor:
    """sum over edges of KL(Dir(concentration(alpha)) || Dir(anchor * 1)), DrNAS's 'kl'
    regulariser (anchor 1: the uniform Dirichlet)."""
    dist = torch.distributions
    q = dist.Dirichlet(concentration(alpha, kind), validate_args=False)  # no host-side check
    p = dist.Dirichlet(torch.full_like(alpha, anchor), validate_args=False)
    return dist.kl_divergence(q, p).sum()


class DirichletSampler(Sampler):
    """DrNAS: a reparameterised Dirichlet(concentration(alpha)) sample per edge and forward;
    evaluated at the Dirichlet mean, derived from softmax(alpha) as DrNAS's code does."""

    name = "dirichlet"
    capturable = False  # the gamma sampler is not known to be graph-safe

    def __init__(self, kind: str = "elu", kl_scale: float = 0.0, anchor: float = 1.0):
        self.kind, self.kl_scale, self.anchor = kind, kl_scale, anchor

    def sample(self, alphas: ArchWeights) -> ArchWeights:
        return {k: torch.distributions.Dirichlet(concentration(a, self.kind),
                                                 validate_args=False).rsample()
                for k, a in alphas.items()}

    def expected(self, alphas: ArchWeights) -> ArchWeights:
        out = {}
        for k, a in alphas.items():
            c = concentration(a, self.kind)
            out[k] = c / c.sum(dim=-1, keepdim=True)
        return out

    def derivation(self, alphas: ArchWeights) -> ArchWeights:
        return {k: F.softmax(a, dim=-1) for k, a in alphas.items()}

    def regulariser(self, alphas: ArchWeights) -> Tensor | None:
        if not self.kl_scale:
            return None
        return self.kl_scale * sum(dirichlet_kl_to_anchor(a, self.kind, self.anchor)
                                   for a in alphas.values())


class SinglePath:
    """GDAS's edge forward: only the sampled candidate of each edge is computed.

    The output is ``w[j] * op_j(x)`` for the chosen column j (value op_j(x); the gradient
    reaches alpha through w[j], the straight-through weight), zeros of the output shape when
    j is a zero candidate. ``unselected="sum"`` also adds the other columns' weights as
    scalars (value 0; gradient of each: the sum of the upstream gradient), as GDAS's
    NAS-Bench-201 cell does; ``"none"`` (default) leaves them out, as its DARTS-space
    (NASNet) cell does. :meth:`load` takes the chosen columns of a sample to the host: one
    sync per forward.
    """

    def __init__(self, unselected: str = "none"):
        if unselected not in ("none", "sum"):
            raise ValueError(f"unselected must be 'none' or 'sum', got {unselected!r}")
        self.unselected = unselected
        self.columns: dict[str, list[int]] = {}
        self.calls = 0
        """Candidates computed since the last reset (tests count them)."""

    def load(self, index: dict[str, Tensor]) -> None:
        self.columns = {k: v.tolist() for k, v in index.items()}

    def __call__(self, edge: EdgeCall, x: Tensor, w: Tensor) -> Tensor:
        j = self.columns[edge.cell_type][edge.edge]
        if j in edge.columns:
            self.calls += 1
            out = w[j] * edge.ops[edge.columns.index(j)](x)
        else:  # a zero candidate: zeros of the output's shape
            s = edge.stride
            out = w[j] * (x[:, :, ::s, ::s] * 0.0)
        if self.unselected == "sum":
            others = torch.ones_like(w)
            others[j] = 0.0
            out = out + (w * others).sum()
        return out
