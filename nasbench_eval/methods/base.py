"""The interface every search method implements, and the method registry.

The runner, the sweeps and the analysis only ever call :class:`Method`'s methods, so a new
method is a new module in this package (or one plugin file, see docs/methods.md), registered
with :func:`register`, never a new branch elsewhere. Like optuna's ``BaseSampler``, the
interface has a few calls every method must provide (``step``, ``mixing_weights``,
``derive``) and optional hooks whose defaults do nothing; callers call every hook
unconditionally, so nobody probes a method with ``hasattr``.

Two bases build on :class:`Method` and carry the shared machinery:

* :class:`~nasbench_eval.methods.weights.WeightTraining`: SGD on the supernet's weights, the
  learning-rate schedule, the loss under the run's autocast (msr, random-ws);
* :class:`~nasbench_eval.methods.gradient.GradientMethod`: the DARTS alpha machinery on top
  (alphas, Adam, the alpha step, the Hessian eigenvalue) for every gradient-based method.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..config import RunConfig
from ..errors import NasbenchEvalError
from ..options import Option, resolve_options
from ..registry import Registry
from ..spaces.base import Genotype
from ..spaces.base import Space

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

Batch = tuple["Tensor", "Tensor"]
ArchWeights = dict[str, "Tensor"]


class Mixing(Protocol):
    """Maps architecture parameters to the per-edge weights the supernet mixes with."""

    def __call__(self, alphas: ArchWeights) -> ArchWeights: ...


class Method:
    """A search method: what the runner calls, with defaults for every optional hook.

    Must override: :meth:`step`, :meth:`mixing_weights`, :meth:`derive` (and call
    ``super().setup`` when overriding :meth:`setup`). Everything else has a working default.
    Class attributes describe the method to the CLI, sweeps and ``list methods``.
    """

    name: ClassVar[str] = ""
    """Registry name (``--method NAME``)."""
    paper: ClassVar[str] = ""
    """Citation shown by ``nasbench-eval list methods``."""
    options: ClassVar[dict[str, Option]] = {}
    """Method-specific options (typed schema); ``cfg.method_options`` overrides the defaults.
    The CLI turns each into a ``--flag`` (``pgd_steps`` -> ``--pgd-steps``), sweep files are
    checked against it, and :meth:`setup` puts the parsed values in ``self.opts``."""
    config_defaults: ClassVar[dict[str, Any]] = {}
    """RunConfig settings this method defaults differently (only ``GLOBAL_DEFAULTS`` keys)."""
    families: ClassVar[tuple[str, ...]] = ()
    """Space families this method applies to (``list methods`` shows them; the default
    :meth:`adapt_space` refuses a space of another family). Empty: every family, since a
    method that only mixes rows of the architecture weights works on any."""
    needs: ClassVar[tuple[str, ...]] = ()
    """Supernet seam calls beyond the forward that this method relies on (``list methods``
    shows them; a supernet without one refuses with a ``SupernetSeamError`` at setup)."""
    capturable: ClassVar[bool] = False
    """True when a step keeps no host-side state that changes from step to step, so a CUDA
    graph of it (execution.StepRunner, recaptured every epoch) replays the same computation."""

    def __init__(self) -> None:
        self.epoch = 0
        self.opts: dict[str, Any] = {}
        self.autocast: Callable[[], AbstractContextManager[Any]] = nullcontext
        """Context of the run's precision for supernet forwards (see :meth:`set_execution`)."""

    @classmethod
    def options_in_use(cls, given: dict[str, Any]) -> set[str]:
        """Which of ``given`` (a sweep's shared options, parsed) this method uses together
        with the rest of them. A sweep hands a method only these, so an option it would
        ignore (e.g. an attack's steps without an attack) never changes its run id.
        Default: every one it declares."""
        return {k for k in given if k in cls.options}

    @classmethod
    def legacy_resume_conflict(cls, config: dict[str, Any]) -> str | None:
        """Why an unfinished run of this method written before issue 16 (``config``: its
        config.json settings) must not be resumed by this version, or None. A method whose
        computation changed under an unchanged run id says so here (darts-es ``power``, msr
        ``stable-rank``); the runner refuses such a resume instead of mixing two versions."""
        return None

    @classmethod
    def description(cls) -> str:
        """First line of the class docstring (``list methods``)."""
        return method_description(cls)

    # ------------------------------------------------------------------ before the search
    def adapt_space(self, space: Space) -> Space:
        """The space this method searches, given the requested one: unchanged (default),
        restricted (e.g. MSR keeps only convolutions) or refused with a clear error. Called
        before the supernet is built, also by sweeps to check a grid. The default refuses a
        space whose family is not in :attr:`families` (an override calls ``super()``)."""
        if self.families and space.family not in self.families:
            raise NasbenchEvalError(
                f"method '{self.name}' applies to spaces of family {' or '.join(self.families)} "
                f"only; space '{space.name}' is of family '{space.family}'")
        return space

    def resolve_options(self, cfg: RunConfig) -> dict[str, Any]:
        """This method's options: the schema's defaults overridden by ``cfg.method_options``,
        parsed and checked (an error names the flag, an unknown key lists the valid ones)."""
        return resolve_options(f"method '{self.name}'", self.options, cfg.method_options)

    def setup(self, supernet: nn.Module, space: Space, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        """Build optimizers and schedules; called once before the first step. The default
        keeps the arguments and resolves ``self.opts``; overrides call it first."""
        self.supernet, self.space, self.cfg = supernet, space, cfg
        self.steps_per_epoch = steps_per_epoch
        self.opts = self.resolve_options(cfg)
        self.device = next(supernet.parameters()).device

    def set_execution(self, execution: Any, device: torch.device) -> None:
        """Adopt the run's precision (called after :meth:`setup`): supernet forwards run
        under ``self.autocast()``; mixing weights and losses stay fp32."""
        self.autocast = lambda: execution.autocast(device)

    def bind_data(self, streams: dict[str, Any]) -> None:
        """The run's batch streams (``train``, ``val``, ``val_eval``; called once after
        :meth:`setup`), for methods that change augmentation over the search (R-DARTS's
        cutout ramp, through ``BatchStream.set_cutout``) or score architectures on
        search-val themselves (random-ws). Default: ignored."""

    def make_capturable(self, flag: bool = True) -> None:
        """Keep optimizer step counters on the device when ``flag`` (CUDA-graph replay must
        count steps); called on every run before the first step. Default: nothing to move."""

    # ------------------------------------------------------------------ the search
    def step(self, train_batch: Batch, val_batch: Batch) -> dict[str, Tensor]:
        """One search step. Returns device tensors (no host sync): at least ``train_loss``,
        ``train_correct`` and ``train_count`` summed over the batch's examples."""
        raise NotImplementedError(f"method '{self.name}' does not define step()")

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """Advance schedules after epoch ``epoch`` (0-based); returns values to log. A
        ``stop_reason`` entry (text) ends the search after this epoch (e.g. early stopping);
        the runner records it in summary.json and takes ``derive()`` as the final genotype."""
        self.epoch = epoch + 1
        return {}

    def mixing_weights(self) -> ArchWeights:
        """The weights the supernet mixes with when it is evaluated (no perturbation)."""
        raise NotImplementedError(f"method '{self.name}' does not define mixing_weights()")

    def derive(self) -> Genotype:
        """The current discrete architecture."""
        raise NotImplementedError(f"method '{self.name}' does not define derive()")

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed search needs besides the supernet's own state_dict."""
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state.get("epoch", 0)


METHODS: Registry[type[Method]] = Registry("method", "nasbench_eval.methods")
"""Every method by name: this package's modules, then ``$NASBENCH_EVAL_PLUGINS``."""


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available by its ``name`` everywhere (CLI, sweeps)."""
    return METHODS.register(cls)


def method_class(name: str) -> type[Method]:
    """The class of a registered method; an unknown name lists the valid ones."""
    return METHODS.get(name)


def create_method(name: str) -> Method:
    return method_class(name)()


def load_all() -> dict[str, type[Method]]:
    """Every registered method (imports this package's modules and the plugins)."""
    return METHODS.all()


def method_description(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
