"""The ``darts-cell`` family: DARTS-style cell spaces (DARTS, RobustDARTS S1-S4).

Specs: :mod:`.spec`; genotypes and the DARTS derivation rule: :mod:`.genotype`; supernet:
:mod:`.supernet` (fused cells :mod:`.fused_cell`); the discrete network the evaluation stage
trains: :mod:`.network`. This module says how the family is evaluated (the DARTS protocol,
per dataset; see ``docs/evaluation.md``) and how a user's genotype JSON is read.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..base import GENERIC_EVALUATION, SpaceFamily
from ..registry import register_family
from .genotype import Genotype
from .spec import SearchSpace, parse_darts_cell

if TYPE_CHECKING:
    from .network import DiscreteNetwork

_PAPER = {"epochs": 600, "layers": 20, "channels": 36, "batch_size": 96, "cutout": 16}
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "cifar10": dict(_PAPER),
    "cifar100": dict(_PAPER),
    "svhn": dict(_PAPER),
    # small data sets: cutout of half the image side (16 of CIFAR's 32), a short schedule
    "fashion-mnist": {"epochs": 50, "layers": 8, "channels": 16, "batch_size": 96, "cutout": 14},
    "digits": {"epochs": 50, "layers": 8, "channels": 16, "batch_size": 64, "cutout": 4},
    "synthetic": {"epochs": 10, "layers": 5, "channels": 8, "batch_size": 32, "cutout": 8},
}
"""Network size and schedule per dataset; any other dataset gets the generic size of
:data:`~nasbench_eval.spaces.base.GENERIC_EVALUATION` with the DARTS training settings."""
TRAIN_ORACLE_BUDGET: dict[str, dict[str, Any]] = {
    # measured: results/oracle-fidelity/ (rank correlation with a longer, larger training)
    "digits": {"train_epochs": 3, "cells": 3, "channels": 8, "batch_size": 32},
}
"""The ``train`` oracle's short budget per dataset (``--oracle-option`` overrides it); other
datasets get :data:`GENERIC_TRAIN_ORACLE_BUDGET`, which no study has measured yet (the CPU
study measured the digits budget on a reduced Fashion-MNIST only, results/oracle-fidelity-fmnist/;
a GPU can run ``studies/oracle_fidelity.py`` on the full set)."""
GENERIC_TRAIN_ORACLE_BUDGET = {"train_epochs": 5, "cells": 5, "channels": 16, "batch_size": 64}
TRAIN_ORACLE_OPTIMIZER = {"lr": 0.05, "momentum": 0.9, "weight_decay": 3e-4}
MEASURED_ORACLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("digits", "s3"): ("train",),  # tau +0.09 vs oneshot +0.05, and errors on the right scale
}
"""What ``--oracle auto`` prefers per (dataset, space), by results/oracle-fidelity/ (the
oracle with the higher Kendall tau against a longer training). Not listed: the one-shot
oracle, which also measured best on the darts space with digits (tau +0.31 vs +0.13) and on
S3 with a reduced Fashion-MNIST (results/oracle-fidelity-fmnist/: +0.24 vs train's +0.05);
on the darts space with it no oracle was separated from another (train +0.09, oneshot +0.04,
intervals overlapping), so ``auto`` keeps the default there too."""
ROBUSTDARTS_SPACES = {"s1", "s2", "s3", "s4"}
"""On these spaces CIFAR-100 and SVHN are evaluated at 8 cells / 16 channels (RobustDARTS)."""
SMALL_EVAL = {"layers": 8, "channels": 16}
DARTS_TRAINING = {"optimizer": "sgd", "lr": 0.025, "momentum": 0.9, "weight_decay": 3e-4,
                  "drop_path": 0.2, "auxiliary": 0.4}


@register_family
class DartsCellFamily(SpaceFamily):
    name = "darts-cell"
    description = "DARTS-style cells: per-edge candidate ops, two inputs per node"
    supernet_calls = ("candidates", "set_edge_forward", "set_partial_channels", "node_edges",
                      "set_drop_path")

    def parse(self, data: dict[str, Any], file: str) -> SearchSpace:
        return parse_darts_cell(data, file)

    def recognises(self, d: Mapping[str, Any]) -> bool:
        return "normal" in d or "reduce" in d

    def genotype_from_json(self, d: Mapping[str, Any]) -> Genotype:
        """``normal`` and ``reduce`` pairs; the ``*_concat`` lists default to every node."""
        filled = dict(d)
        for cell in ("normal", "reduce"):
            if isinstance(d.get(cell), list):
                filled.setdefault(f"{cell}_concat", list(range(2, 2 + len(d[cell]) // 2)))
        return Genotype.from_dict(filled)

    def validate_genotype(self, genotype: Genotype) -> None:  # type: ignore[override]
        from .network import validate_genotype  # torch, imported on first use

        validate_genotype(genotype)

    def evaluation_defaults(self, dataset: str, space: str | None) -> dict[str, Any]:
        size = {k: GENERIC_EVALUATION[k] for k in _PAPER}
        defaults = {**DATASET_DEFAULTS.get(dataset, size), **DARTS_TRAINING}
        if dataset in ("cifar100", "svhn") and space in ROBUSTDARTS_SPACES:
            defaults.update(SMALL_EVAL)
        return defaults

    def train_oracle_defaults(self, dataset: str, space: str | None) -> dict[str, Any]:
        return {**TRAIN_ORACLE_BUDGET.get(dataset, GENERIC_TRAIN_ORACLE_BUDGET),
                **TRAIN_ORACLE_OPTIMIZER}

    def measured_oracles(self, dataset: str, space: str | None) -> tuple[str, ...]:
        return MEASURED_ORACLES.get((dataset, space or ""), ())

    def build_network(self, genotype: Genotype, settings: Any, num_classes: int,  # type: ignore[override]
                      in_channels: int) -> DiscreteNetwork:
        from .network import DiscreteNetwork  # torch, imported when a network is built

        return DiscreteNetwork(genotype, settings.channels, settings.layers, num_classes,
                               in_channels, auxiliary=bool(settings.auxiliary), drop_path=0.0)


__all__ = ["DATASET_DEFAULTS", "DARTS_TRAINING", "DartsCellFamily", "MEASURED_ORACLES",
           "ROBUSTDARTS_SPACES", "TRAIN_ORACLE_BUDGET"]
