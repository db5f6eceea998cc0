"""Learning-rate schedules over search epochs, in closed form.

Closed forms (rather than torch's recursive schedulers) make the lr of any epoch a pure
function of the epoch, which keeps resume exact and the formulas testable.
"""
from __future__ import annotations

import math

from .errors import unknown


def cosine(epoch: int, total: int, lr_max: float, lr_min: float) -> float:
    """Cosine annealing (Loshchilov & Hutter; sharpDARTS Eq. 1)."""
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * epoch / total))


def cosine_power(epoch: int, total: int, lr_max: float, lr_min: float, p: float) -> float:
    """Cosine Power Annealing (sharpDARTS Eq. 2); p = 1 falls back to cosine, as the paper says.

    lr = lr_min + (lr_max - lr_min) * (p ** (0.5 * (1 + cos(pi t / T)) + 1) - p) / (p^2 - p)
    """
    if p <= 0:
        raise ValueError(f"cosine-power needs p > 0, got {p}")
    if p == 1.0:
        return cosine(epoch, total, lr_max, lr_min)
    c = 0.5 * (1.0 + math.cos(math.pi * epoch / total))
    return lr_min + (lr_max - lr_min) * (p ** (c + 1.0) - p) / (p * p - p)


SCHEDULES = ("cosine", "cosine-power")


def lr_at(schedule: str, epoch: int, total: int, lr_max: float, lr_min: float,
          power: float = 2.0) -> float:
    if schedule == "cosine":
        return cosine(epoch, total, lr_max, lr_min)
    if schedule == "cosine-power":
        return cosine_power(epoch, total, lr_max, lr_min, power)
    raise unknown("lr schedule", schedule, SCHEDULES)
