"""Oracle options are checked before any work: by the runner and by a sweep's grid check."""
from __future__ import annotations

import pytest

from nasbench_eval import run
from nasbench_eval.errors import NasbenchEvalError
from nasbench_eval.sweep import SweepSpec, validate


def test_a_bad_oracle_option_fails_before_the_run(tmp_path):
    with pytest.raises(NasbenchEvalError, match="oracle 'oneshot' has no option --oracle-option foo"):
        run(method="darts", space="s3", oracle="oneshot", oracle_options={"foo": 1},
            out=str(tmp_path), progress=False)
    with pytest.raises(NasbenchEvalError, match="--oracle-option train_epochs: expected"):
        run(method="darts", space="nb1shot1-3", oracle="train",
            oracle_options={"train_epochs": "x"}, out=str(tmp_path), progress=False)
    assert not any(tmp_path.iterdir())


def test_a_bad_oracle_option_is_a_problem_of_the_grid(tmp_path):
    spec = SweepSpec.create(methods="darts", spaces="s3", out=str(tmp_path),
                            oracle="oneshot", oracle_options={"foo": 1})
    with pytest.raises(NasbenchEvalError, match="has no option --oracle-option foo"):
        validate(spec)
