"""How far the fast path's numerics drift from the plain path's, step by step.

    python benchmarks/numerics.py --device cpu             # plain vs fused channels_last (fp32)
    python benchmarks/numerics.py --device cuda            # fp32 NCHW vs bf16 channels_last

Two copies of the same search (same seed, same initial weights, the very same batches and
random numbers) take steps side by side: one with the plain numerics (fp32, NCHW, per-edge
loop), one with the fast path's (channels_last, source-fused cells; bf16 autocast on CUDA). After each reported step it prints
the largest difference in alpha and in w, alpha's spread (its standard deviation, what the
derived genotype is decided by) and whether the derived genotypes agree.

Why this and not "the same genotype trajectory": rounding differences of 1e-7 grow by about
an order of magnitude every few steps, as in any training run (two GPUs, or cuDNN's
nondeterministic kernels, show the same), and early in a search alpha's spread is a few
thousandths, so per-run genotypes part ways after tens of steps. What must hold is that the
first steps agree to rounding and that the methods' behaviour over seeds is the same.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from pathlib import Path

import torch

from nasbench_eval.config import RunConfig
from nasbench_eval.execution import resolve_device
from nasbench_eval.runner import build_search

REPORT = (1, 2, 5, 10, 20, 40, 80)


def _search(device: str, method: str, images: int, **ex):
    cfg = RunConfig(method=method, space="darts", dataset="synthetic", layers=5, channels=8,
                    batch_size=32, device=device, progress=False,
                    dataset_options={"n_train": images, "n_test": 64, "shape": [3, 16, 16],
                                     "augment": True}, **ex)
    torch.manual_seed(0)
    return build_search(cfg)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--method", default="darts")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--out", default="results/benchmarks")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    plain = {"memory_format": "contiguous", "precision": "fp32", "fused_edges": "off"}
    fast = {"memory_format": "channels_last", "precision": "auto", "fused_edges": "auto"}
    a = _search(str(device), args.method, args.images, **plain)
    b = _search(str(device), args.method, args.images, **fast)
    batches = zip(a.train.epoch(torch.Generator().manual_seed(1)),
                  a.val.epoch(torch.Generator().manual_seed(2)))
    a.supernet.train()
    b.supernet.train()
    rows = []
    with torch.no_grad():
        for i, (tb, vb) in enumerate(batches):
            if i >= args.steps:
                break
            for s in (a, b):
                torch.manual_seed(i)
                with torch.enable_grad():
                    s.method.step(tb, vb)
            if i + 1 in REPORT or i + 1 == args.steps:
                da = max(float((a.method.alphas[k] - b.method.alphas[k]).abs().max())
                         for k in a.method.alphas)
                dw = max(float((x - y).abs().max())
                         for x, y in zip(a.supernet.parameters(), b.supernet.parameters()))
                spread = min(float(a.method.alphas[k].std()) for k in a.method.alphas)
                same = a.method.derive().to_dict() == b.method.derive().to_dict()
                rows.append({"step": i + 1, "max_abs_d_alpha": da, "max_abs_d_w": dw,
                             "alpha_std": spread, "genotype_equal": same})
                print(f"step {i + 1:4d}  max|d alpha| {da:.2e}  max|d w| {dw:.2e}  "
                      f"alpha std {spread:.2e}  genotypes {'equal' if same else 'differ'}",
                      flush=True)
    record = {"command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "device": str(device), "torch": torch.__version__, "method": args.method,
              "plain": a.execution.to_dict(), "fast": b.execution.to_dict(), "rows": rows}
    try:
        import subprocess

        record["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                          capture_output=True, text=True).stdout.strip()
    except OSError:
        record["commit"] = "unknown"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"numerics-{device.type}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# Plain vs fast numerics, step by step ({device}, {platform.machine()})", "",
             f"- command: `{record['command']}`, commit {record['commit']}, {record['date']}, "
             f"torch {record['torch']}",
             f"- {args.method}, DARTS space, 5 cells, 8 channels, batch 32, 16x16 synthetic "
             f"images; plain `{record['plain']}` vs fast `{record['fast']}`, same batches and "
             f"random numbers", "",
             "| step | max abs diff alpha | max abs diff w | alpha std | genotypes |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['max_abs_d_alpha']:.2e} | {r['max_abs_d_w']:.2e} | "
              f"{r['alpha_std']:.2e} | {'equal' if r['genotype_equal'] else 'differ'} |"
              for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.md and .json")
    return record


if __name__ == "__main__":
    main()
