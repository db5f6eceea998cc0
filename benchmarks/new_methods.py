"""GDAS's speed and PC-DARTS's memory against DARTS at the same setting.

    python benchmarks/new_methods.py --device cpu --setting small     # 2-core CPU
    python benchmarks/new_methods.py --device cuda --setting reference

* **speed**: seconds per search step (one training and one validation batch fetched, then
  ``method.step``: alpha step and w step) of ``darts`` and ``gdas`` on the same model, data
  and execution settings (reference-style execution: no fused cells, which GDAS's
  single-path edge forward would switch off anyway); median over ``--steps`` after
  ``--warmup``, the two methods' steps alternating on the CPU (search_speed.py's
  ``measure_interleaved``). GDAS computes one candidate per edge, DARTS all of them. Both
  run without fused cells, CUDA graphs or compile (GDAS can use none of them).
* **memory**: for ``darts`` and ``pc-darts`` (K=4; and ``darts --partial-channels 4`` without
  edge normalisation) at the same batch: the bytes of the activations autograd keeps for the
  backward of one w-step forward (counted with ``torch.autograd.graph.saved_tensors_hooks``,
  each storage once; the same number on any device), and on CUDA the peak allocated memory of
  a step.

Writes a Markdown table and a JSON record (machine, torch, commit, date, command) to
``--out``. Timings are only meaningful on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_speed import SETTINGS, _config, measure, measure_interleaved  # noqa: E402

from nasbench_eval.execution import resolve_device  # noqa: E402
from nasbench_eval.runner import build_search  # noqa: E402


def saved_activation_bytes(cfg) -> int:
    """Bytes autograd saves for the backward of one w-step forward (each storage once)."""
    torch.manual_seed(0)
    search = build_search(cfg)
    m = search.method
    search.supernet.train()
    batch = next(iter(search.train.epoch(torch.Generator().manual_seed(1))))
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
        return t

    weights = {k: v.detach() for k, v in m.w_step_weights(batch).items()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with m.training_edges():
            loss, _ = m.loss(batch, weights)
    del loss
    params = {p.untyped_storage().data_ptr() for p in search.supernet.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="small")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default="results/benchmarks/new-methods")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    setting = SETTINGS[args.setting]
    # the same execution for every method: no fused cells (GDAS's edge forward switches
    # them off), no CUDA graphs (GDAS's step reads its sample on the host), no compile
    ex = {"fused_edges": "off", "cuda_graphs": False, "compile": False}

    def cfg(method: str, **opts):
        c = _config(method, setting, str(device), **ex)
        c.method_options = dict(opts)
        return c

    speed_cfgs = [cfg("darts"), cfg("gdas")]
    if device.type == "cuda":
        speed = [measure(c, args.steps, args.warmup) for c in speed_cfgs]
    else:
        speed = measure_interleaved(speed_cfgs, args.steps, args.warmup)
    memory_cfgs = {"darts": cfg("darts"), "pc-darts (K=4)": cfg("pc-darts"),
                   "darts --partial-channels 4": cfg("darts", partial_channels=4)}
    memory = {}
    for name, c in memory_cfgs.items():
        memory[name] = {"saved_activation_mib": saved_activation_bytes(c) / 2 ** 20}
        if device.type == "cuda":
            memory[name]["peak_gib"] = measure(c, 3, 1)["peak_gib"]

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    record = {"command": " ".join(["python", "benchmarks/new_methods.py", *sys.argv[1:]]),
              "commit": commit, "date": dt.datetime.now(dt.timezone.utc).isoformat(),
              "machine": platform.node(), "processor": platform.processor(),
              "device": str(device), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "setting": {args.setting: setting},
              "speed": {"darts": speed[0], "gdas": speed[1]}, "memory": memory}
    lines = [f"# GDAS speed, PC-DARTS memory ({args.setting}, {device})", "",
             "| method | s/step | steps | speed-up vs darts |", "|---|---|---|---|"]
    for name, r in record["speed"].items():
        lines.append(f"| {name} | {r['s_per_step']:.4f} | {args.steps} | "
                     f"{speed[0]['s_per_step'] / r['s_per_step']:.2f}x |")
    lines += ["", "| method | saved activations (MiB) | vs darts | peak GiB (CUDA) |",
              "|---|---|---|---|"]
    base = memory["darts"]["saved_activation_mib"]
    for name, r in memory.items():
        peak = r.get("peak_gib")
        lines.append(f"| {name} | {r['saved_activation_mib']:.1f} | "
                     f"{r['saved_activation_mib'] / base:.2f} | "
                     f"{'' if peak is None else f'{peak:.2f}'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.setting}-{device.type}"
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
