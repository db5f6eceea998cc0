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
from ..packs import interrupted_outcome, pack_label, run_unit
from ..spec import Cell, SweepError
from . import EXECUTORS
from .base import Emit, Executor, SummaryWatch, failed, run_cell


@EXECUTORS.register
class LocalExecutor(Executor):
    """This machine. Without GPUs: one run after another, in this process, or with
    ``workers=N`` up to N worker processes at a time (CPU; ``cpus_per_run`` threads each,
    default 1). With ``gpus=N``: up to N worker processes at a time, each seeing one GPU
    (``CUDA_VISIBLE_DEVICES``). With ``--pack K`` a unit of work (one in-process call, one
    worker) is a pack of up to K seeds.

    ``cpus_per_run`` sets torch's CPU threads for each run (default: torch's own choice).
    ``gpu_ids`` overrides the devices given to the workers (default ``0..N-1``).
    """

    name = "local"
    packs_refused = None

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
        self.execute_packs([[c] for c in cells], emit)

    def execute_packs(self, units: list[list[Cell]], emit: Emit) -> None:
        """Each unit (one cell, or the seeds of a pack) in turn in this process, or one per
        worker process (a CPU slot or a GPU)."""
        if self.gpus or self.gpu_ids or self.workers:
            self._pool(units, emit)
        else:
            self._sequential(units, emit)

    def _sequential(self, units: list[list[Cell]], emit: Emit) -> None:
        for unit in units:
            info = {"pack": pack_label(unit)} if len(unit) > 1 else {}
            for cell in unit:
                emit(cell, "running", info)

            def epoch_end(i: int, epoch: int, row: dict[str, Any],
                          unit: list[Cell] = unit) -> None:
                emit(unit[i], "epoch", {"epochs_done": epoch + 1,
                                        "test_error": row.get("anytime_test_error")})

            try:
                outcomes = run_unit([c.config.to_dict() for c in unit], self.cpus_per_run,
                                    epoch_end)
            except KeyboardInterrupt:
                for cell in unit:
                    emit(cell, "end", interrupted_outcome(cell))
                raise
            for cell, outcome in zip(unit, outcomes):
                emit(cell, "end", outcome)
            _release_memory()

    def _pool(self, units: list[list[Cell]], emit: Emit) -> None:
        if self.workers:  # CPU slots: the workers keep the caller's environment
            devices = [f"cpu{i}" for i in range(self.workers)]
        else:
            devices = list(self.gpu_ids if self.gpu_ids is not None
                           else [str(i) for i in range(self.gpus)])
        queue, free = deque(units), list(devices)
        active: dict[subprocess.Popen, tuple[list[Cell], str, Path, float]] = {}
        watch = SummaryWatch()
        tmp = Path(tempfile.mkdtemp(prefix="nasbench-sweep-"))
        try:
            while queue or active:
                while queue and free:
                    unit, device = queue.popleft(), free.pop(0)
                    name = unit[0].index
                    job, result = tmp / f"{name}.job.json", tmp / f"{name}.result.json"
                    job.write_text(json.dumps({"configs": [c.config.to_dict() for c in unit],
                                               "threads": self.cpus_per_run}))
                    env = (dict(os.environ) if device.startswith("cpu")
                           else {**os.environ, "CUDA_VISIBLE_DEVICES": device})
                    proc = subprocess.Popen(
                        [sys.executable, "-c",
                         "from nasbench_eval.sweep.executors.local import worker_main; worker_main()",
                         str(job), str(result)], env=env)
                    active[proc] = (unit, device, result, time.time())
                    for cell in unit:
                        emit(cell, "queued", {"device": device,
                                              **({"pack": pack_label(unit)} if len(unit) > 1
                                                 else {})})
                time.sleep(self.poll_s)
                for proc, (unit, device, result, since) in list(active.items()):
                    for cell in unit:
                        watch.poll(cell, since, emit)
                    code = proc.poll()
                    if code is None:
                        continue
                    try:
                        outcomes = json.loads(result.read_text())["outcomes"]
                    except (OSError, ValueError, KeyError, TypeError):
                        outcomes = [failed(f"worker process exited with code {code} "
                                           f"before reporting a result")] * len(unit)
                    for cell, outcome in zip(unit, outcomes):
                        emit(cell, "end", outcome)
                    free.append(device)
                    del active[proc]
        except KeyboardInterrupt:
            # the workers got the same Ctrl-C (one process group): their runs mark themselves
            # interrupted; give them a moment, then make sure none outlives the sweep
            deadline = time.time() + 30
            for proc, (unit, *_rest) in active.items():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                for cell in unit:
                    emit(cell, "end", interrupted_outcome(cell))
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
    """Entry point of a local worker process: run one unit of work (``configs``: a cell, or
    the seeds of a pack), write ``{"outcomes": [...]}`` as JSON (a job of an older driver,
    ``config``: its one outcome)."""
    job_path, result_path = (argv if argv is not None else sys.argv[1:])[:2]
    _exit_with_parent()
    job = json.loads(Path(job_path).read_text())
    if "configs" in job:
        doc: Any = {"outcomes": run_unit(job["configs"], job.get("threads"))}
    else:
        doc = run_cell(job["config"], job.get("threads"))
    atomic_write(result_path, json.dumps(doc))

