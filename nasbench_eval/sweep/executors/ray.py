"""The Ray executor: every cell a Ray task, on a cluster or a local Ray instance."""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from ..spec import Cell, SweepError
from . import EXECUTORS
from .base import Emit, Executor, SummaryWatch, failed, interrupted, run_cell

RAY_MISSING = ("the ray executor needs Ray, which is not installed here: "
               "pip install 'nasbench-eval[ray]'")


def _ray_task(config: dict[str, Any], threads: int) -> dict[str, Any]:
    """Body of a Ray task: one run with ``threads`` torch threads (the CPUs Ray gave it)."""
    return run_cell(config, threads)


def import_ray():
    try:
        import ray
    except ImportError:
        raise SweepError(RAY_MISSING) from None
    return ray


@EXECUTORS.register
class RayExecutor(Executor):
    """Each cell a Ray task: ``num_gpus=1`` when ``gpus`` > 0 (at most ``gpus`` at a time),
    else ``num_cpus=cpus_per_run`` (default 1) with as many torch threads.

    Connects to ``address`` (``auto``, ``ray://host:10001``, ...), or to the Ray instance this
    process already initialised, or starts a local one (shut down again at the end). Run
    directories are written by the workers, so on a cluster ``out`` must be a shared path.
    """

    name = "ray"

    def __init__(self, address: str | None = None, gpus: int = 0,
                 cpus_per_run: int | None = None, poll_s: float = 1.0) -> None:
        self.address = address
        self.gpus = gpus
        self.cpus_per_run = cpus_per_run or 1
        self.poll_s = poll_s

    @classmethod
    def from_settings(cls, gpus: int = 0, ray_address: str | None = None,
                      cpus_per_run: int | None = None,
                      workers: int | None = None,
                      options: Mapping[str, Any] | None = None) -> RayExecutor:
        if workers:
            raise SweepError("workers is only for --executor local (Ray runs as many tasks as "
                             "the cluster has CPUs for)")
        return cls(address=ray_address, gpus=gpus, cpus_per_run=cpus_per_run)

    def check(self) -> None:
        import_ray()

    def execute(self, cells: list[Cell], emit: Emit) -> None:
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address)
        try:
            self._execute(ray, cells, emit)
        finally:
            if started_here:
                ray.shutdown()

    def _execute(self, ray, cells: list[Cell], emit: Emit) -> None:
        resources = ray.cluster_resources()
        if self.gpus and resources.get("GPU", 0) < 1:
            raise SweepError("GPUs were requested (--gpus) but the Ray cluster has none")
        if resources.get("CPU", 0) < self.cpus_per_run:
            raise SweepError(f"each run asks for {self.cpus_per_run} CPU(s) but the Ray "
                             f"cluster has {resources.get('CPU', 0):g}")
        task = ray.remote(_ray_task).options(
            num_cpus=self.cpus_per_run, num_gpus=1 if self.gpus else 0, retry_exceptions=False)
        limit = self.gpus or len(cells)
        queue: deque[Cell] = deque(cells)
        inflight: dict[Any, tuple[Cell, float]] = {}
        watch = SummaryWatch()
        try:
            while queue or inflight:
                while queue and len(inflight) < limit:
                    cell = queue.popleft()
                    abs_cfg = {**cell.config.to_dict(),
                               "out": str(Path(cell.config.out).resolve())}
                    inflight[task.remote(abs_cfg, self.cpus_per_run)] = (cell, time.time())
                    emit(cell, "queued", {})
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=self.poll_s)
                for ref in done:
                    cell, _since = inflight.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        outcome = failed(f"{type(exc).__name__}: {str(exc).strip()[-2000:]}")
                    emit(cell, "end", outcome)
                for cell, since in inflight.values():
                    watch.poll(cell, since, emit)
        except KeyboardInterrupt:
            for ref, (cell, _since) in inflight.items():
                ray.cancel(ref)  # KeyboardInterrupt in the task: the run marks itself interrupted
                emit(cell, "end", interrupted())
            raise

