"""The space-family seam: what one family folder (``spaces/darts/``, ``spaces/nb101/``, or a
plugin folder) provides, declared once with defaults.

Three objects make a family:

* a :class:`SpaceFamily` (one instance per family, registered under its ``name``): parses the
  family's TOML specs into space objects and owns everything that depends on the family but
  not on one space: parsing a user's genotype JSON, the discrete network the evaluation stage
  trains and its per-dataset defaults, and which oracles can score its genotypes;
* the space objects it parses (:class:`Space`): build the supernet, derive genotypes, map a
  genotype back to one-hot weights, sample and describe;
* its genotypes (:class:`Genotype`): serialise, print, and report per-epoch metrics.

The runner, the methods, the oracles and the evaluation stage call only these (and the
supernet seam of :mod:`.supernet`); none of them names a family. See ``docs/spaces.md``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import NasbenchEvalError

if TYPE_CHECKING:
    from torch import Tensor, nn

    from .eval_network import EvalNetwork


class GenotypeError(NasbenchEvalError):
    """A genotype that cannot be parsed, built or mapped (the message names the field)."""


class Genotype(Protocol):
    """A discrete architecture of some family (a frozen dataclass in the shipped families).

    ``family`` names the family that parses, builds and maps it. ``metrics()`` is the
    **per-epoch metrics contract**: the runner adds its items to the epoch's row of
    ``metrics.csv``, every epoch, so each family returns the same keys for every genotype.
    ``param_free_normal`` (share of the chosen ops that have no weights, in [0, 1]: the
    parameter-free collapse the DARTS-robustness papers track) is the one key every family
    should provide, since the analysis reads it across families; add any others freely
    (e.g. ``nb101_hash``).
    """

    family: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``genotypes.jsonl``, ``summary.json``); the family's
        ``genotype_from_dict`` reads it back."""

    def metrics(self) -> dict[str, Any]:
        """Per-epoch numbers recorded for this genotype (see the class docstring)."""


