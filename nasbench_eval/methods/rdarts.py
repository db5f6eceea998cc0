"""R-DARTS (Zela et al., ICLR 2020): DARTS with a stronger regularised inner problem.

Two methods, each one point of RobustDARTS's grid per run:

* ``rdarts-l2``: the SGD weight decay on w is ``rdarts_l2`` (grid 3e-4, 9e-4, 2.7e-3, 8.1e-3,
  2.43e-2). It is the decay of the w optimizer *and* of the virtual step of the second-order
  alpha gradient, as in the reference (``Architect`` reads the same ``--weight_decay``).
* ``rdarts-dp``: ScheduledDropPath with final probability ``rdarts_dp`` (grid 0, 0.2, 0.4,
  0.6) and cutout, both ramped linearly over the search: in epoch t (0-based) of T the
  drop-path probability is ``rdarts_dp * t / (T - 1)`` and the cutout probability
  ``rdarts_cutout_prob * t / (T - 1)`` (reference ``train_search.py``; the last epoch uses
  the full value; a one-epoch search uses 0). With ``rdarts_dp = 0`` cutout is off, as the
  reference's ``Helper`` switches it off. Drop-path acts in train mode, so on the alpha
  step's forward as well as the w step's (the reference's model is in train mode for both).

RobustDARTS ran every grid point with second-order DARTS (``--unrolled`` in its scripts);
``darts_order`` (default 2) selects first order instead. Picking the grid point is a
separate step over finished runs: :func:`select_grid_point`.

Drop-path goes through the supernet seam (``supernet.set_drop_path``); cutout through the
search streams the runner hands over in :meth:`RdartsDP.bind_data` (``BatchStream.set_cutout``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import RunConfig
from ..errors import NasbenchEvalError
from ..lazy_torch import nn
from ..options import Option, OptionError
from ..spaces.base import Space
from .base import Batch, register
from .darts import Darts2nd
from .gradient import GradientMethod

if TYPE_CHECKING:
    from torch import Tensor

PAPER = ("Zela, Elsken, Saikia, Marrakchi, Brox & Hutter, Understanding and Robustifying "
         "Differentiable Architecture Search, ICLR 2020")

GRID_L2 = (3e-4, 9e-4, 2.7e-3, 8.1e-3, 2.43e-2)
"""RobustDARTS's L2 grid (scripts; its committed logs also hold 0.0729 and 0.2187)."""
GRID_DP = (0.0, 0.2, 0.4, 0.6)
"""RobustDARTS's drop-path grid (scripts; its committed logs also hold 0.8)."""
DP_SCOPES = ("edge", "op")


def _warn_off_grid(method: str, name: str, value: float, grid: tuple[float, ...]) -> None:
    if not any(math.isclose(value, g, rel_tol=1e-9, abs_tol=1e-12) for g in grid):
        warnings.warn(f"{method}: {name}={value:g} is not on RobustDARTS's grid "
                      f"({', '.join(f'{g:g}' for g in grid)}); running it anyway",
                      UserWarning, stacklevel=3)


def linear_ramp(value: float, epoch: int, epochs: int) -> float:
    """``value * epoch / (epochs - 1)``: 0 in the first epoch, ``value`` in the last
    (RobustDARTS's schedule of drop-path and cutout probability); 0 for a one-epoch search."""
    return value * epoch / (epochs - 1) if epochs > 1 else 0.0


