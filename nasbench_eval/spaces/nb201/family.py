"""The ``nb201-cell`` family: NAS-Bench-201's topology space (Dong & Yang, ICLR 2020).

Specs and derivation: :mod:`.space`; genotypes (architecture strings, isomorphism):
:mod:`.genotype`; search supernet: :mod:`.supernet`; discrete network: :mod:`.network`.
Its genotypes are keys of the NAS-Bench-201 / NATS-Bench tables, so the ``nasbench201`` and
``nb201-analog`` table oracles and the ``train-nb201`` oracle apply. See ``docs/nb201.md``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import NasbenchEvalError
from ..base import SpaceFamily
from ..registry import register_family
from .genotype import FAMILY, Nb201Genotype
from .space import Nb201Space, parse_nb201_cell

if TYPE_CHECKING:
    from .network import Nb201Network

NB201_TRAINING = {"epochs": 200, "layers": 15, "channels": 16, "batch_size": 256, "cutout": 0,
                  "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
                  "drop_path": 0.0, "auxiliary": 0.0}
"""The benchmark's protocol (NAS-Bench-201 paper, Sec. 2.3: 200 epochs, batch 256, SGD with
Nesterov momentum 0.9, lr 0.1 cosine to 0, weight decay 5e-4, crop + flip, N = 5, C = 16).
Here without Nesterov and with the evaluation stage's gradient clip 5 (docs/nb201.md)."""
SMALL_DATASETS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 30, "layers": 6, "channels": 16, "batch_size": 64},
    "fashion-mnist": {"epochs": 30, "layers": 9, "channels": 16, "batch_size": 128},
    "synthetic": {"epochs": 5, "layers": 3, "channels": 8, "batch_size": 32},
}
"""Small documented defaults: the benchmark's optimiser with fewer epochs and cells (digits:
N = 2; Fashion-MNIST: N = 3)."""


@register_family
class Nb201CellFamily(SpaceFamily):
    name = FAMILY
    description = "NAS-Bench-201 cells: one op on each edge of a dense 4-node cell"
    maps_to_nasbench201 = True
    supernet_calls = ("candidates", "set_edge_forward", "set_partial_channels", "node_edges",
                      "set_drop_path")
    fused_edges_default = False  # the fused cells measured slower on the CPU (docs/nb201.md)

    def parse(self, data: dict[str, Any], file: str) -> Nb201Space:
        return parse_nb201_cell(data, file)

    def recognises(self, d: Mapping[str, Any]) -> bool:
        return isinstance(d.get("arch"), str) and "~" in d["arch"]

    def genotype_from_json(self, d: Mapping[str, Any]) -> Nb201Genotype:
        return Nb201Genotype.from_dict(dict(d))

    def check_evaluation(self, settings: Any) -> None:
        if settings.drop_path or settings.auxiliary:
            raise NasbenchEvalError("NAS-Bench-201 networks are trained without drop-path and "
                                    "auxiliary head; leave --drop-path/--auxiliary unset or 0")

    def evaluation_defaults(self, dataset: str, space: str | None) -> dict[str, Any]:
        return {**NB201_TRAINING, **SMALL_DATASETS.get(dataset, {})}

    def build_network(self, genotype: Any, settings: Any, num_classes: int,
                      in_channels: int) -> Nb201Network:
        from .network import Nb201Network  # torch, imported when a network is built

        return Nb201Network(genotype, settings.channels, settings.layers, num_classes,
                            in_channels)

    def nasbench201_arch(self, genotype: Any) -> str:
        return genotype.arch_str()


__all__ = ["NB201_TRAINING", "Nb201CellFamily", "SMALL_DATASETS"]
