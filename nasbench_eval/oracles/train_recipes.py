"""What the ``train`` oracle trains, per kind of genotype (one :class:`Recipe` each).

A recipe fills the budget options left open, names the architecture (the cache key and the
seed material), builds the network and says which settings enter the cache key. The oracle
(:mod:`.train`) owns the rest: cache, forked RNG, training loop, timing. Neither module names
a family: :func:`recipe_for` asks the family whether it maps to NAS-Bench-101 cells
(:attr:`~nasbench_eval.spaces.base.SpaceFamily.maps_to_nasbench101`) or gives a training
budget for its evaluation network
(:meth:`~nasbench_eval.spaces.base.SpaceFamily.train_oracle_defaults`).
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ..data import BatchStream
from ..errors import NasbenchEvalError
from ..lazy_torch import nn
from ..rundir import fingerprint
from ..spaces.base import Genotype, SpaceFamily

if TYPE_CHECKING:
    from torch import Tensor

_RUN_KEYS = ("dataset", "dataset_options", "train_portion", "max_steps_per_epoch")


def restream(stream: BatchStream, batch_size: int) -> BatchStream:
    """``stream`` with another batch size (same images, augmentation and device tensors)."""
    if batch_size == stream.batch_size:
        return stream
    out = copy.copy(stream)
    out.batch_size = batch_size
    return out


class Recipe:
    """How the train oracle trains one kind of genotype; subclasses fill every method."""

    own: frozenset[str] = frozenset()
    """Budget options only this recipe uses (another recipe's are refused by name)."""
    others: dict[str, str] = {}
    """Options of other recipes -> what to use here instead (for the refusal)."""

    def __init__(self, family: SpaceFamily, what: str):
        self.family, self.what = family, what

    def defaults(self) -> dict[str, Any]:
        raise NotImplementedError

    def fill(self, opts: dict[str, Any]) -> dict[str, Any]:
        for key, instead in self.others.items():
            if opts.get(key) is not None:
                raise NasbenchEvalError(
                    f"oracle 'train': option '{key}' does not apply to {self.what}; {instead}")
        filled = dict(opts)
        for key, value in self.defaults().items():
            if filled.get(key) is None:
                filled[key] = value
        return filled

    def key(self, genotype: Genotype) -> str:
        raise NotImplementedError

    def record(self, genotype: Genotype) -> dict[str, Any]:
        """What a cache entry stores to say which architecture it scored."""
        raise NotImplementedError

    def settings(self, cfg: Any, opts: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def fingerprint(settings: dict[str, Any]) -> str:
        return fingerprint(settings, 12)  # rundir's: the cache keys on disk stay what they were

    def build(self, genotype: Genotype, opts: dict[str, Any], num_classes: int,
              in_channels: int) -> nn.Module:
        raise NotImplementedError

    def logits(self, net: nn.Module, x: Tensor) -> Tensor:
        raise NotImplementedError

    def count_params(self, net: nn.Module) -> int:
        return sum(p.numel() for p in net.parameters())


class NasBench101Recipe(Recipe):
    """The mapped NAS-Bench-101 cell in ``nasbench_pytorch``'s ``Network`` (BatchNorm momentum
    0.1: its default 0.997 is TensorFlow's decay passed as PyTorch's momentum, which makes the
    running statistics those of the last batch). The settings are exactly those of the
    oracle before it had other recipes, so the cache keys written then still hit."""

    others = {"cells": "use cells_per_stack (3 stacks)"}
    BUDGET = {"train_epochs": 4, "channels": 16, "cells_per_stack": 1, "lr": 0.05,
              "momentum": 0.9, "weight_decay": 1e-4}

    def defaults(self) -> dict[str, Any]:
        return dict(self.BUDGET)

    def key(self, genotype: Genotype) -> str:
        return self.family.nasbench101_spec(genotype).hash()

    def record(self, genotype: Genotype) -> dict[str, Any]:
        spec = self.family.nasbench101_spec(genotype)
        return {"hash": spec.hash(), "spec": spec.to_dict()}

    def settings(self, cfg: Any, opts: dict[str, Any]) -> dict[str, Any]:
        budget = {k: v for k, v in opts.items() if k not in ("cache", "cells", "batch_size")}
        return {"dataset": cfg.dataset, "dataset_options": dict(cfg.dataset_options),
                "train_portion": cfg.train_portion,
                "batch_size": opts.get("batch_size") or cfg.batch_size,
                "max_steps_per_epoch": cfg.max_steps_per_epoch, **budget}

    def build(self, genotype: Genotype, opts: dict[str, Any], num_classes: int,
              in_channels: int) -> nn.Module:
        from nasbench_pytorch.model import Network

        spec = self.family.nasbench101_spec(genotype)
        return Network(([list(r) for r in spec.rows], list(spec.ops)), num_labels=num_classes,
                       in_channels=in_channels, stem_out_channels=opts["channels"],
                       num_stacks=3, num_modules_per_stack=opts["cells_per_stack"],
                       momentum=0.1)

    def logits(self, net: nn.Module, x: Tensor) -> Tensor:
        return net(x)

    def count_params(self, net: nn.Module) -> int:
        """Trainable weights, without nasbench_pytorch's unused scalar of each Placeholder."""
        skip = {id(p) for m in net.modules() if type(m).__name__ == "Placeholder"
                for p in m.parameters(recurse=False)}
        return sum(p.numel() for p in net.parameters() if id(p) not in skip)


class _NetworkSettings:
    """The evaluation-network settings a family's ``build_network`` reads."""

    def __init__(self, cells: int, channels: int):
        self.layers, self.channels = cells, channels
        self.auxiliary, self.drop_path = 0.0, 0.0


class EvaluationNetworkRecipe(Recipe):
    """The family's evaluation network (``build_network``) at the family's short budget for
    the dataset, without auxiliary head or drop-path (a short training gains nothing from
    either); keyed by the genotype's JSON."""

    others = {"cells_per_stack": "use cells (the number of cells of the network)"}

    def __init__(self, family: SpaceFamily, what: str, budget: dict[str, Any]):
        super().__init__(family, what)
        self.budget = budget

    def defaults(self) -> dict[str, Any]:
        return dict(self.budget)

    def key(self, genotype: Genotype) -> str:
        return f"{self.family.name}:{fingerprint(genotype.to_dict(), 16)}"

    def record(self, genotype: Genotype) -> dict[str, Any]:
        return {"family": self.family.name, "genotype": genotype.to_dict(),
                "genotype_str": str(genotype)}

    def settings(self, cfg: Any, opts: dict[str, Any]) -> dict[str, Any]:
        budget = {k: v for k, v in opts.items() if k not in ("cache", "cells_per_stack")}
        return {"network": f"{self.family.name} evaluation network",
                **{k: getattr(cfg, k) for k in _RUN_KEYS}, **budget}

    def build(self, genotype: Genotype, opts: dict[str, Any], num_classes: int,
              in_channels: int) -> nn.Module:
        return self.family.build_network(genotype, _NetworkSettings(opts["cells"], opts["channels"]),
                                         num_classes, in_channels)

    def logits(self, net: nn.Module, x: Tensor) -> Tensor:
        return net(x)[0]  # EvalNetwork: (logits, auxiliary logits)


def recipe_for(family: SpaceFamily, space: str | None, dataset: str | None) -> Recipe | None:
    """The recipe for ``family``'s genotypes on ``dataset``, or None where there is none."""
    if family.maps_to_nasbench101:
        return NasBench101Recipe(family, "NAS-Bench-101 cells")
    budget = family.train_oracle_defaults(dataset, space) if dataset is not None else None
    if budget is None:
        return None
    return EvaluationNetworkRecipe(family, f"{family.name} evaluation networks", budget)


__all__ = ["EvaluationNetworkRecipe", "NasBench101Recipe", "Recipe", "recipe_for", "restream"]
