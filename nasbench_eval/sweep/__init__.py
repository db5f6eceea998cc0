"""Sweeps: grids of runs (method x space x dataset x seed) and the executors that run them.

A sweep is nothing but many ordinary runs plus an index. Every cell of the grid is a
:class:`~nasbench_eval.config.RunConfig`, run by :func:`nasbench_eval.runner.run` into
``<out>/<run-id>/`` with the runner's deterministic run id, so a cell always names the same
directory, a rerun finds it, and two sweeps that share a cell share its run.

The index is ``<out>/sweeps/<sweep-id>.json`` (the "sweep.json" of the docs): the grid, every
cell with its run id, path, status and error, and the times it was created and updated. The
sweep id is derived from the cells' run ids, so the same grid always has the same index.

Executors (all drive :func:`run_cell`, which calls ``run(cfg, resume=True)``):

* :class:`LocalExecutor` without GPUs runs the cells one after another in this process, or
  with ``workers=N`` in N worker processes of ``cpus_per_run`` threads each (default 1): tiny
  CPU searches are bound by per-op overhead, not compute, so N single-threaded runs on N
  cores finish N times as many searches as one run with N threads (measured: 2 x 1 thread
  on 2 cores, each epoch as fast as alone), while two runs with 2 threads each thrash;
* :class:`LocalExecutor` with ``gpus=N`` keeps N worker processes busy, one per GPU
  (``CUDA_VISIBLE_DEVICES`` per worker);
* :class:`RayExecutor` submits every cell as a Ray task (``num_gpus=1`` with GPUs, else
  ``num_cpus``) to a cluster (``ray_address``) or a local Ray instance;
* :class:`SlurmExecutor` submits every cell as a SLURM job (a task of one job array, or one
  job per run) with submitit; a job that is preempted or reaches its time limit is requeued
  and one that is killed is resubmitted, each resuming its run from the checkpoint, and the
  index records every cell's job ids.

Rerunning a sweep skips finished and diverged runs, resumes interrupted ones from their
checkpoints and never starts a run twice; a run that raises is recorded with its error and
the others go on. Everything is validated before the first run starts.

The package, one concern a module: :mod:`.spec` (the grid and sweep files), :mod:`.validate`
(checks against the registries), :mod:`.executors` (one file per executor, a registry),
:mod:`.index` (the index file and its lock), :mod:`.progress`, :mod:`.packs` (``--pack K``:
the seeds of one setting run K at a time as one packed search, a unit of work of the local
and Ray executors), :mod:`.driver` (plan and run) and :mod:`.report` (the summary at the end).
"""
from __future__ import annotations

from .driver import plan_sweep, run_sweep
from .executors import EXECUTORS, make_executor
from .executors.base import Emit, Executor, SummaryWatch, run_cell
from .executors.local import LocalExecutor, worker_main
from .executors.ray import RAY_MISSING, RayExecutor, import_ray
from .executors.slurm import SUBMITIT_MISSING, SlurmExecutor
from .index import PENDING, SweepIndex, SweepLock, sweep_index_path
from .packs import PackPlan, plan_packs, run_unit
from .progress import ProgressTable
from .report import leaderboard_text, plain_table, print_summary
from ..rundir import DONE
from .spec import (EXECUTOR_KEYS, FILE_KEYS, GRID_KEYS, SETTING_FIELDS, Cell, SweepError, SweepSpec,
                   load_sweep_file, parse_seeds)
from .validate import sweep_id, validate

_worker_main = worker_main  # the name worker processes of older drivers were started with

__all__ = ["DONE", "EXECUTORS", "EXECUTOR_KEYS", "FILE_KEYS", "GRID_KEYS", "PENDING", "RAY_MISSING",
           "SETTING_FIELDS", "Cell", "Emit", "Executor", "LocalExecutor", "PackPlan", "ProgressTable",
           "RayExecutor", "SUBMITIT_MISSING", "SlurmExecutor", "SummaryWatch", "SweepError",
           "SweepIndex", "SweepLock", "SweepSpec",
           "import_ray", "leaderboard_text", "load_sweep_file", "make_executor", "parse_seeds",
           "plain_table", "plan_packs", "plan_sweep", "print_summary", "run_cell", "run_sweep",
           "run_unit", "sweep_id", "sweep_index_path", "validate"]
