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

import hashlib
import math
import time
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NasbenchEvalError
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
        from ..spaces.nb201.network import Nb201Network

        self.trainings += 1
        t0 = time.perf_counter()
        device, train, test = ctx.device, ctx.search_train, ctx.test
        steps = len(train)
        if ctx.cfg.max_steps_per_epoch:
            steps = min(steps, ctx.cfg.max_steps_per_epoch)
        if steps < 1:
            raise NasbenchEvalError("oracle 'train-nb201': the search-train split holds no batch")
        epochs = opts["train_epochs"]
        seed = int(hashlib.sha1(f"{opts['seed']}/{arch}".encode()).hexdigest()[:15], 16)
        devices = ([device.index if device.index is not None else torch.cuda.current_device()]
                   if device.type == "cuda" else [])
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            net = Nb201Network(genotype, opts["channels"], 3 * opts["cells_per_stack"],
                               int(ctx.supernet.classifier.out_features),
                               int(test.x.shape[1])).to(device)
            params = [p for p in net.parameters() if p.requires_grad]
            opt = torch.optim.SGD(params, lr=opts["lr"], momentum=opts["momentum"],
                                  weight_decay=opts["weight_decay"])
            total, t = epochs * steps, 0
            for epoch in range(epochs):
                net.train()
                g = torch.Generator().manual_seed(seed + epoch)
                for i, (x, y) in enumerate(train.epoch(g)):
                    if i >= steps:
                        break
                    for group in opt.param_groups:
                        group["lr"] = 0.5 * opts["lr"] * (1.0 + math.cos(math.pi * t / total))
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(net(x)[0], y).backward()
                    nn.utils.clip_grad_norm_(params, opts["grad_clip"])
                    opt.step()
                    t += 1
            net.eval()
            correct = torch.zeros((), device=device)
            n = 0
            with torch.no_grad():
                for x, y in test.epoch(None, augment=False):
                    correct += (net(x)[0].argmax(1) == y).sum()
                    n += len(y)
        acc = (correct / max(n, 1)).item()
        return {"test_error": 1.0 - acc, "train_epochs": epochs,
                "train_time_s": round(time.perf_counter() - t0, 3),
                "params": sum(p.numel() for p in params)}


__all__ = ["TrainNb201Oracle"]
