"""benchmarks/search_speed.py keeps running (CI has no GPU and no time for real timings)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_search_speed_benchmark_runs_and_records(tmp_path):
    spec = importlib.util.spec_from_file_location("search_speed", ROOT / "benchmarks" / "search_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # one timed step, no warm-up, and a trajectory on 64 images (a search-val pass of 4
    # batches): the recording is what is tested here, not the timings
    rec = mod.main(["--device", "cpu", "--setting", "tiny", "--methods", "darts,sdarts-adv",
                    "--steps", "1", "--warmup", "0", "--images", "256", "--out", str(tmp_path),
                    "--trajectory", "2", "--trajectory-steps", "2", "--trajectory-images", "64"])
    assert set(rec["methods"]) == {"darts", "sdarts-adv"}
    for row in rec["methods"].values():
        assert row["plain"]["execution"]["data_loader"] == "torch"
        assert row["plain"]["execution"]["memory_format"] == "contiguous"
        assert row["fast"]["execution"]["data_loader"] == "device"
        assert row["speedup"] > 0 and row["plain"]["s_per_step"] > 0
        assert row["plain"]["steps_per_epoch"] == 256 // 2 // 8
    saved = json.loads((tmp_path / "search-speed-cpu-tiny.json").read_text())
    assert saved["setting"]["name"] == "tiny" and saved["torch"]
    md = (tmp_path / "search-speed-cpu-tiny.md").read_text()
    assert "| darts |" in md and "| sdarts-adv |" in md and "commit" in md
    t = rec["trajectory"]
    assert t["epochs"] == 2 and len(t["genotype_equal_per_epoch"]) == 2
    assert len(t["val_acc_plain"]) == len(t["val_acc_fast"]) == 2
    assert "Fixed-seed darts search" in md


def test_numerics_benchmark_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("numerics", ROOT / "benchmarks" / "numerics.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rec = mod.main(["--device", "cpu", "--steps", "2", "--images", "256", "--out", str(tmp_path)])
    assert [r["step"] for r in rec["rows"]] == [1, 2]
    assert rec["rows"][0]["max_abs_d_alpha"] < 1e-6  # one step apart only by rounding
    assert rec["plain"]["memory_format"] == "contiguous"
    assert rec["fast"]["memory_format"] == "channels_last"
    assert rec["plain"]["fused_edges"] is False and rec["fast"]["fused_edges"] is True
    assert (tmp_path / "numerics-cpu.md").read_text().count("\n| ") >= 3


def test_search_speed_on_nb201_against_the_unfused_path(tmp_path):
    spec = importlib.util.spec_from_file_location("search_speed", ROOT / "benchmarks" / "search_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rec = mod.main(["--device", "cpu", "--setting", "tiny", "--space", "nb201", "--baseline",
                    "unfused", "--methods", "darts", "--steps", "1", "--warmup", "1",
                    "--images", "64", "--out", str(tmp_path)])
    row = rec["methods"]["darts"]
    assert row["plain"]["execution"]["fused_edges"] is False
    assert row["fast"]["execution"]["fused_edges"] is True
    assert row["plain"]["execution"]["memory_format"] == row["fast"]["execution"]["memory_format"]
    assert rec["setting"]["space"] == "nb201" and rec["baseline"] == "unfused"
    md = (tmp_path / "search-speed-cpu-tiny-nb201-vs-unfused.md").read_text()
    assert "space `nb201`" in md and "--fused-edges off" in md