class RobustDartsBase(Darts2nd):
    """DARTS as RobustDARTS runs it: second order by default, ``darts_order=1`` for first."""

    capturable = False  # not reviewed for CUDA-graph capture (schedules, ramps): runs eagerly
    options = {
        "darts_order": Option(2, int, "alpha gradient: 2 = unrolled second order "
                              "(RobustDARTS's scripts use --unrolled), 1 = first order",
                              choices=(1, 2)),
        "hvp_r": Darts2nd.options["hvp_r"],
    }

    def setup(self, supernet: nn.Module, space: Space, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        super().setup(supernet, space, cfg, steps_per_epoch)
        self.darts_order = int(self.opts["darts_order"])

    def alpha_grads(self, train_batch: Batch, val_batch: Batch) -> tuple[list[Tensor], Tensor]:
        if self.darts_order == 1:
            return GradientMethod.alpha_grads(self, train_batch, val_batch)
        return super().alpha_grads(train_batch, val_batch)


@register
class RdartsL2(RobustDartsBase):
    """R-DARTS(L2): DARTS whose w step has weight decay rdarts_l2 (one RobustDARTS grid point)."""

    name = "rdarts-l2"
    paper = PAPER
    options = {
        **RobustDartsBase.options,
        "rdarts_l2": Option(GRID_L2[0], float, "weight decay of w (SGD and the unrolled virtual "
                            "step); grid " + ", ".join(f"{g:g}" for g in GRID_L2)
                            + " (3e-4 = RobustDARTS's default)", minimum=0.0),
    }

    def setup(self, supernet: nn.Module, space: Space, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        l2 = float(self.resolve_options(cfg)["rdarts_l2"])
        _warn_off_grid(self.name, "rdarts_l2", l2, GRID_L2)
        default_wd = RunConfig.__dataclass_fields__["w_weight_decay"].default
        if cfg.w_weight_decay not in (default_wd, l2):
            warnings.warn(f"rdarts-l2: w_weight_decay={cfg.w_weight_decay:g} is replaced by "
                          f"rdarts_l2={l2:g}", UserWarning, stacklevel=2)
        # the method's view of the run: every use of the w decay (the SGD step, the unrolled
        # virtual step) reads cfg.w_weight_decay
        super().setup(supernet, space, dataclasses.replace(cfg, w_weight_decay=l2),
                      steps_per_epoch)
        self.l2 = l2


@register
class RdartsDP(RobustDartsBase):
    """R-DARTS(DP): DARTS with ScheduledDropPath (and cutout) ramped linearly to rdarts_dp."""

    name = "rdarts-dp"
    paper = PAPER
    options = {
        **RobustDartsBase.options,
        "rdarts_dp": Option(0.2, float, "drop-path probability reached in the last epoch "
                            "(linear ramp from 0; < 1); grid "
                            + ", ".join(f"{g:g}" for g in GRID_DP)
                            + " (0.2 = RobustDARTS's default)", minimum=0.0),
        "rdarts_dp_scope": Option("edge", str, "'edge': drop each edge's mixed output, identity "
                                  "included (RobustDARTS's search model); 'op': each "
                                  "non-identity candidate", choices=DP_SCOPES),
        "rdarts_cutout": Option(None, int, "cutout side in pixels while rdarts_dp > 0 (default: "
                                "half the image side, 16 on 32x32 as RobustDARTS); 0 = off",
                                minimum=0, none_ok=True),
        "rdarts_cutout_prob": Option(1.0, float, "cutout probability reached in the last epoch "
                                     "(linear ramp)", minimum=0.0, maximum=1.0),
    }

    def setup(self, supernet: nn.Module, space: Space, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        super().setup(supernet, space, cfg, steps_per_epoch)
        dp = float(self.opts["rdarts_dp"])
        if dp >= 1.0:  # an exclusive bound, which the schema's inclusive maximum cannot say
            raise OptionError(f"--rdarts-dp: expected a probability in [0, 1), got {dp:g}")
        _warn_off_grid(self.name, "rdarts_dp", dp, GRID_DP)
        self.dp, self.dp_scope = dp, self.opts["rdarts_dp_scope"]
        self.cutout_side: int | None = self.opts["rdarts_cutout"]
        self.cutout_prob = float(self.opts["rdarts_cutout_prob"])
        self._streams: dict[str, Any] = {}
        if dp > 0:  # a supernet without drop-path refuses now (SupernetSeamError), not later
            supernet.set_drop_path(dp, self.dp_scope)
        self._apply_schedule(0)

    # ------------------------------------------------------------------ schedule
    @property
    def cutout_on(self) -> bool:
        """Cutout is part of the run: drop-path is on and the side is not 0 (reference)."""
        return self.dp > 0 and self.cutout_side != 0

    def drop_path_at(self, epoch: int) -> float:
        return linear_ramp(self.dp, epoch, self.cfg.epochs)

    def cutout_prob_at(self, epoch: int) -> float:
        return linear_ramp(self.cutout_prob, epoch, self.cfg.epochs) if self.cutout_on else 0.0

    def _apply_schedule(self, epoch: int) -> None:
        self.supernet.set_drop_path(self.drop_path_at(epoch), self.dp_scope)
        if not self.cutout_on:
            return
        for stream in self._streams.values():
            side = self.cutout_side
            if side is None:  # half the image side: RobustDARTS's 16 on 32x32
                side = max(1, stream.image_size[1] // 2)
            stream.set_cutout(side, self.cutout_prob_at(epoch))

    def bind_data(self, streams: dict[str, Any]) -> None:
        """Receive the run's batch streams so the cutout ramp can set the augmentation of the
        two search streams (``train``, ``val``), as the reference's two loaders share one
        transform; ``val_eval`` stays unaugmented."""
        self._streams = {k: streams[k] for k in ("train", "val") if k in streams}
        self._apply_schedule(self.epoch)

    # ------------------------------------------------------------------ protocol
    def end_epoch(self, epoch: int) -> dict[str, float]:
        used = {"drop_path_prob": self.drop_path_at(self.epoch)}
        if self._streams and self.cutout_on:
            used["cutout_prob"] = self.cutout_prob_at(self.epoch)
        out = super().end_epoch(epoch)  # advances self.epoch
        self._apply_schedule(self.epoch)
        return {**out, **used}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._apply_schedule(self.epoch)


# ----------------------------------------------------------------------------- grid selection

RunScore = Callable[[Path], "float | None"]


def search_val_accuracy(run_dir: Path) -> float | None:
    """Final search-val accuracy of a finished run (``summary.json: final_val_acc``), None
    for a run that did not finish or has no number."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    acc = summary.get("final_val_acc")
    if summary.get("status") != "finished" or acc is None or not math.isfinite(float(acc)):
        return None
    return float(acc)


def _grid_key(run_dir: Path) -> tuple[str, str, str, str]:
    """(space, dataset, method, method options): runs with equal keys are seeds of one
    grid point."""
    cfg = json.loads((Path(run_dir) / "config.json").read_text())["config"]
    return (str(cfg["space"]), str(cfg["dataset"]), str(cfg["method"]),
            json.dumps(cfg.get("method_options", {}), sort_keys=True))


def grid_table(run_dirs: Iterable[str | Path],
               score: RunScore = search_val_accuracy) -> list[dict[str, Any]]:
    """One row per grid point (method + method options) of ``run_dirs``: ``method``,
    ``options``, ``runs`` (dirs), ``scores`` (per run, None where unusable), ``mean`` (over the
    usable runs, None if none). Sorted best mean first. All runs must share space and dataset.
    """
    groups: dict[tuple[str, str, str, str], list[Path]] = {}
    for d in run_dirs:
        d = Path(d)
        if not (d / "config.json").is_file():
            raise NasbenchEvalError(f"{d}: not a run directory (no config.json)")
        groups.setdefault(_grid_key(d), []).append(d)
    settings = {(k[0], k[1]) for k in groups}
    if len(settings) > 1:
        raise NasbenchEvalError(
            "grid selection compares runs of one space and dataset; got "
            + ", ".join(f"{s}/{d}" for s, d in sorted(settings)))
    rows = []
    for (_, _, method, options), dirs in groups.items():
        dirs = sorted(dirs)
        scores = [score(d) for d in dirs]
        usable = [s for s in scores if s is not None]
        rows.append({"method": method, "options": json.loads(options), "runs": dirs,
                     "scores": scores, "mean": sum(usable) / len(usable) if usable else None})
    rows.sort(key=lambda r: (r["mean"] is None, -(r["mean"] or 0.0)))
    return rows


def select_grid_point(run_dirs: Iterable[str | Path],
                      score: RunScore = search_val_accuracy) -> Path:
    """The run directory RobustDARTS's protocol would keep from a grid of searches.

    Runs are grouped into grid points (same method and method options, different seeds); the
    point with the best mean ``score`` wins and, of its seeds, the run with the best score is
    returned (ties: the first directory in sorted order). ``score`` is higher-is-better and
    defaults to the final search-val accuracy (:func:`search_val_accuracy`); runs it scores
    None (unfinished, diverged) are left out. See docs/baselines.md for why this is the
    harness's stand-in for the paper's criterion.
    """
    rows = grid_table(run_dirs, score)
    if not rows or rows[0]["mean"] is None:
        raise NasbenchEvalError("no finished run with a score among the given run directories")
    best = rows[0]
    chosen: tuple[float, Path] | None = None
    for s, d in zip(best["scores"], best["runs"]):  # runs are sorted: ties keep the first
        if s is not None and (chosen is None or s > chosen[0]):
            chosen = (s, d)
    assert chosen is not None
    return chosen[1]
