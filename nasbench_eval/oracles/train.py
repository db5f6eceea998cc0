"""The ``train`` oracle: train the current NAS-Bench-101 cell from scratch, briefly.

Where the NAS-Bench-101 table is not available, the anytime test error of a search over a
family whose genotypes map to NAS-Bench-101 cells (NAS-Bench-1Shot1 spaces) can be measured
by training the mapped cell: the pruned
spec goes into ``nasbench_pytorch``'s ``Network`` (stem 3x3 conv-BN-ReLU, 3 stacks of cells
with 2x2 max-pool and channel doubling between them, global pool, linear), which is trained on
the run's search-train split and scored on its test split.

* **Budget** (defaults in :attr:`TrainOracle.options`): ``train_epochs`` epochs of SGD
  (momentum 0.9, weight decay 1e-4, cosine from ``lr`` to 0 per step, gradient clip 5), a
  ``channels``-wide stem and ``cells_per_stack`` cells per stack (NAS-Bench-101: 108 epochs,
  128 channels, 3 cells per stack). The run's ``max_steps_per_epoch`` caps these epochs too,
  and its batch size and augmentation are used.
* **Determinism**: the weights and the batch order come from ``seed`` (an oracle option, not
  the search seed: an architecture's score does not depend on which search found it) and
  the hash, inside a forked RNG, so the search's random stream is not touched.
* **Cache**: results are keyed by the NAS-Bench-101 hash and a fingerprint of everything that
  changes the training (dataset, split, batch size, step cap, options), kept in memory and in
  a JSON file (default ``<out>/oracle-cache/train.json``, shared by the runs of that results
  directory), so a repeated architecture is never trained twice. Writes are atomic; a
  concurrent writer can at worst drop another's new entry (that cell is trained again).

BatchNorm uses PyTorch's momentum 0.1: ``nasbench_pytorch``'s default 0.997 is TensorFlow's
decay passed as PyTorch's momentum, which makes the running statistics those of the last
batch.

Other families' genotypes are refused with a clear error (training a DARTS cell from
scratch is ``nasbench-eval evaluate``; use ``oneshot`` as the anytime oracle).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NasbenchEvalError
from ..options import Option
from ..rundir import atomic_write, fingerprint
from ..spaces.base import Genotype, Space
from ..spaces.registry import family_of
from .base import NasBench101CellOracle, OracleContext, register_oracle

CACHE_FORMAT = "nasbench-eval train-oracle cache"
CACHE_VERSION = 1


@register_oracle
class TrainOracle(NasBench101CellOracle):
    """Trains the mapped NAS-Bench-101 cell with nasbench_pytorch's Network (cached by hash)."""

    name: ClassVar[str] = "train"
    refusal_hint: ClassVar[str] = ": use --oracle oneshot"
    options: ClassVar[dict[str, Option]] = {
        "train_epochs": Option(4, int, "epochs of training per cell", minimum=1),
        "channels": Option(16, int, "stem channels of the trained network", minimum=1),
        "cells_per_stack": Option(1, int, "cells per stack (3 stacks)", minimum=1),
        "lr": Option(0.05, float, "initial learning rate (cosine to 0)", positive=True),
        "momentum": Option(0.9, float, "SGD momentum", minimum=0),
        "weight_decay": Option(1e-4, float, "SGD weight decay", minimum=0),
        "grad_clip": Option(5.0, float, "gradient-norm clip", positive=True),
        "seed": Option(0, int, "seed of the weights and batch order (with the cell's hash)"),
        "cache": Option(None, str, "JSON cache file; none: <out>/oracle-cache/train.json",
                        none_ok=True),
    }

    def __init__(self, **options: Any) -> None:
        self.resolve(options)  # an unknown or bad option fails here, not at the first score
        self.overrides = dict(options)
        self.memory: dict[str, dict[str, Any]] = {}
        self.trainings = 0  # cells actually trained by this instance (the cache's misses)

    @classmethod
    def unavailable_reason(cls, space: Space, cfg: Any) -> str:
        return (f"it trains NAS-Bench-101 cells, and genotypes of family "
                f"'{family_of(space).name}' do not map to them; training a genotype's own "
                f"network from scratch is `nasbench-eval evaluate`")

    # ------------------------------------------------------------------ settings
    def resolved_options(self, cfg: Any) -> dict[str, Any]:
        return self.resolve({**cfg.oracle_options, **self.overrides})

    def cache_path(self, cfg: Any, opts: dict[str, Any]) -> Path:
        if opts["cache"]:
            return Path(opts["cache"])
        return Path(cfg.out) / "oracle-cache" / "train.json"

    @staticmethod
    def settings(cfg: Any, opts: dict[str, Any]) -> dict[str, Any]:
        """Everything that changes the trained network's score (the cache key besides the
        hash); the cache location and the device are not part of it."""
        return {"dataset": cfg.dataset, "dataset_options": dict(cfg.dataset_options),
                "train_portion": cfg.train_portion, "batch_size": cfg.batch_size,
                "max_steps_per_epoch": cfg.max_steps_per_epoch,
                **{k: v for k, v in opts.items() if k != "cache"}}

    @staticmethod
    def fingerprint(settings: dict[str, Any]) -> str:
        return fingerprint(settings, 12)  # rundir's: the cache keys on disk stay what they were

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
    def score(self, genotype: Genotype, ctx: OracleContext) -> dict[str, Any]:
        spec = self.cell_spec(genotype, ctx.space)
        opts = self.resolved_options(ctx.cfg)
        spec_hash = spec.hash()
        settings = self.settings(ctx.cfg, opts)
        key = f"{spec_hash}/{self.fingerprint(settings)}"
        path = self.cache_path(ctx.cfg, opts)
        entry = self.memory.get(key) or self._read(path).get(key)
        cached = entry is not None
        if entry is None:
            entry = {**self._train(spec, spec_hash, ctx, opts), "hash": spec_hash,
                     "spec": spec.to_dict(), "settings": settings}
            self._write(path, key, entry)
        self.memory[key] = entry
        return {"test_error": entry["test_error"], "train_epochs": entry["train_epochs"],
                "train_time_s": entry["train_time_s"], "cached": cached}

    def _train(self, spec: Any, spec_hash: str, ctx: OracleContext,
               opts: dict[str, Any]) -> dict[str, Any]:
        from nasbench_pytorch.model import Network

        self.trainings += 1
        t0 = time.perf_counter()
        device = ctx.device
        train, test = ctx.search_train, ctx.test
        steps = len(train)
        if ctx.cfg.max_steps_per_epoch:
            steps = min(steps, ctx.cfg.max_steps_per_epoch)
        if steps < 1:
            raise NasbenchEvalError("oracle 'train': the search-train split holds no batch")
        epochs = opts["train_epochs"]
        seed = int(hashlib.sha1(f"{opts['seed']}/{spec_hash}".encode()).hexdigest()[:15], 16)
        matrix = [list(r) for r in spec.rows]
        devices = ([device.index if device.index is not None else torch.cuda.current_device()]
                   if device.type == "cuda" else [])
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            net = Network((matrix, list(spec.ops)),
                          num_labels=int(ctx.supernet.classifier.out_features),
                          in_channels=int(test.x.shape[1]), stem_out_channels=opts["channels"],
                          num_stacks=3, num_modules_per_stack=opts["cells_per_stack"],
                          momentum=0.1).to(device)
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
                    loss = F.cross_entropy(net(x), y)
                    loss.backward()
                    nn.utils.clip_grad_norm_(params, opts["grad_clip"])
                    opt.step()
                    t += 1
            net.eval()
            correct = torch.zeros((), device=device)
            n = 0
            with torch.no_grad():
                for x, y in test.epoch(None, augment=False):
                    correct += (net(x).argmax(1) == y).sum()
                    n += len(y)
        acc = (correct / max(n, 1)).item()
        return {"test_error": 1.0 - acc, "train_epochs": epochs,
                "train_time_s": round(time.perf_counter() - t0, 3),
                "params": _count_params(net)}


def _count_params(net: nn.Module) -> int:
    """Trainable weights, without nasbench_pytorch's unused scalar of each Placeholder."""
    skip = {id(p) for m in net.modules() if type(m).__name__ == "Placeholder"
            for p in m.parameters(recurse=False)}
    return sum(p.numel() for p in net.parameters() if id(p) not in skip)
