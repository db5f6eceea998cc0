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
those is the result. The reference draws 1000 [U: read from RobustDARTS's
``random_weight_share.py`` when this method was written; not in shared/reference], screens on
10 batches and re-scores 10, once at the end of the search; so does ``rws_select_every=0``
(default).

How many are drawn by default scales with the run (:func:`default_samples`): the papers'
1000 belong to a 50-epoch CIFAR-10 search (19,500 w steps here), and screening 1000 on a
tiny run took minutes, far longer than its search. The default keeps the papers' ratio, one
architecture per 19.5 w steps, between 20 and 1000, so a search at the papers' size draws
1000; ``--rws-samples 1000`` is the papers' protocol at any size. A run that names
``rws_samples`` keeps its run id; a default run gets a new one (``in_run_id``), as its
selection differs from the old fixed default's. The selection phase shows progress and an
estimate of its time. ``rws_select_every=k``
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

import sys
import time
from itertools import islice
from typing import TYPE_CHECKING, Any

from ..config import RunConfig
from ..errors import NasbenchEvalError
from ..lazy_torch import nn, no_grad, torch
from ..spaces.base import Space
from ..options import Option
from .base import ArchWeights, Batch, register
from .weights import WeightTraining

if TYPE_CHECKING:
    from torch import Tensor

_SAMPLE_STREAM, _SELECT_STREAM, _INITIAL_STREAM = 101, 102, 103
_CHUNK = 10  # architectures scored per host sync during the screening (progress granularity)

# the papers screen PAPER_SAMPLES architectures [U] after a 50-epoch CIFAR-10 search, which
# is PAPER_STEPS w steps here (25,000 search-train images in batches of 64)
PAPER_SAMPLES, PAPER_STEPS, MIN_SAMPLES = 1000, 50 * 390, 20


def default_samples(epochs: int, steps_per_epoch: int) -> int:
    """``rws_samples`` when the run leaves it unset: the papers' architectures per w step
    (1000 per 19,500), at least :data:`MIN_SAMPLES` and at most 1000. Why: the screening costs
    ``samples * rws_eval_batches`` forwards, so a fixed 1000 dwarfs a short search (a 1-epoch
    digits run spent minutes selecting), while at the papers' size this is their 1000."""
    scaled = round(PAPER_SAMPLES * epochs * steps_per_epoch / PAPER_STEPS)
    return max(MIN_SAMPLES, min(PAPER_SAMPLES, scaled))


def _seed(seed: int, epoch: int, stream: int) -> int:
    """Reproducible seed of one stream of this method's randomness in one epoch."""
    import numpy as np  # here: `list methods` imports this module

    ss = np.random.SeedSequence([seed, epoch + 1, stream])
    return int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63 - 1))


@register
class RandomWS(WeightTraining):
    """RANDOM-WS: random search with weight sharing; train single paths, keep the best of N."""

    name = "random-ws"
    paper = ("Li & Talwalkar, Random Search and Reproducibility for Neural Architecture "
             "Search, UAI 2019 (as run in RobustDARTS, Zela et al., ICLR 2020)")
    options = {
        "rws_samples": Option(None, int, "architectures drawn and screened per selection "
                              "(default: scaled with the run, 1000 at the papers' 50-epoch "
                              "CIFAR-10 size; 1000 = the papers' protocol)", minimum=1,
                              none_ok=True, in_run_id=True),
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
        given = self.opts["rws_samples"]
        self.samples = given if given is not None else default_samples(cfg.epochs,
                                                                       steps_per_epoch)
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
    @no_grad
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

    def _screen_with_progress(self, candidates: list[Any], epoch: int) -> list[float]:
        """:meth:`score` of every candidate on the screening batches, in chunks, with a
        progress line and an estimate of the phase's time (stderr, when the run shows
        progress). Chunking changes no score: each is computed alone."""
        batches = self._screen_batches()
        n = len(candidates)
        show = self.cfg.progress
        if show:
            k = f"{len(batches)}" if batches is not None else "all"
            print(f"random-ws selection after epoch {epoch + 1}: screening {n} architectures "
                  f"on {k} search-val batches each, then the best {self.opts['rws_top']} on "
                  f"the whole split", file=sys.stderr, flush=True)
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="random-ws selection", unit="arch", leave=False,
                   disable=not (show and sys.stderr.isatty()), dynamic_ncols=True)
        scores: list[float] = []
        t0 = time.perf_counter()
        try:
            for start in range(0, n, _CHUNK):
                scores += self.score(candidates[start:start + _CHUNK], batches)
                bar.update(len(candidates[start:start + _CHUNK]))
                if show and start == 0 and n > _CHUNK and not sys.stderr.isatty():
                    per = (time.perf_counter() - t0) / min(_CHUNK, n)
                    print(f"random-ws selection: about {per * n:.0f} s for the screening "
                          f"({per * 1000:.0f} ms per architecture)", file=sys.stderr,
                          flush=True)
        finally:
            bar.close()
        return scores

    def select(self, epoch: int) -> dict[str, float]:
        """Draw ``rws_samples`` architectures, screen, re-score the top, keep the best."""
        g = torch.Generator().manual_seed(_seed(self.cfg.seed, epoch, _SELECT_STREAM))
        candidates = [self.space.sample_genotype(g) for _ in range(self.samples)]
        screen = self._screen_with_progress(candidates, epoch)
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
