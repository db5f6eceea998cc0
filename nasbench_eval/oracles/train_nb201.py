"""The ``train-nb201`` oracle: train the current NAS-Bench-201 cell's network briefly.

Where neither NAS-Bench-201 table is at hand, or to score a cell on the search's own dataset,
the anytime test error is measured by training the genotype's discrete network
(:class:`~nasbench_eval.spaces.nb201.network.Nb201Network`: the benchmark's skeleton, at
``channels`` and ``cells_per_stack`` cells per stage) on the run's search-train split and
scoring it on its test split. Budget, determinism and the cache are the ``train`` oracle's
(:mod:`.train`: the same options, SGD with cosine to 0, a seed from the option and the cell,
a JSON cache keyed by the cell and every setting that changes the training); the cache is
keyed by the architecture string and lives in ``<out>/oracle-cache/train-nb201.json``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..errors import NasbenchEvalError
from ..lazy_torch import nn, torch
from ..rundir import fingerprint
from ..spaces.base import Genotype, Space
from ..spaces.registry import family_of
from .base import OracleContext, register_oracle
from .train import TrainOracle


@register_oracle
class TrainNb201Oracle(TrainOracle):
    """Trains the NAS-Bench-201 cell's network on the search data (cached by arch string)."""

    name: ClassVar[str] = "train-nb201"

    @classmethod
    def available(cls, space: Space, cfg: Any) -> bool:
        return family_of(space).maps_to_nasbench201

    @classmethod
    def unavailable_reason(cls, space: Space, cfg: Any) -> str:
        return "it trains NAS-Bench-201 cells (spaces such as nb201)"

    DEFAULTS: ClassVar[dict[str, Any]] = {"train_epochs": 4, "channels": 16,
                                          "cells_per_stack": 1, "lr": 0.05, "momentum": 0.9,
                                          "weight_decay": 1e-4}
    """This oracle's budget where an option is left open (the ``train`` oracle's options
    default to its recipes' budgets; NAS-Bench-201 cells have no recipe there)."""

    def resolved_options(self, cfg: Any, recipe: Any = None) -> dict[str, Any]:
        opts = self.resolve({**cfg.oracle_options, **self.overrides})
        for key in ("cells", "batch_size"):
            if opts.pop(key, None) is not None:
                raise NasbenchEvalError(f"oracle 'train-nb201' has no option --oracle-option "
                                        f"{key} (cells: cells_per_stack; the batch is the run's)")
        return {**opts, **{k: v for k, v in self.DEFAULTS.items() if opts.get(k) is None}}

    @staticmethod
    def settings(cfg: Any, opts: dict[str, Any]) -> dict[str, Any]:
        """Everything that changes the trained network's score (the cache key besides the
        architecture); the cache location and the device are not part of it."""
        return {"dataset": cfg.dataset, "dataset_options": dict(cfg.dataset_options),
                "train_portion": cfg.train_portion, "batch_size": cfg.batch_size,
                "max_steps_per_epoch": cfg.max_steps_per_epoch,
                **{k: v for k, v in opts.items() if k != "cache"}}

    @staticmethod
    def fingerprint(settings: dict[str, Any]) -> str:
        return fingerprint(settings, 12)

    def cache_path(self, cfg: Any, opts: dict[str, Any]) -> Path:
        if opts["cache"]:
            return Path(opts["cache"])
        return Path(cfg.out) / "oracle-cache" / "train-nb201.json"

    def score(self, genotype: Genotype, ctx: OracleContext) -> dict[str, Any]:
        family = family_of(ctx.space)
        if not family.maps_to_nasbench201:
            raise NasbenchEvalError(f"oracle 'train-nb201': space '{ctx.space.name}' is not a "
                                    f"NAS-Bench-201 space; use --oracle oneshot")
        arch = family.nasbench201_arch(genotype)
        opts = self.resolved_options(ctx.cfg)
        settings = self.settings(ctx.cfg, opts)
        key = f"{arch}/{self.fingerprint(settings)}"
        path = self.cache_path(ctx.cfg, opts)
        entry = self.memory.get(key) or self._read(path).get(key)
        cached = entry is not None
        if entry is None:
            entry = {**self._train_nb201(genotype, arch, ctx, opts), "arch": arch,
                     "settings": settings}
            self._write(path, key, entry)
        self.memory[key] = entry
        return {"test_error": entry["test_error"], "train_epochs": entry["train_epochs"],
                "train_time_s": entry["train_time_s"], "cached": cached}

    def _train_nb201(self, genotype: Genotype, arch: str, ctx: OracleContext,
                     opts: dict[str, Any]) -> dict[str, Any]:
        """The ``train`` oracle's loop (:meth:`TrainOracle._train`: forked RNG, SGD with
        cosine to 0, clipping, test accuracy) on the NAS-Bench-201 network."""
        return self._train(_Nb201Build(), genotype, arch, ctx, opts)  # type: ignore[arg-type]


class _Nb201Build:
    """What :meth:`TrainOracle._train` asks of a recipe, for NAS-Bench-201 cells."""

    @staticmethod
    def build(genotype: Genotype, opts: dict[str, Any], num_classes: int,
              in_channels: int) -> nn.Module:
        from ..spaces.nb201.network import Nb201Network

        return Nb201Network(genotype, opts["channels"], 3 * opts["cells_per_stack"],
                            num_classes, in_channels)

    @staticmethod
    def logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return net(x)[0]

    @staticmethod
    def count_params(net: nn.Module) -> int:
        return sum(p.numel() for p in net.parameters() if p.requires_grad)


__all__ = ["TrainNb201Oracle"]
