"""Random search with weight sharing (Li & Talwalkar, UAI 2019), as RobustDARTS runs it.

There are no architecture parameters. Every step trains the supernet's weights on one
training batch through a single path: a genotype drawn uniformly from the space
(``space.sample_genotype``) and turned into one-hot mixing weights
(``space.discrete_weights``); the w optimizer and schedule are DARTS's. Unused candidates get
zero gradients (they are multiplied by 0), as in the reference, whose discrete forward also
runs every op with a 0/1 weight.

Selection (reference ``random_weight_share.py``): ``rws_samples`` architectures are drawn
and each is scored by its one-shot accuracy (the shared weights, one-hot edges, BatchNorm on
the running statistics of the supernet, eval mode) on ``rws_eval_batches`` search-val
batches; the ``rws_top`` best are scored again on the whole search-val split and the best of
those is the result. The reference draws 1000, screens on 10 batches and re-scores 10, once
at the end of the search; so does ``rws_select_every=0`` (default). ``rws_select_every=k``
also selects after every k-th epoch, which gives a meaningful anytime curve at the price of
the extra forwards. Between selections :meth:`derive` returns the last winner; before the
first, a fixed uniformly drawn architecture.

Differences from the reference: candidates are drawn uniformly over the discrete cells the
space counts (never ``none``; the reference draws ``none`` like any op, and the two input
edges of a node uniformly), and every candidate is screened on the same first search-val
batches (the reference moves on through the shuffled loader, so candidates see different
batches).
"""
from __future__ import annotations

from itertools import islice
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config import RunConfig
from ..errors import NasbenchEvalError
from ..spaces.base import Space
from ..options import Option
from .base import ArchWeights, Batch, register
from .weights import WeightTraining

_SAMPLE_STREAM, _SELECT_STREAM, _INITIAL_STREAM = 101, 102, 103


def _seed(seed: int, epoch: int, stream: int) -> int:
    """Reproducible seed of one stream of this method's randomness in one epoch."""
    ss = np.random.SeedSequence([seed, epoch + 1, stream])
    return int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63 - 1))


