"""How a search executes on its device: memory layout, precision, kernel choice, compilation,
CUDA-graph capture of the step (:class:`StepRunner`).

The run's device (:func:`resolve_device`) and :class:`Execution` (from
:func:`resolve_execution`) are resolved once, by the runner; the execution object is the one
thing that travels to the supernet (:func:`prepare_model`), the method
(``Method.set_execution``) and the data streams.

These settings change how fast a search runs, not what it computes (up to floating-point
rounding), so they are execution fields of :class:`~nasbench_eval.config.RunConfig`: they do
not enter the run id, and the effective values are recorded in ``config.json``/``summary.json``
(``execution``) so a reader knows how each run was computed.

``auto`` picks what measured fastest on each kind of device (benchmarks/search_speed.py):

* ``memory_format``: ``channels_last`` on CUDA (tensor-core convolutions want NHWC) and on the
  CPU (oneDNN's depthwise and pooling kernels run 1.2-2x faster in NHWC at the search sizes);
* ``precision``: ``bf16`` autocast on CUDA; ``fp32`` on the CPU, where bf16 autocast measured
  slower (no native bf16 convolutions on this class of CPU). Master weights, alpha, the
  mixing softmax, the loss and the Hessian probes stay in fp32 in every case;
* ``cudnn.benchmark`` on CUDA (every step has the same shapes, so the autotuning pays once);
* ``fused_edges``: the space family's ``fused_edges_default``. DARTS cells: on, they run
  source-fused (:mod:`.spaces.darts.fused_cell`): the candidates of all edges leaving a state
  run as one kernel per candidate, with a custom CPU backward for depthwise convs
  (:mod:`.spaces.darts.dwconv`). NAS-Bench-201 cells: off, their fused path
  (:mod:`.spaces.nb201.fused_cell`, ``--fused-edges on``) measured slower on the CPU
  (docs/nb201.md). Families without a fused path ignore the setting.

``compile`` (off by default) wraps the supernet in ``torch.compile``; on the CPU it measured
a 300 s compilation for a 1.2x faster step at the small benchmark setting, so it only pays
for long searches; second-order and PGD steps run through it unchanged.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .errors import NasbenchEvalError, did_you_mean

if TYPE_CHECKING:
    from .methods import Method
    from .spaces.supernet import SupernetBase

MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
PRECISIONS = ("auto", "fp32", "bf16")
DATA_LOADERS = ("device", "torch")
FUSED_EDGES = ("auto", "on", "off")


THREADS_ENV = "NASBENCH_EVAL_THREADS"
"""Torch's CPU threads for ``run``, ``evaluate`` and an in-process sweep, when ``--threads`` is
not given (``OMP_NUM_THREADS`` is honoured too, as torch honours it); default 1."""


def choose_threads(requested: int | None = None) -> tuple[int, str]:
    """How many CPU threads torch should use, and why (for the run's first line).

    ``requested`` (``--threads N``), else ``$NASBENCH_EVAL_THREADS``, else
    ``$OMP_NUM_THREADS`` (torch's own setting), else 1. Why one: the small searches of a CPU
    run are bound by per-op overhead, and threads that compete with another job for the same
    cores thrash (a 4-step epoch measured 54.7 s with 2 threads beside another job, 2.5 s
    with 1; alone, 2 threads gained 13%). And the thread count changes results (the
    reduction order: after 4 steps train_acc 0.129 with 1 thread, 0.137 with 2), so a fixed
    default gives the same numbers on every machine and at every load, which a count chosen
    from the cores or the load would not."""
    import os

    if requested is not None:
        if requested < 1:
            raise NasbenchEvalError(f"--threads: expected an integer >= 1, got {requested}")
        return requested, "--threads"
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise NasbenchEvalError(f"${THREADS_ENV}: expected an integer >= 1, got {env!r}")
        return int(env), f"${THREADS_ENV}"
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads(), "$OMP_NUM_THREADS"
    return 1, "the default: reproducible at any load, no thrashing beside other jobs"


def set_threads(requested: int | None = None) -> str:
    """Apply :func:`choose_threads` to torch; returns the line a command prints about it."""
    n, why = choose_threads(requested)
    torch.set_num_threads(n)
    return (f"torch CPU threads: {n} ({why}; set with --threads N or ${THREADS_ENV})")


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NasbenchEvalError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NasbenchEvalError(f"device '{name}' requested but CUDA is not available here")
    return device


@dataclass(frozen=True)
class Execution:
    """The effective execution settings of one run on one device: the one object that says
    how (not what) a run computes; recorded as ``execution`` in ``config.json``."""

    memory_format: str
    precision: str
    data_loader: str
    cudnn_benchmark: bool
    compile: bool
    cuda_graphs: bool = False
    fused_edges: bool = False

    @property
    def torch_memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.memory_format == "channels_last" else torch.contiguous_format

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The autocast region of the supernet's forward (nothing in fp32)."""
        if self.precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def to_dict(self) -> dict[str, Any]:
        return {"memory_format": self.memory_format, "precision": self.precision,
                "data_loader": self.data_loader, "cudnn_benchmark": self.cudnn_benchmark,
                "compile": self.compile, "cuda_graphs": self.cuda_graphs,
                "fused_edges": self.fused_edges}


def _check(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise NasbenchEvalError(f"unknown {name} {value!r}; valid choices: {', '.join(valid)}"
                                + did_you_mean(value, valid))


def resolve_execution(memory_format: str, precision: str, data_loader: str, compile: bool,
                      device: torch.device, cuda_graphs: bool = False,
                      fused_edges: str = "auto", fused_default: bool = True) -> Execution:
    """Turn the ``auto`` settings into concrete ones for ``device``; ``fused_default`` is what
    ``fused_edges`` ``auto`` means for the run's space family (``fused_edges_default``)."""
    _check("memory_format", memory_format, MEMORY_FORMATS)
    _check("precision", precision, PRECISIONS)
    _check("data_loader", data_loader, DATA_LOADERS)
    _check("fused_edges", fused_edges, FUSED_EDGES)
    cuda = device.type == "cuda"
    if cuda_graphs and not cuda:
        raise NasbenchEvalError(f"CUDA graphs need a CUDA device; this run is on {device} "
                                f"(drop --cuda-graphs, or use --device cuda)")
    if cuda_graphs and compile:
        raise NasbenchEvalError("--cuda-graphs and --compile both capture the step; choose one "
                                "(--compile uses torch.compile's reduce-overhead mode on CUDA)")
    if memory_format == "auto":
        memory_format = "channels_last"
    if precision == "auto":
        precision = "bf16" if cuda else "fp32"
    return Execution(memory_format, precision, data_loader, cudnn_benchmark=cuda,
                     compile=bool(compile), cuda_graphs=bool(cuda_graphs),
                     fused_edges=fused_default if fused_edges == "auto" else fused_edges == "on")


# the resolved settings of Execution that change what a run computes (see config.py's
# _IDENTITY_EXECUTION); cuda_graphs is left out (resuming without it is its documented fallback)
_COMPUTING = ("data_loader", "memory_format", "precision", "compile", "fused_edges")


def execution_resume_conflict(recorded: Mapping[str, Any] | None, recorded_device: str | None,
                              ex: Execution, device: torch.device) -> str | None:
    """What would compute differently if a run that started with the resolved execution
    ``recorded`` (config.json's ``execution``) on ``recorded_device`` (its environment's
    ``device``) were continued with ``ex`` on ``device``, or None.

    The run id covers the settings the user gives, but ``auto`` resolves per machine (bf16 on
    CUDA, fp32 on the CPU), the device's random generator is another one, and run
    directories written before issue 17 share one id across data loaders and layouts; one run
    must not be computed half one way and half another."""
    diffs = [f"{k} {recorded[k]!r} -> {getattr(ex, k)!r}" for k in _COMPUTING
             if recorded and k in recorded and recorded[k] != getattr(ex, k)]
    if recorded_device and str(recorded_device).split(":", 1)[0] != device.type:
        diffs.append(f"device {recorded_device} -> {device}")
    return "; ".join(diffs) or None


def reference_execution() -> dict[str, Any]:
    """The RunConfig settings of the reference-style path: what the public DARTS code does
    (a CPU DataLoader with per-image transforms, fp32, NCHW, no cuDNN autotuning, one
    module call per candidate of every edge)."""
    return {"memory_format": "contiguous", "precision": "fp32", "data_loader": "torch",
            "compile": False, "cuda_graphs": False, "fused_edges": "off"}


def prepare_model(model: SupernetBase, ex: Execution, device: torch.device) -> SupernetBase:
    """Apply layout, backend flags, the fused-edges switch (a seam call: families without a
    fused path ignore it) and compilation to a freshly built supernet (in place)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = ex.cudnn_benchmark
    model.to(memory_format=ex.torch_memory_format)
    model.set_fused_edges(ex.fused_edges)
    if ex.compile:
        # in place, so state_dict keys (and checkpoints) are those of the plain module;
        # CUDA graphs (reduce-overhead) only where there is a GPU to capture on
        model.compile(mode="reduce-overhead" if device.type == "cuda" else None)
    return model


class StepRunner:
    """Runs ``method.step`` on persistent input buffers, and on CUDA (``capture``) records it
    once per epoch as a CUDA graph that every later step of the epoch replays.

    Why per epoch: a captured graph bakes in every Python number the step used (the w
    learning rate of the cosine schedule, SDARTS's eps ramp, R-DARTS's drop-path rate), and
    those change only between epochs. The first ``warmup`` steps of an epoch run eagerly
    (on a side stream, as CUDA graph capture requires; they also create optimizer state),
    the next one is captured and replayed, the rest replay.

    Methods opt in with ``capturable = True`` (the base declares ``False``): their step has
    no host-side state that changes per step; the others run the same buffers eagerly. A
    capture that raises stops the run with an error naming the cause (status ``failed``;
    ``--resume`` without ``--cuda-graphs`` continues it eagerly): falling back inside a
    broken capture could leave the CUDA stream and generator state corrupt. Inputs are
    copied into the buffers, outputs cloned out of the graph's, so callers see ordinary
    tensors. Not yet run on a GPU in this project's CI or sessions:
    benchmarks/search_speed.py --trajectory is the check that it computes what the eager
    step computes.
    """

    def __init__(self, method: Method, capture: bool = False, warmup: int = 3):
        self.method = method
        self.capture = bool(capture) and bool(method.capturable)
        self.warmup = warmup
        self.buffers: list[torch.Tensor] | None = None
        self.graph: Any = None
        self.outputs: dict[str, torch.Tensor] | None = None
        self.eager_steps = 0
        self.failed: str | None = None

    def begin_epoch(self) -> None:
        """Forget the captured graph: the next steps warm up and capture again."""
        self.graph, self.outputs, self.eager_steps = None, None, 0

    def _load(self, tensors: tuple[torch.Tensor, ...]) -> None:
        if self.buffers is None or any(b.shape != t.shape or b.dtype != t.dtype
                                       for b, t in zip(self.buffers, tensors)):
            if self.graph is not None:
                self.begin_epoch()  # a new shape (a last, smaller batch) cannot replay
            self.buffers = [t.clone() for t in tensors]
        else:
            for b, t in zip(self.buffers, tensors):
                b.copy_(t, non_blocking=True)

    def _eager(self) -> dict[str, torch.Tensor]:
        b = self.buffers
        return self.method.step((b[0], b[1]), (b[2], b[3]))

    def __call__(self, train_batch: tuple[torch.Tensor, torch.Tensor],
                 val_batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._load((*train_batch, *val_batch))
        if not self.capture or self.failed:
            return self._eager()
        if self.graph is not None:
            self.graph.replay()
            return {k: v.clone() for k, v in self.outputs.items()}
        if self.eager_steps < self.warmup:
            self.eager_steps += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self._eager()
            torch.cuda.current_stream().wait_stream(side)
            return out
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = self._eager()
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:
            cause = exc.__context__ or exc  # capture_end's error hides the body's
            self.failed = f"{type(cause).__name__}: {cause}"
            raise NasbenchEvalError(
                f"CUDA graph capture of the {self.method.name} step failed ({self.failed}); "
                f"resume the run without --cuda-graphs to continue it eagerly") from exc
        self.graph, self.outputs = graph, outputs
        graph.replay()  # capture records, it does not run: this is the step itself
        return {k: v.clone() for k, v in outputs.items()}
