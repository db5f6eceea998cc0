"""The Ray executor: every cell a Ray task, on a cluster or a local Ray instance."""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from ..spec import Cell, SweepError
from . import EXECUTORS
from ..packs import interrupted_outcome, pack_label, run_unit
from .base import Emit, Executor, SummaryWatch, failed

RAY_MISSING = ("the ray executor needs Ray, which is not installed here: "
               "pip install 'nasbench-eval[ray]'")


def _ray_task(configs: list[dict[str, Any]], threads: int) -> list[dict[str, Any]]:
    """Body of a Ray task: one unit of work (a run, or the seeds of a pack run as one packed
    search) with ``threads`` torch threads (the CPUs Ray gave it); an outcome per run."""
    return run_unit(configs, threads)


def import_ray():
    try:
        import ray
    except ImportError:
        raise SweepError(RAY_MISSING) from None
    return ray


@EXECUTORS.register
class RayExecutor(Executor):
    """Each cell (with ``--pack K``, each pack of up to K seeds) a Ray task: ``num_gpus=1``
    when ``gpus`` > 0 (at most ``gpus`` at a time), else ``num_cpus=cpus_per_run`` (default
    1) with as many torch threads.

    Connects to ``address`` (``auto``, ``ray://host:10001``, ...), or to the Ray instance this
    process already initialised, or starts a local one (shut down again at the end). Run
    directories are written by the workers, so on a cluster ``out`` must be a shared path.
    """

    name = "ray"
    packs_refused = None

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
        self.execute_packs([[c] for c in cells], emit)

    def execute_packs(self, units: list[list[Cell]], emit: Emit) -> None:
        """One Ray task per unit (a cell, or the seeds of a pack)."""
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address)
        try:
            self._execute(ray, units, emit)
        finally:
            if started_here:
                ray.shutdown()

    def _execute(self, ray, units: list[list[Cell]], emit: Emit) -> None:
        resources = ray.cluster_resources()
        if self.gpus and resources.get("GPU", 0) < 1:
            raise SweepError("GPUs were requested (--gpus) but the Ray cluster has none")
        if resources.get("CPU", 0) < self.cpus_per_run:
            raise SweepError(f"each run asks for {self.cpus_per_run} CPU(s) but the Ray "
                             f"cluster has {resources.get('CPU', 0):g}")
        task = ray.remote(_ray_task).options(
            num_cpus=self.cpus_per_run, num_gpus=1 if self.gpus else 0, retry_exceptions=False)
        limit = self.gpus or len(units)
        queue: deque[list[Cell]] = deque(units)
        inflight: dict[Any, tuple[list[Cell], float]] = {}
        watch = SummaryWatch()
        try:
            while queue or inflight:
                while queue and len(inflight) < limit:
                    unit = queue.popleft()
                    configs = [{**c.config.to_dict(), "out": str(Path(c.config.out).resolve())}
                               for c in unit]
                    inflight[task.remote(configs, self.cpus_per_run)] = (unit, time.time())
                    for cell in unit:
                        emit(cell, "queued", {"pack": pack_label(unit)} if len(unit) > 1 else {})
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=self.poll_s)
                for ref in done:
                    unit, _since = inflight.pop(ref)
                    try:
                        outcomes = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        outcomes = [failed(f"{type(exc).__name__}: "
                                           f"{str(exc).strip()[-2000:]}")] * len(unit)
                    for cell, outcome in zip(unit, outcomes):
                        emit(cell, "end", outcome)
                for unit, since in inflight.values():
                    for cell in unit:
                        watch.poll(cell, since, emit)
        except KeyboardInterrupt:
            for ref, (unit, _since) in inflight.items():
                ray.cancel(ref)  # KeyboardInterrupt in the task: its runs mark themselves
                # interrupted
                for cell in unit:
                    emit(cell, "end", interrupted_outcome(cell))
            raise
