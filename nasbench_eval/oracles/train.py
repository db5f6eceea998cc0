"""The ``train`` oracle: train the current architecture from scratch, briefly, and score it.

One oracle for every family whose genotypes can be trained: the network comes from a
*recipe* (:mod:`.train_recipes`) chosen by the genotype's family:

* **NAS-Bench-101 cells** (families that map to them, NAS-Bench-1Shot1): the pruned spec in
  ``nasbench_pytorch``'s ``Network`` (stem, 3 stacks, ``cells_per_stack`` cells each), keyed
  by the cell's NAS-Bench-101 hash; unchanged since it was the only recipe, so its cache keys
  and scores are what they were.
* **the family's evaluation network** (DARTS cells: :class:`~..spaces.darts.network.DiscreteNetwork`,
  ``cells`` cells of ``channels`` channels, no auxiliary head, no drop-path, no cutout): the
  family gives the short budget per dataset
  (:meth:`~nasbench_eval.spaces.base.SpaceFamily.train_oracle_defaults`, chosen by the study
  in ``results/oracle-fidelity/``), keyed by the genotype.

Both train on the run's search-train split with its augmentation (SGD, momentum, weight
decay, cosine from ``lr`` to 0 per step, gradient clip) and score the test split; the run's
``max_steps_per_epoch`` caps their epochs too.

* **Determinism**: the weights and the batch order come from ``seed`` (an oracle option, not
  the search seed: an architecture's score does not depend on which search found it) and
  the architecture's key, inside a forked RNG, so the search's random stream is not touched.
* **Cache**: results are keyed by the architecture and a fingerprint of everything that
  changes the training (dataset, split, batch size, step cap, budget), kept in memory and in
  a JSON file (default ``<out>/oracle-cache/train.json``, shared by the runs of that results
  directory), so a repeated architecture is never trained twice. Writes are atomic; a
  concurrent writer can at worst drop another's new entry (that one is trained again).
* **Cost**: each score returns ``train_time_s`` (the training's wall time, recorded when it
  was trained) and ``cached``; the runner records them as ``oracle_train_time_s`` and
  ``oracle_cached`` beside its own ``oracle_time_s`` (this call's wall time).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

from ..errors import NasbenchEvalError
from ..lazy_torch import F, nn, torch
from ..options import Option
from ..rundir import atomic_write
from ..spaces.base import Genotype, Space
from ..spaces.registry import family_of
from .base import Oracle, OracleContext, register_oracle
from .train_recipes import Recipe, recipe_for, restream

CACHE_FORMAT = "nasbench-eval train-oracle cache"
CACHE_VERSION = 1


def _int(help_text: str) -> Option:
    return Option(None, int, help_text, minimum=1, none_ok=True)


def _float(help_text: str, **kw: Any) -> Option:
    return Option(None, float, help_text, none_ok=True, **kw)


@register_oracle
class TrainOracle(Oracle):
    """Trains the architecture's network from scratch at a short budget (cached)."""

    name: ClassVar[str] = "train"
    options: ClassVar[dict[str, Option]] = {
        "train_epochs": _int("epochs of training per architecture (none: NAS-Bench-101 cells "
                             "4; evaluation networks: the family's budget for the dataset)"),
        "channels": _int("initial channels (none: NAS-Bench-101 cells 16; evaluation "
                         "networks: the family's)"),
        "cells_per_stack": _int("NAS-Bench-101 cells only: cells per stack, 3 stacks (none: 1)"),
        "cells": _int("evaluation networks only: cells of the network (none: the family's)"),
        "batch_size": _int("training batch size (none: NAS-Bench-101 cells the run's; "
                           "evaluation networks the family's)"),
        "lr": _float("initial learning rate, cosine to 0 (none: 0.05 / the family's)",
                     positive=True),
        "momentum": _float("SGD momentum (none: 0.9 / the family's)", minimum=0),
        "weight_decay": _float("SGD weight decay (none: 1e-4 / the family's)", minimum=0),
        "grad_clip": Option(5.0, float, "gradient-norm clip", positive=True),
        "seed": Option(0, int, "seed of the weights and batch order (with the architecture)"),
        "cache": Option(None, str, "JSON cache file; none: <out>/oracle-cache/train.json",
                        none_ok=True),
    }

    def __init__(self, **options: Any) -> None:
        self.resolve(options)  # an unknown or bad option fails here, not at the first score
        self.overrides = dict(options)
        self.memory: dict[str, dict[str, Any]] = {}
        self.trainings = 0  # networks actually trained by this instance (the cache's misses)

    @classmethod
    def available(cls, space: Space, cfg: Any) -> bool:
        """Whether ``space``'s genotypes have a recipe: NAS-Bench-101 cells, or a family that
        gives a train-oracle budget for its evaluation network on the run's dataset."""
        dataset = cfg.dataset if cfg is not None else None
        return recipe_for(family_of(space), space.name, dataset) is not None

    @classmethod
    def unavailable_reason(cls, space: Space, cfg: Any) -> str:
        return (f"genotypes of family '{family_of(space).name}' neither map to NAS-Bench-101 "
                f"cells nor come with a training budget for their evaluation network "
                f"(SpaceFamily.train_oracle_defaults)")

    # ------------------------------------------------------------------ settings
    def recipe(self, space: Space, cfg: Any) -> Recipe:
        recipe = recipe_for(family_of(space), space.name, cfg.dataset)
        if recipe is None:
            raise NasbenchEvalError(f"oracle 'train' cannot score space '{space.name}': "
                                    f"{self.unavailable_reason(space, cfg)}; use --oracle oneshot")
        return recipe

    def resolved_options(self, cfg: Any, recipe: Recipe) -> dict[str, Any]:
        """The options as given (run's ``oracle_options``, then this instance's), with the
        recipe's defaults for those left open; an option the recipe does not use is refused."""
        opts = self.resolve({**cfg.oracle_options, **self.overrides})
        return recipe.fill(opts)

    def cache_path(self, cfg: Any, opts: dict[str, Any]) -> Path:
        if opts["cache"]:
            return Path(opts["cache"])
        return Path(cfg.out) / "oracle-cache" / "train.json"

    # ------------------------------------------------------------------ cache file
    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        if not path.exists():
            return {}
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != CACHE_FORMAT or not isinstance(doc.get("entries"), dict):
                raise ValueError("not a train-oracle cache")
            return doc["entries"]
        except (OSError, ValueError, AttributeError) as exc:
            warnings.warn(f"train oracle: ignoring unreadable cache {path} ({exc}); it will be "
                          f"rewritten", UserWarning, stacklevel=3)
            return {}

    def _write(self, path: Path, key: str, entry: dict[str, Any]) -> None:
        entries = self._read(path)  # merge with what other runs wrote meanwhile
        entries[key] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps({"format": CACHE_FORMAT, "version": CACHE_VERSION,
                                       "entries": entries}, indent=1, sort_keys=True) + "\n")

    # ------------------------------------------------------------------ oracle
    def cache_key(self, genotype: Genotype, ctx: OracleContext) -> str:
        """The architecture's key and the fingerprint of its training settings."""
        recipe = self.recipe(ctx.space, ctx.cfg)
        opts = self.resolved_options(ctx.cfg, recipe)
        return f"{recipe.key(genotype)}/{recipe.fingerprint(recipe.settings(ctx.cfg, opts))}"

    def score(self, genotype: Genotype, ctx: OracleContext) -> dict[str, Any]:
        recipe = self.recipe(ctx.space, ctx.cfg)
        opts = self.resolved_options(ctx.cfg, recipe)
        arch = recipe.key(genotype)
        settings = recipe.settings(ctx.cfg, opts)
        key = f"{arch}/{recipe.fingerprint(settings)}"
        path = self.cache_path(ctx.cfg, opts)
        entry = self.memory.get(key) or self._read(path).get(key)
        cached = entry is not None
        if entry is None:
            entry = {**self._train(recipe, genotype, arch, ctx, opts),
                     **recipe.record(genotype), "settings": settings}
            self._write(path, key, entry)
        self.memory[key] = entry
        return {"test_error": entry["test_error"], "train_epochs": entry["train_epochs"],
                "train_time_s": entry["train_time_s"], "cached": cached}

    def _train(self, recipe: Recipe, genotype: Genotype, arch: str, ctx: OracleContext,
               opts: dict[str, Any]) -> dict[str, Any]:
        self.trainings += 1
        t0 = time.perf_counter()
        device = ctx.device
        train = restream(ctx.search_train, opts.get("batch_size") or ctx.cfg.batch_size)
        test = ctx.test
        steps = len(train)
        if ctx.cfg.max_steps_per_epoch:
            steps = min(steps, ctx.cfg.max_steps_per_epoch)
        if steps < 1:
            raise NasbenchEvalError("oracle 'train': the search-train split holds no batch")
        epochs = opts["train_epochs"]
        seed = int(hashlib.sha1(f"{opts['seed']}/{arch}".encode()).hexdigest()[:15], 16)
        devices = ([device.index if device.index is not None else torch.cuda.current_device()]
                   if device.type == "cuda" else [])
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            net = recipe.build(genotype, opts, num_classes=int(ctx.supernet.classifier.out_features),
                               in_channels=int(test.x.shape[1])).to(device)
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
                    loss = F.cross_entropy(recipe.logits(net, x), y)
                    loss.backward()
                    nn.utils.clip_grad_norm_(params, opts["grad_clip"])
                    opt.step()
                    t += 1
            net.eval()
            correct = torch.zeros((), device=device)
            n = 0
            with torch.no_grad():
                for x, y in test.epoch(None, augment=False):
                    correct += (recipe.logits(net, x).argmax(1) == y).sum()
                    n += len(y)
        acc = (correct / max(n, 1)).item()
        return {"test_error": 1.0 - acc, "train_epochs": epochs,
                "train_time_s": round(time.perf_counter() - t0, 3),
                "params": recipe.count_params(net)}