class Space(Protocol):
    """A parsed spec of some family: what the runner, the methods and the oracles use."""

    name: str
    family: str
    path: str
    description: str

    def arch_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each architecture-weight tensor, by key (rows are mixed by the method)."""

    def build_supernet(self, channels: int, layers: int, num_classes: int,
                       in_channels: int) -> nn.Module:
        """The supernet: an ``nn.Module`` with the calls of :class:`.supernet.Supernet`."""

    def derive(self, weights: dict[str, Tensor]) -> Genotype:
        """The discrete architecture the weights select (the family's derivation rule)."""

    def discrete_weights(self, genotype: Genotype, device: Any = "cpu") -> dict[str, Tensor]:
        """Weights that make the supernet compute exactly ``genotype`` (oneshot oracle)."""

    def genotype_from_dict(self, d: dict[str, Any]) -> Genotype:
        """A genotype of this space from its ``to_dict()`` (clear error on a bad one)."""

    def sample_genotype(self, generator: Any) -> Genotype:
        """A random genotype (``generator``: a CPU ``torch.Generator``, the only randomness);
        random baselines (``random-ws``) draw with it. Optional: a space class that subclasses
        :class:`Space` and has no sampler inherits this refusal, which names the space."""
        raise NasbenchEvalError(
            f"space '{self.name}' (family {self.family}) cannot draw random genotypes: its "
            f"space class does not implement sample_genotype(generator), which random "
            f"baselines such as random-ws need")

    def describe(self) -> list[str]:
        """Lines for ``nasbench-eval list spaces``."""


GENERIC_EVALUATION: dict[str, Any] = {
    "epochs": 50, "layers": 8, "channels": 16, "batch_size": 96, "cutout": 0,
    "optimizer": "sgd", "lr": 0.025, "momentum": 0.9, "weight_decay": 3e-4,
    "drop_path": 0.0, "auxiliary": 0.0,
}
"""Evaluation defaults of a family or dataset that declares none: a short SGD schedule on a
small network, without cutout, drop-path or auxiliary head. Every key of
:meth:`SpaceFamily.evaluation_defaults` must be present (the ``None`` fields of
:class:`nasbench_eval.evaluation.EvalConfig`)."""


class SpaceFamily:
    """One family of search spaces. Subclass, set ``name``, implement :meth:`parse` and
    :meth:`build_network`, and register it with
    :func:`nasbench_eval.spaces.registry.register_family`; every other hook has a default.

    A spec file selects its family with ``family = "<name>"``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    maps_to_nasbench101: ClassVar[bool] = False
    """Whether :meth:`nasbench101_spec` maps this family's genotypes to NAS-Bench-101 cells
    (then the ``nasbench101`` table oracle applies and the ``train`` oracle trains the cell)."""
    maps_to_nasbench201: ClassVar[bool] = False
    """Whether :meth:`nasbench201_arch` names this family's genotypes as NAS-Bench-201
    architecture strings (then the ``nasbench201`` and ``nb201-analog`` table oracles and the
    ``train-nb201`` oracle apply)."""
    fused_edges_default: ClassVar[bool] = True
    """What ``--fused-edges auto`` means for this family's supernet: whether its fused path
    (``set_fused_edges``) is used by default, i.e. measured faster (families without one
    ignore the switch)."""

    supernet_calls: ClassVar[tuple[str, ...]] = ()
    """The refusable supernet seam calls (names in ``spaces.supernet.SEAM_PROBES``) this
    family's supernet honours; declared here, without torch, so ``list methods`` can name the
    spaces where a method's ``needs`` are met. ``tests/test_space_family.py`` checks every
    bundled family's supernet against it (``spaces.supernet.refused_calls``)."""

    # ------------------------------------------------------------------ specs
    def parse(self, data: dict[str, Any], file: str) -> Space:
        """Validate a parsed TOML document (``family`` and ``name`` already checked) and
        build the space; report problems as :class:`~nasbench_eval.errors.SpecError`."""
        raise NotImplementedError(f"space family '{self.name}' does not implement parse()")

    # ------------------------------------------------------------------ genotypes
    def recognises(self, d: Mapping[str, Any]) -> bool:
        """Whether a genotype JSON object given without ``--space`` looks like this family's
        (the evaluation stage asks every family). Default: never (then ``--space`` is needed)."""
        return False

    def genotype_from_json(self, d: Mapping[str, Any]) -> Genotype:
        """A genotype from a JSON object :meth:`recognises` accepted, without a space.
        Errors name the missing or malformed field (:class:`GenotypeError`)."""
        raise GenotypeError(f"a genotype of space family '{self.name}' can only be read with "
                            f"its space: pass --space")

    def validate_genotype(self, genotype: Genotype) -> None:
        """Refuse a genotype whose network cannot be built (before any file is written)."""

    # ------------------------------------------------------------------ evaluation
    def evaluation_defaults(self, dataset: str, space: str | None) -> dict[str, Any]:
        """Training protocol of the discrete network on ``dataset`` (``space``: the name of
        the space the genotype came from, if known): every key of
        :data:`GENERIC_EVALUATION`. Unknown datasets should fall back to generic values, so a
        new dataset needs no edit here."""
        return dict(GENERIC_EVALUATION)

    def check_evaluation(self, settings: Any) -> None:
        """Refuse settings the family's network cannot honour (``settings``: the
        :class:`~nasbench_eval.evaluation.EvalConfig` as given, before defaults)."""

    def build_network(self, genotype: Genotype, settings: Any, num_classes: int,
                      in_channels: int) -> EvalNetwork:
        """The discrete network of ``genotype`` at the resolved ``settings`` (``layers``,
        ``channels``, ``auxiliary``, ...)."""
        raise NotImplementedError(f"space family '{self.name}' has no evaluation network")

    # ------------------------------------------------------------------ oracles
    def train_oracle_defaults(self, dataset: str, space: str | None) -> dict[str, Any] | None:
        """The ``train`` oracle's short budget for this family's evaluation network on
        ``dataset`` (``space``: the space's name): every key of ``train_epochs``, ``cells``,
        ``channels``, ``batch_size``, ``lr``, ``momentum``, ``weight_decay``; or None when
        the oracle does not train this family's networks (the default). Families that map to
        NAS-Bench-101 cells are trained as those cells and are not asked."""
        return None

    def measured_oracles(self, dataset: str, space: str | None) -> tuple[str, ...]:
        """Oracles that ``--oracle auto`` prefers for genotypes of ``space`` (its name) on
        ``dataset`` because a measurement showed they agree best with a long training (tried
        in this order, after the NAS-Bench-101 table and before ``oneshot``); default none."""
        return ()

    def nasbench101_spec(self, genotype: Genotype) -> Any:
        """The pruned NAS-Bench-101 ``ModelSpec`` of ``genotype`` (when
        :attr:`maps_to_nasbench101`)."""
        raise GenotypeError(f"genotypes of space family '{self.name}' do not map to "
                            f"NAS-Bench-101 cells")

    def nasbench201_arch(self, genotype: Genotype) -> str:
        """The NAS-Bench-201 architecture string of ``genotype`` (when
        :attr:`maps_to_nasbench201`)."""
        raise GenotypeError(f"genotypes of space family '{self.name}' are not NAS-Bench-201 "
                            f"cells (spaces such as nb201)")


__all__ = ["GENERIC_EVALUATION", "EvalNetwork", "Genotype", "GenotypeError", "Space",
           "SpaceFamily"]


def __getattr__(name: str) -> Any:
    """``EvalNetwork`` (an ``nn.Module``) lives in :mod:`.eval_network`, imported when asked
    for, so this module (and every family's registration) imports without torch."""
    if name == "EvalNetwork":
        from .eval_network import EvalNetwork

        return EvalNetwork
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
