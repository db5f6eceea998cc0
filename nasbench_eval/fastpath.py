"""How a search executes on its device: memory layout, precision, kernel choice, compilation.

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
* ``cudnn.benchmark`` on CUDA (every step has the same shapes, so the autotuning pays once).

``compile`` (off by default) wraps the supernet in ``torch.compile``; on the CPU it measured
a 300 s compilation for a 1.2x faster step at the small benchmark setting, so it only pays
for long searches; second-order and PGD steps run through it unchanged.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
PRECISIONS = ("auto", "fp32", "bf16")
DATA_LOADERS = ("device", "torch")


@dataclass(frozen=True)
class Execution:
    """The effective execution settings of one run on one device."""

    memory_format: str
    precision: str
    data_loader: str
    cudnn_benchmark: bool
    compile: bool

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
                "compile": self.compile}


def _check(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        from .errors import NasbenchEvalError

        raise NasbenchEvalError(f"unknown {name} {value!r}; valid choices: {', '.join(valid)}")


def resolve_execution(memory_format: str, precision: str, data_loader: str, compile: bool,
                      device: torch.device) -> Execution:
    """Turn the ``auto`` settings into concrete ones for ``device``."""
    _check("memory_format", memory_format, MEMORY_FORMATS)
    _check("precision", precision, PRECISIONS)
    _check("data_loader", data_loader, DATA_LOADERS)
    cuda = device.type == "cuda"
    if memory_format == "auto":
        memory_format = "channels_last"
    if precision == "auto":
        precision = "bf16" if cuda else "fp32"
    return Execution(memory_format, precision, data_loader, cudnn_benchmark=cuda,
                     compile=bool(compile))


def reference_execution() -> dict[str, Any]:
    """The RunConfig settings of the reference-style path: what the public DARTS code does
    (a CPU DataLoader with per-image transforms, fp32, NCHW, no cuDNN autotuning)."""
    return {"memory_format": "contiguous", "precision": "fp32", "data_loader": "torch",
            "compile": False}


def prepare_model(model: nn.Module, ex: Execution, device: torch.device) -> nn.Module:
    """Apply layout, backend flags and compilation to a freshly built supernet (in place)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = ex.cudnn_benchmark
    model.to(memory_format=ex.torch_memory_format)
    if ex.compile:
        # in place, so state_dict keys (and checkpoints) are those of the plain module;
        # CUDA graphs (reduce-overhead) only where there is a GPU to capture on
        model.compile(mode="reduce-overhead" if device.type == "cuda" else None)
    return model
