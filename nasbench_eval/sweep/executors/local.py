"""The local executor: this machine, in this process or in worker processes (CPU slots or
one per GPU)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from ...rundir import atomic_write
from ..spec import Cell, SweepError
from . import EXECUTORS
from .base import Emit, Executor, SummaryWatch, failed, interrupted, run_cell


@EXECUTORS.register
class LocalExecutor(Executor):
    """This machine. Without GPUs: one run after another, in this process, or with
    ``workers=N`` up to N worker processes at a time (CPU; ``cpus_per_run`` threads each,
    default 1). With ``gpus=N``: up to N worker processes at a time, each seeing one GPU
    (``CUDA_VISIBLE_DEVICES``).

    ``cpus_per_run`` sets torch's CPU threads for each run (default: torch's own choice).
    ``gpu_ids`` overrides the devices given to the workers (default ``0..N-1``).
    """

    name = "local"

    def __init__(self, gpus: int = 0, cpus_per_run: int | None = None,
                 gpu_ids: list[str] | None = None, poll_s: float = 0.5,
                 workers: int | None = None) -> None:
        if gpus and workers:
            raise SweepError("workers is for CPU sweeps; with --gpus N there is one worker "
                             "per GPU already")
        self.gpus = gpus
        self.workers = workers if workers and workers > 1 else None
        self.cpus_per_run = cpus_per_run if cpus_per_run or not self.workers else 1
        self.gpu_ids = gpu_ids
        self.poll_s = poll_s

    @classmethod
    def from_settings(cls, gpus: int = 0, ray_address: str | None = None,
                      cpus_per_run: int | None = None,
                      workers: int | None = None,
                      options: Mapping[str, Any] | None = None) -> LocalExecutor:
        if ray_address:
            raise SweepError("--ray-address is only for --executor ray")
        return cls(gpus=gpus, cpus_per_run=cpus_per_run, workers=workers)

    def check(self) -> None:
        if self.gpus and self.gpu_ids is None:
            import torch

            have = torch.cuda.device_count()
            if self.gpus > have:
                raise SweepError(f"--gpus {self.gpus}: this machine has {have} CUDA GPU(s)")

    def execute(self, cells: list[Cell], emit: Emit) -> None:
        if self.gpus or self.gpu_ids or self.workers:
            self._pool(cells, emit)
        else:
            self._sequential(cells, emit)

    def _sequential(self, cells: list[Cell], emit: Emit) -> None:
        for cell in cells:
            emit(cell, "running", {})

            def epoch_end(epoch: int, row: dict[str, Any], cell: Cell = cell) -> None:
                emit(cell, "epoch", {"epochs_done": epoch + 1,
                                     "test_error": row.get("anytime_test_error")})

            try:
                result = run_cell(cell.config.to_dict(), self.cpus_per_run, epoch_end)
            except KeyboardInterrupt:
                emit(cell, "end", interrupted())
                raise
            emit(cell, "end", result)
            _release_memory()

    def _pool(self, cells: list[Cell], emit: Emit) -> None:
        if self.workers:  # CPU slots: the workers keep the caller's environment
            devices = [f"cpu{i}" for i in range(self.workers)]
        else:
            devices = list(self.gpu_ids if self.gpu_ids is not None
                           else [str(i) for i in range(self.gpus)])
        queue, free = deque(cells), list(devices)
        active: dict[subprocess.Popen, tuple[Cell, str, Path, float]] = {}
        watch = SummaryWatch()
        tmp = Path(tempfile.mkdtemp(prefix="nasbench-sweep-"))
        try:
            while queue or active:
                while queue and free:
                    cell, device = queue.popleft(), free.pop(0)
                    job, result = tmp / f"{cell.index}.job.json", tmp / f"{cell.index}.result.json"
                    job.write_text(json.dumps({"config": cell.config.to_dict(),
                                               "threads": self.cpus_per_run}))
                    env = (dict(os.environ) if device.startswith("cpu")
                           else {**os.environ, "CUDA_VISIBLE_DEVICES": device})
                    proc = subprocess.Popen(
                        [sys.executable, "-c",
                         "from nasbench_eval.sweep.executors.local import worker_main; worker_main()",
                         str(job), str(result)], env=env)
                    active[proc] = (cell, device, result, time.time())
                    emit(cell, "queued", {"device": device})
                time.sleep(self.poll_s)
                for proc, (cell, device, result, since) in list(active.items()):
                    watch.poll(cell, since, emit)
                    code = proc.poll()
                    if code is None:
                        continue
                    try:
                        outcome = json.loads(result.read_text())
                    except (OSError, ValueError):
                        outcome = failed(f"worker process exited with code {code} "
                                          f"before reporting a result")
                    emit(cell, "end", outcome)
                    free.append(device)
                    del active[proc]
        except KeyboardInterrupt:
            # the workers got the same Ctrl-C (one process group): their runs mark themselves
            # interrupted; give them a moment, then make sure none outlives the sweep
            deadline = time.time() + 30
            for proc, (cell, *_rest) in active.items():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                emit(cell, "end", interrupted())
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _release_memory() -> None:
    import gc

    gc.collect()
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _exit_with_parent() -> None:
    """A worker must not outlive the sweep that started it (no run may be driven twice)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def worker_main(argv: list[str] | None = None) -> None:
    """Entry point of a local GPU worker: run one cell, write its outcome as JSON."""
    job_path, result_path = (argv if argv is not None else sys.argv[1:])[:2]
    _exit_with_parent()
    job = json.loads(Path(job_path).read_text())
    outcome = run_cell(job["config"], job.get("threads"))
    atomic_write(result_path, json.dumps(outcome))

