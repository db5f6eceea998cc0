"""``--log-to tensorboard``: event files under ``<run-dir>/tensorboard/``.

Per epoch: every numeric column of the metrics row as a scalar under its ``metrics.csv`` name
(``train_loss``, ``anytime_test_error``, ``hessian_eig`` when ``--hessian-every`` computes
the Hessian's eigenvalue, ...), the derived genotype as text, and each cell type's mixing
weights as a histogram (``arch_weights/<cell>``) and a heatmap image
(``arch_weights_heatmap/<cell>``: rows = edges, columns = candidate ops, white = 1).
``tensorboard --logdir results`` then shows every run under its run id.

A resumed run appends a new event file with ``purge_step`` at its first new epoch, so
TensorBoard drops anything an interrupted writer logged past the checkpoint.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from . import SINKS
from .base import EpochRecord, RunInfo, Sink, scalars

LOG_DIR = "tensorboard"
HEATMAP_CELL_PX = 12  # pixels per weight in the heatmap image


def heatmap(weights: np.ndarray) -> np.ndarray:
    """A 2-D image (H, W) in [0, 1] of ``weights`` (rows: edges, columns: candidates), each
    weight a ``HEATMAP_CELL_PX`` square; 1-D weights make one row."""
    w = np.asarray(weights, dtype=np.float32)
    w = w.reshape(1, -1) if w.ndim < 2 else w.reshape(w.shape[0], -1)
    w = np.clip(np.nan_to_num(w, nan=0.0), 0.0, 1.0)
    return np.kron(w, np.ones((HEATMAP_CELL_PX, HEATMAP_CELL_PX), dtype=np.float32))


@SINKS.register
class TensorBoardSink(Sink):
    name: ClassVar[str] = "tensorboard"
    package: ClassVar[str] = "tensorboard"

    def __init__(self, info: RunInfo) -> None:
        super().__init__(info)
        from torch.utils.tensorboard import SummaryWriter  # ImportError without tensorboard

        log_dir = info.run_dir / LOG_DIR
        fresh = not log_dir.exists()
        start = len(info.history)
        self.writer: Any = SummaryWriter(str(log_dir), purge_step=None if fresh else start)
        if fresh:  # started on a resumed run: the earlier epochs' scalars first
            for row in info.history:
                self._scalars(row)

    def _scalars(self, row: Any) -> None:
        step = int(row["epoch"])
        for key, value in scalars(row).items():
            self.writer.add_scalar(key, value, step)

    def log_epoch(self, record: EpochRecord) -> None:
        self._scalars(record.row)
        self.writer.add_text("genotype", f"    {record.genotype_text}", record.epoch)
        for cell, w in record.weights.items():
            self.writer.add_histogram(f"arch_weights/{cell}", np.asarray(w, dtype=np.float64),
                                      record.epoch)
            self.writer.add_image(f"arch_weights_heatmap/{cell}", heatmap(w), record.epoch,
                                  dataformats="HW")
        self.writer.flush()

    def close(self, status: str | None) -> None:
        self.writer.close()
