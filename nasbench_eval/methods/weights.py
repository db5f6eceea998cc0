"""Training the supernet's weights: the part every method that trains a supernet shares.

:class:`WeightTraining` owns the SGD optimizer over the supernet's weights (momentum, weight
decay, gradient clipping as the DARTS reference), the learning-rate schedule, the loss under
the run's autocast and one w step. A method without architecture parameters (msr,
random-ws) inherits it directly and only says which weights the supernet mixes with
(``self.train_weights``, the "mixing that ignores alpha"); the DARTS family adds the alpha
machinery on top (:class:`~nasbench_eval.methods.gradient.GradientMethod`).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from ..config import GLOBAL_DEFAULTS, RunConfig
from ..lazy_torch import F, nn, torch
from ..schedules import lr_at
from ..spaces.base import Space
from .base import ArchWeights, Batch, Method

if TYPE_CHECKING:
    from torch import Tensor


class WeightTraining(Method):
    """SGD on the supernet's weights, the w learning-rate schedule, the loss, the w step.

    The w step mixes with :meth:`w_step_weights`; by default ``self.train_weights``, which a
    weight-only method sets (MSR: fixed or stable-rank weights; random-ws: the sampled path).
    Its :meth:`mixing_weights` (what the runner evaluates with) defaults to a copy of them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.train_weights: ArchWeights = {}
        """The mixing weights of the w step for a method that ignores alpha."""

    def setup(self, supernet: nn.Module, space: Space, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        super().setup(supernet, space, cfg, steps_per_epoch)
        self.w_params = [p for p in supernet.parameters() if p.requires_grad]
        self.w_opt = torch.optim.SGD(self.w_params, lr=cfg.w_lr, momentum=cfg.w_momentum,
                                     weight_decay=cfg.w_weight_decay)
        self._set_lr(0)

    # ------------------------------------------------------------------ pieces
    def loss(self, batch: Batch, weights: ArchWeights, autocast: bool = True
             ) -> tuple[Tensor, Tensor]:
        """Cross-entropy of the supernet mixing with ``weights`` on ``batch``, and the logits.
        The forward runs in the run's precision (``autocast``), the loss in fp32."""
        x, y = batch
        with self.autocast() if autocast else nullcontext():
            logits = self.supernet(x, weights)
        if logits.dtype in (torch.bfloat16, torch.float16):
            logits = logits.float()  # the loss in fp32 (float64 models stay float64)
        return F.cross_entropy(logits, y), logits

    @property
    def lr(self) -> float:
        return self.w_opt.param_groups[0]["lr"]

    def setting(self, name: str) -> Any:
        """``cfg.<name>``, or this method's default for it when the config was not resolved
        (``resolve_config`` fills open settings before a run; a method built directly, as in
        tests, fills them the same way)."""
        value = getattr(self.cfg, name)
        if value is None:
            value = {**GLOBAL_DEFAULTS, **type(self).config_defaults}[name]
        return value

    def _set_lr(self, epoch: int) -> None:
        c = self.cfg
        lr = lr_at(self.setting("lr_schedule"), epoch, c.epochs, c.w_lr,
                   self.setting("w_lr_min"), c.lr_power, self.setting("lr_warmup"))
        for group in self.w_opt.param_groups:
            group["lr"] = lr

    def advance_epoch(self, epoch: int) -> None:
        """Epoch ``epoch`` (0-based) is over: the next one's learning rate."""
        self.epoch = epoch + 1
        self._set_lr(self.epoch)

    def w_step_weights(self, batch: Batch) -> ArchWeights:
        """Mixing weights for the w step (default: ``self.train_weights``)."""
        return self.train_weights

    def w_step(self, batch: Batch) -> dict[str, Tensor]:
        """One SGD step on the weights (gradient norm clipped to ``cfg.grad_clip``)."""
        weights = {k: v.detach() for k, v in self.w_step_weights(batch).items()}
        self.w_opt.zero_grad(set_to_none=True)
        loss, logits = self.loss(batch, weights)
        loss.backward()
        nn.utils.clip_grad_norm_(self.w_params, self.cfg.grad_clip)
        self.w_opt.step()
        y = batch[1]
        n = torch.full((), float(len(y)), device=y.device)  # a fill, not a blocking copy
        return {"train_loss": loss.detach() * n,
                "train_correct": (logits.detach().argmax(1) == y).sum().float(),
                "train_count": n}

    # ------------------------------------------------------------------ protocol
    def step(self, train_batch: Batch, val_batch: Batch) -> dict[str, Tensor]:
        """Only the weight step (the validation batch is unused)."""
        return self.w_step(train_batch)

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        out: dict[str, Any] = {"lr": self.lr}
        self.advance_epoch(epoch)
        return out

    def mixing_weights(self) -> ArchWeights:
        return {k: v.detach().clone() for k, v in self.train_weights.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"w_opt": self.w_opt.state_dict(), "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w_opt.load_state_dict(state["w_opt"])
        self.epoch = state["epoch"]
        self._set_lr(self.epoch)
