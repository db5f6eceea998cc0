from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from nasbench_eval.cli import main

TINY = ["--layers", "3", "--channels", "4", "--batch-size", "32", "--max-steps-per-epoch", "2",
        "--quiet"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_list_spaces_shows_ops_and_counts():
    res = invoke("list", "spaces")
    assert res.exit_code == 0, res.output
    for name in ("darts", "s1", "s2", "s3", "s4"):
        assert f"\n{name} " in "\n" + res.output
    assert "1,037,664,180" in res.output  # DARTS: ~10^9 cells (180 * 7^8)
    assert "46,080" in res.output and "noise" in res.output


def test_list_methods_and_datasets():
    res = invoke("list", "methods")
    assert res.exit_code == 0 and "darts-2nd" in res.output and "hvp_r" in res.output
    res = invoke("list", "datasets")
    assert res.exit_code == 0 and "digits" in res.output and "cifar10" in res.output


def test_unknown_names_list_valid_choices(tmp_path):
    res = invoke("run", "--method", "dartz", "--out", str(tmp_path))
    assert res.exit_code != 0 and "unknown method 'dartz'" in res.output and "darts-2nd" in res.output
    res = invoke("run", "--space", "s7", "--out", str(tmp_path))
    assert "unknown space 's7'" in res.output and "s1, s2, s3, s4" in res.output
    assert "nb1shot1-3" in res.output
    res = invoke("run", "--dataset", "mnist", "--out", str(tmp_path))
    assert "unknown dataset 'mnist'" in res.output and "fashion-mnist" in res.output
    res = invoke("list", "oracles")
    assert res.exit_code != 0 and "spaces" in res.output
    res = invoke("run", "-o", "hvp_r=0.1", "--out", str(tmp_path), *TINY)
    assert res.exit_code != 0 and "has no option 'hvp_r'" in res.output
    res = invoke("run", "--epochs", "0", "--out", str(tmp_path))
    assert res.exit_code != 0 and "epochs must be a positive integer" in res.output
    assert not any(tmp_path.iterdir())  # bad input creates nothing


def test_bad_spec_path_names_file_and_field(tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text('name="mine"\nfamily="darts-cell"\nnodes=4\nops=["skip_conect"]\n')
    res = invoke("run", "--space", str(spec), "--out", str(tmp_path / "r"))
    assert res.exit_code != 0
    assert str(spec) in res.output and "'ops[0]'" in res.output and "skip_connect" in res.output


def test_run_and_resume_from_the_cli(tmp_path):
    out = str(tmp_path / "results")
    res = invoke("run", "--method", "darts", "--space", "s3", "--dataset", "digits", "--epochs", "1",
                 "--out", out, *TINY)
    assert res.exit_code == 0, res.output
    assert "status: finished" in res.output and "genotype: normal[" in res.output
    (run_dir,) = Path(out).iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    res = invoke("run", "--method", "darts", "--space", "s3", "--dataset", "digits", "--epochs", "1",
                 "--out", out, *TINY)
    assert res.exit_code != 0 and "--resume" in res.output
    res = invoke("run", "--method", "darts", "--space", "s3", "--dataset", "digits", "--epochs", "1",
                 "--out", out, "--resume", *TINY)
    assert res.exit_code == 0 and "status: finished" in res.output


def test_unavailable_cuda_is_a_clear_error(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = invoke("run", "--device", "cuda", "--out", str(tmp_path), *TINY)
    assert res.exit_code != 0 and "CUDA is not available" in res.output


def test_nonsense_step_caps_are_refused(tmp_path):
    res = invoke("run", "--max-steps-per-epoch", "-1", "--out", str(tmp_path))
    assert res.exit_code != 0 and "max_steps_per_epoch must be a positive integer" in res.output
    assert not any(tmp_path.iterdir())
