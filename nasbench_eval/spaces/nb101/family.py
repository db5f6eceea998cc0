"""The ``nb101-cell`` family: NAS-Bench-1Shot1 search spaces over NAS-Bench-101 cells.

Specs and derivation: :mod:`.space`; genotypes: :mod:`.genotype`; one-shot supernet:
:mod:`.supernet`; the network the evaluation stage trains: :mod:`.network`. Its genotypes map
to NAS-Bench-101 cells, so the ``nasbench101`` table oracle and the ``train`` oracle apply.
See ``docs/nasbench1shot1.md``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import NasbenchEvalError
from ...nb101.graph import ModelSpec
from ..base import GenotypeError, SpaceFamily
from ..registry import register_family
from .genotype import FAMILY, SpecGenotype
from .space import Nb101CellSpace, parse_nb101_cell

if TYPE_CHECKING:
    from .network import NB101Network

NB101_TRAINING = {"optimizer": "rmsprop", "lr": 0.2, "momentum": 0.9, "weight_decay": 1e-4,
                  "drop_path": 0.0, "auxiliary": 0.0, "epochs": 108, "layers": 9,
                  "channels": 128, "batch_size": 256, "cutout": 0}
"""NAS-Bench-101's protocol (as nasbench_pytorch's trainer defaults it), on every dataset:
RMSProp, 108 epochs, batch 256, 3 stacks x 3 cells, 128 stem channels, standard augmentation
(no cutout)."""


@register_family
class Nb101CellFamily(SpaceFamily):
    name = FAMILY
    description = "NAS-Bench-1Shot1 spaces: choice blocks over NAS-Bench-101 cells"
    maps_to_nasbench101 = True
    supernet_calls = ("candidates", "set_edge_forward", "set_partial_channels", "node_edges")

    def parse(self, data: dict[str, Any], file: str) -> Nb101CellSpace:
        return parse_nb101_cell(data, file)

    def recognises(self, d: Mapping[str, Any]) -> bool:
        """A bare cell (``matrix``, ``ops``) or an nb101-cell genotype (its ``nb101`` key)."""
        return isinstance(d.get("nb101"), dict) or ("matrix" in d and "ops" in d)

    def genotype_from_json(self, d: Mapping[str, Any]) -> SpecGenotype:
        """The NAS-Bench-101 cell: the pruned spec of an nb101-cell genotype's ``nb101`` key,
        or a bare ``{"matrix", "ops"}`` (the space's block structure is not needed)."""
        if isinstance(d.get("nb101"), dict):
            d = d["nb101"]
        missing = [k for k in ("matrix", "ops") if k not in d]
        if missing:
            raise GenotypeError(f"NAS-Bench-101 cell: missing field {missing[0]!r} (it needs "
                                f"'matrix' and 'ops')")
        try:
            return SpecGenotype(tuple(tuple(int(v) for v in r) for r in d["matrix"]),
                                tuple(str(o) for o in d["ops"]))
        except (TypeError, ValueError) as exc:
            raise GenotypeError(f"malformed genotype JSON: NAS-Bench-101 cell 'matrix' must be "
                                f"a list of 0/1 rows ({exc})") from None

    def check_evaluation(self, settings: Any) -> None:
        if settings.drop_path or settings.auxiliary:
            raise NasbenchEvalError(
                "NAS-Bench-101 networks are trained without drop-path and auxiliary head; "
                "leave --drop-path/--auxiliary unset or 0")

    def evaluation_defaults(self, dataset: str, space: str | None) -> dict[str, Any]:
        return dict(NB101_TRAINING)

    def build_network(self, genotype: Any, settings: Any, num_classes: int,
                      in_channels: int) -> NB101Network:
        from .network import NB101Network  # torch, imported when a network is built

        return NB101Network(genotype.to_model_spec(), settings.channels, settings.layers,
                            num_classes, in_channels)

    def nasbench101_spec(self, genotype: Any) -> ModelSpec:
        """The pruned spec of an :class:`~.genotype.Nb101Genotype` (or of a bare cell)."""
        spec = genotype.to_model_spec()
        if isinstance(spec, SpecGenotype):
            return ModelSpec([list(r) for r in spec.matrix], list(spec.ops)).pruned()
        return spec


__all__ = ["NB101_TRAINING", "Nb101CellFamily"]
