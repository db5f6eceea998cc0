"""The spec files must ship inside a plain (non-editable) wheel."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
def test_wheel_contains_space_specs(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q",
                          "-w", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = tmp_path.glob("nasbench_eval-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for space in ("darts", "s1", "s2", "s3", "s4", "sharpdarts"):
        assert f"nasbench_eval/_spec_files/{space}.toml" in names
    assert "nasbench_eval/cli/__init__.py" in names and "nasbench_eval/sweep/__init__.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "nasbench-eval = nasbench_eval.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
