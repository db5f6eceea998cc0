"""Learning-rate schedules over search epochs, in closed form.

Closed forms (rather than torch's recursive schedulers) make the lr of any epoch a pure
function of the epoch, which keeps resume exact and the formulas testable. ``epoch`` is
0-based everywhere in this harness; the lr of epoch ``e`` is the one used during it.
"""
from __future__ import annotations

import math

from .errors import NasbenchEvalError, unknown


class ScheduleError(NasbenchEvalError):
    """A learning-rate schedule's settings are inconsistent."""


def cosine(epoch: int, total: int, lr_max: float, lr_min: float) -> float:
    """Cosine annealing (Loshchilov & Hutter; sharpDARTS Eq. 1) as DARTS/RobustDARTS intend it:
    epoch 0 at ``lr_max``, epoch ``total`` (one past the last) at ``lr_min``."""
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * epoch / total))


def cosine_power(epoch: int, total: int, lr_max: float, lr_min: float, p: float,
                 warmup: int = 0) -> float:
    """Cosine Power Annealing (sharpDARTS Eq. 2) with its code's normalisation and warm-up.

    In the 1-based epochs ``k = epoch + 1`` of sharpDARTS's ``cosine_power_annealing``
    (``train_search.py`` calls it over k = 1..T), with ``W = warmup``:

    * ``k <= W + 1`` (only when ``W > 0``): linear warm-up, proportion ``k / (W + 1)``;
    * otherwise ``k' = k - W``, ``T' = T - W``, ``c = (1 + cos(pi k' / T')) / 2`` and
      proportion ``(p^(c+1) - p) / (top - p)``, where ``top`` is the largest value of
      ``p^(c+1)`` over the code's epochs: ``p^2`` (k' = 0 is among them) when ``W > 0``,
      ``p^(c(1)+1)`` (epoch k = 1) when ``W = 0``. So without warm-up epoch 0 is at
      ``lr_max`` and the last epoch exactly at ``lr_min``;
    * lr = lr_min + proportion * (lr_max - lr_min).

    ``p = 1`` uses ``c`` itself in place of ``p^(c+1)`` (the code's special case; the paper
    calls it cosine annealing, normalised the same way). Where the code cannot go we extend it
    plainly: with ``T <= W + 1`` every epoch is a warm-up epoch (the code raises for
    ``T < W + 1``), and a single annealing epoch without warm-up gets ``lr_max`` (the code
    divides 0 by 0).
    """
    if p < 1:
        raise ScheduleError(f"cosine-power needs p >= 1 (sharpDARTS's exponent order), got {p}")
    if warmup < 0:
        raise ScheduleError(f"the warm-up needs a number of epochs >= 0, got {warmup}")
    k = epoch + 1
    if warmup > 0 and k <= warmup + 1:
        prop = k / (warmup + 1)
    else:
        span = total - warmup

        def curve(kk: float) -> float:
            c = 0.5 * (1.0 + math.cos(math.pi * kk / span))
            return c if p == 1.0 else p ** (c + 1.0)

        top = curve(0) if warmup > 0 else curve(1)
        bottom = curve(span)
        prop = 1.0 if top == bottom else (curve(k - warmup) - bottom) / (top - bottom)
    return lr_min + prop * (lr_max - lr_min)


SCHEDULES = ("cosine", "cosine-power")


def lr_at(schedule: str, epoch: int, total: int, lr_max: float, lr_min: float,
          power: float = 2.0, warmup: int = 0) -> float:
    """The lr of 0-based ``epoch`` of ``total`` under ``schedule``; a warm-up exists only for
    ``cosine-power`` (sharpDARTS's), asking for one with ``cosine`` is an error."""
    if schedule == "cosine":
        if warmup:
            raise ScheduleError(
                f"--lr-warmup {warmup} needs --lr-schedule cosine-power (sharpDARTS's "
                f"schedule; maxw's default); with plain cosine pass --lr-warmup 0")
        return cosine(epoch, total, lr_max, lr_min)
    if schedule == "cosine-power":
        return cosine_power(epoch, total, lr_max, lr_min, power, warmup)
    raise unknown("lr schedule", schedule, SCHEDULES)