@register
class RandomWS(WeightTraining):
    """RANDOM-WS: random search with weight sharing; train single paths, keep the best of N."""

    name = "random-ws"
    paper = ("Li & Talwalkar, Random Search and Reproducibility for Neural Architecture "
             "Search, UAI 2019 (as run in RobustDARTS, Zela et al., ICLR 2020)")
    options = {
        "rws_samples": Option(1000, int, "architectures drawn and screened per selection "
                              "(reference: 1000)", minimum=1),
        "rws_eval_batches": Option(10, int, "search-val batches each one is screened on "
                                   "(reference: 10; 0 = all)", minimum=0),
        "rws_top": Option(10, int, "screened best re-scored on the whole search-val split "
                          "(reference: 10; 0 = keep the screening winner)", minimum=0),
        "rws_select_every": Option(0, int, "also select after every k-th epoch (0: only after "
                                   "the last, as the reference)", minimum=0),
    }

    def __init__(self) -> None:
        super().__init__()
        self._streams: dict[str, Any] = {}
        self._screen: list[Batch] | None = None

    # ------------------------------------------------------------------ space
    def adapt_space(self, space: Space) -> Space:
        """Draw one genotype with a throwaway generator, so that a space without a sampler
        (:meth:`Space.sample_genotype`'s default refuses, naming the space) fails here, before
        the run, and sweeps refuse the cell when they check their grid."""
        space = super().adapt_space(space)
        space.sample_genotype(torch.Generator().manual_seed(0))
        return space

    # ------------------------------------------------------------------ setup
    def setup(self, supernet: nn.Module, space: Space, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        super().setup(supernet, space, cfg, steps_per_epoch)
        self._gen = self._path_generator(0)
        initial = torch.Generator().manual_seed(_seed(cfg.seed, -1, _INITIAL_STREAM))
        self.best = space.sample_genotype(initial)
        self.best_acc: float | None = None

    def bind_data(self, streams: dict[str, Any]) -> None:
        """Receive the run's batch streams; selection scores on ``streams['val_eval']`` (the
        search-val split, unshuffled and unaugmented)."""
        self._streams = streams
        self._screen = None

    def _path_generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(_seed(self.cfg.seed, epoch, _SAMPLE_STREAM))

    # ------------------------------------------------------------------ data
    def _val_stream(self):
        """The search-val split, unshuffled and unaugmented (the runner's ``val_eval``)."""
        if "val_eval" not in self._streams:
            raise NasbenchEvalError("random-ws scores architectures on the search-val split: "
                                    "bind_data({'val_eval': ...}) must be called before the "
                                    "first selection")
        return self._streams["val_eval"]

    def _screen_batches(self) -> list[Batch] | None:
        """The first ``rws_eval_batches`` search-val batches (None: the whole split)."""
        k = self.opts["rws_eval_batches"]
        if k == 0:
            return None
        if self._screen is None:
            self._screen = list(islice(self._val_stream().epoch(None, augment=False), k))
        return self._screen

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def score(self, genotypes: list[Any], batches: list[Batch] | None = None) -> list[float]:
        """One-shot accuracy of each genotype (eval mode, BN running statistics) on
        ``batches``, or on the whole search-val split when None. One host sync in all."""
        net = self.supernet
        was_training = net.training
        net.eval()
        try:
            accs = []
            for g in genotypes:
                w = self.space.discrete_weights(g, self.device)
                correct = torch.zeros((), device=self.device)
                n = 0
                source = batches if batches is not None else \
                    self._val_stream().epoch(None, augment=False)
                for x, y in source:
                    correct += (net(x, w).argmax(1) == y).sum()
                    n += len(y)
                accs.append(correct / max(n, 1))
            return torch.stack(accs).tolist() if accs else []
        finally:
            net.train(was_training)

    def select(self, epoch: int) -> dict[str, float]:
        """Draw ``rws_samples`` architectures, screen, re-score the top, keep the best."""
        g = torch.Generator().manual_seed(_seed(self.cfg.seed, epoch, _SELECT_STREAM))
        candidates = [self.space.sample_genotype(g) for _ in range(self.opts["rws_samples"])]
        screen = self.score(candidates, self._screen_batches())
        order = sorted(range(len(candidates)), key=lambda i: -screen[i])  # ties: first drawn
        top = self.opts["rws_top"]
        if top > 0:
            finalists = order[:top]
            full = self.score([candidates[i] for i in finalists], None)
            j = max(range(len(finalists)), key=lambda t: (full[t], -t))
            winner, acc = finalists[j], full[j]
        else:
            winner, acc = order[0], screen[order[0]]
        self.best, self.best_acc = candidates[winner], float(acc)
        return {"rws_best_val_acc": self.best_acc, "rws_screen_acc": float(screen[winner])}

    # ------------------------------------------------------------------ protocol
    def step(self, train_batch: Batch, val_batch: Batch) -> dict[str, Tensor]:
        """One w step through a uniformly drawn single path (the validation batch is unused)."""
        self.train_weights = self.space.discrete_weights(self.space.sample_genotype(self._gen),
                                                 self.device)
        return self.w_step(train_batch)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        out = super().end_epoch(epoch)  # lr schedule; no alphas, so no Hessian
        k = self.opts["rws_select_every"]
        if epoch + 1 == self.cfg.epochs or (k and (epoch + 1) % k == 0):
            out.update(self.select(epoch))
        self._gen = self._path_generator(self.epoch)
        return out

    def mixing_weights(self) -> ArchWeights:
        """One-hot weights of the current result (the runner's search-val pass scores it)."""
        return self.space.discrete_weights(self.best, self.device)

    def derive(self):
        return self.best

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best": self.best.to_dict(), "best_acc": self.best_acc}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.best = self.space.genotype_from_dict(state["best"])
        self.best_acc = state["best_acc"]
        self._gen = self._path_generator(self.epoch)
