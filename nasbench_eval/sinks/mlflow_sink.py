"""``--log-to mlflow``: one MLflow run per search run.

Params: the run config (``RunConfig.to_dict()``, one param per field, JSON for non-text
values). Metrics: every numeric column of ``metrics.csv``, step = epoch. Tags: the run id,
the latest genotype, the final status. At the end: the run directory's files as artifacts
(``config.json``, ``metrics.csv``, ``genotypes.jsonl``, ``summary.json``, ``run.log``, ...;
not ``checkpoint.pt``, the resumable state, nor the sinks' own folders).

The tracking URI is ``RunConfig.mlflow_uri`` (``--mlflow-uri``: a server ``http://...``, a
database, a folder); by default a file store in ``<run-dir>/mlruns``, so a run directory
carries its MLflow run (``mlflow ui --backend-store-uri <run-dir>/mlruns``). MLflow 3 keeps
the file store in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE``; this sink sets it for
the file stores it is asked to use. The experiment is ``$MLFLOW_EXPERIMENT_NAME`` or
``nasbench-eval``. A resumed run continues its MLflow run (found by the run-id tag) and
logs only the epochs it has not seen.

Works with ``mlflow`` or the lighter ``mlflow-skinny`` (the tracking client alone).
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

from . import SINKS
from .base import EpochRecord, RunInfo, Sink, scalars

STORE_DIR = "mlruns"
EXPERIMENT = "nasbench-eval"
RUN_ID_TAG = "nasbench_eval.run_id"
PARAM_MAX = 500  # the strictest limit of MLflow servers; config.json has the whole value
TAG_MAX = 5000
NOT_ARTIFACTS = {"checkpoint.pt"}
_STATUS = {"finished": "FINISHED", "diverged": "FINISHED", "interrupted": "KILLED"}


def tracking_uri(info: RunInfo) -> str:
    """The configured URI, or the file store in the run directory."""
    uri = info.config.get("mlflow_uri")
    return str(uri) if uri else (info.run_dir / STORE_DIR).resolve().as_uri()


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast (OSError) when an http(s) tracking server does not accept connections,
    instead of MLflow's minutes of retries at the first request."""
    parts = urlparse(uri)
    if parts.scheme in ("http", "https") and parts.hostname:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= PARAM_MAX else text[:PARAM_MAX - 3] + "..."


@SINKS.register
class MlflowSink(Sink):
    name: ClassVar[str] = "mlflow"
    package: ClassVar[str] = "mlflow"

    def __init__(self, info: RunInfo) -> None:
        super().__init__(info)
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(info)
        if urlparse(uri).scheme in ("", "file"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        check_reachable(uri)
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                exp_id = self.client.create_experiment(name)
            except MlflowException:  # another run created it meanwhile
                exp_id = self.client.get_experiment_by_name(name).experiment_id
        else:
            exp_id = exp.experiment_id
        found = self.client.search_runs(
            [exp_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{info.run_id}'", max_results=1)
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            seen = self.client.get_metric_history(self.run_id, "epoch")
            last = max((int(m.value) for m in seen), default=-1)
        else:
            run = self.client.create_run(exp_id, run_name=info.run_id,
                                         tags={RUN_ID_TAG: info.run_id})
            self.run_id = run.info.run_id
            self.client.log_batch(self.run_id, params=[
                Param(k, _param(v)) for k, v in sorted(info.config.items())])
            last = -1
        for row in info.history:  # epochs of a resumed run this MLflow run has not seen
            if int(row["epoch"]) > last:
                self._metrics(row)

    def _metrics(self, row: Any) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(row["epoch"])
        self.client.log_batch(self.run_id, metrics=[
            Metric(k, v, now, step) for k, v in scalars(row).items()])

    def log_epoch(self, record: EpochRecord) -> None:
        self._metrics(record.row)
        self.client.set_tag(self.run_id, "genotype", record.genotype_text[:TAG_MAX])

    def close(self, status: str | None) -> None:
        for path in sorted(Path(self.info.run_dir).iterdir()):
            if path.is_file() and path.name not in NOT_ARTIFACTS and not path.name.startswith("."):
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_tag(self.run_id, "nasbench_eval.status", str(status))
        self.client.set_terminated(self.run_id, _STATUS.get(str(status), "FAILED"))
