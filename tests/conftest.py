from __future__ import annotations

import os

import pytest
import torch

from nasbench_eval.config import RunConfig

torch.set_num_threads(int(os.environ.get("NASBENCH_TEST_THREADS", "2")))


@pytest.fixture
def tiny_cfg(tmp_path) -> RunConfig:
    """A search small enough for a unit test: 3 cells, 4 channels, a few steps per epoch."""
    return RunConfig(method="darts", space="s3", dataset="digits", seed=0, epochs=2, layers=3,
                     channels=4, batch_size=32, max_steps_per_epoch=3, out=str(tmp_path / "results"),
                     bn_recalibration_batches=2, progress=False, oracle="oneshot")
