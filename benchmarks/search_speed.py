"""Search-step speed: the reference-style path vs the fast path, in one process, per method.

    python benchmarks/search_speed.py --device cpu          # small setting, every method
    python benchmarks/search_speed.py --device cuda         # the reference setting (H100: GPU.md)
    python benchmarks/search_speed.py --device cpu --methods darts --steps 5 --warmup 1
    python benchmarks/search_speed.py --device cpu --space nb201 --baseline unfused

Both paths run inside nasbench-eval with the same model, method and synthetic data; only the
execution settings differ (execution.py):

* plain: a CPU ``torch.utils.data.DataLoader`` with per-image transforms, fp32, NCHW, no cuDNN
  autotuning, one module call per candidate of every edge (what the public DARTS code does);
* fast:  batches drawn and augmented on the device, channels_last, source-fused cells (with the
  CPU depthwise backward of spaces/darts/dwconv.py), bf16 autocast on CUDA,
  cuDNN autotuning and the step captured as a CUDA graph on CUDA (``--no-cuda-graphs`` to
  leave it out; ``--compile`` uses torch.compile instead).

``--baseline unfused`` replaces the plain path by the fast path with ``--fused-edges off``, so
the ratio is what the source-fused cells alone buy (docs/nb201.md). ``--space`` picks the
search space (``darts`` by default; ``nb201`` runs the NAS-Bench-201 supernet, whose
``layers`` is the number of cells in all); the output files then carry the space's name.

A step is what the runner times: fetching one training and one validation batch and one
``method.step`` (alpha step + w step, with the method's perturbation). The per-step time is
the median over ``--steps`` steps after ``--warmup`` steps; an epoch is that times the
setting's steps per epoch (50k images split 50/50). On the CPU the two paths' steps
alternate (plain, fast, plain, ...), so drifts of a shared machine hit both alike. On CUDA the benchmark synchronises after
every step (outside the step) and reports peak GPU memory per path and the largest batch
of the fast path that fits. Writes a Markdown table and a JSON record (machine, torch,
commit, date, command) to ``--out``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from nasbench_eval.config import RunConfig
from nasbench_eval.execution import StepRunner, reference_execution, resolve_device
from nasbench_eval.runner import build_search

METHODS = ["darts", "darts-2nd", "sdarts-rs", "sdarts-adv", "maxw", "msr"]
SPACE_METHODS = {"nb201": ["darts", "darts-2nd", "sdarts-rs", "sdarts-adv", "maxw"]}
"""Default methods of a space where not every one applies (msr refuses nb201)."""
BASELINES = ("reference", "unfused")
SETTINGS = {
    # the public reference code's measured setting (shared/reference/performance.md)
    "reference": dict(batch_size=64, layers=8, channels=16, shape=(3, 32, 32)),
    # the CPU setting of the speed issue (2 cores)
    "small": dict(batch_size=32, layers=5, channels=8, shape=(3, 16, 16)),
    # a seconds-long check that the script still runs (tests/test_search_speed.py)
    "tiny": dict(batch_size=8, layers=3, channels=4, shape=(3, 8, 8)),
    # NAS-Bench-201's channels (16) and N = 3 cells per stage on 16x16 inputs (CPU-sized)
    "nb201-cpu": dict(batch_size=64, layers=9, channels=16, shape=(3, 16, 16)),
}
N_IMAGES = 50_000  # CIFAR-10's training set; the search splits it 50/50


def _config(method: str, setting: dict, device: str, batch_size: int | None = None,
            images: int = N_IMAGES, space: str = "darts", **execution) -> RunConfig:
    return RunConfig(
        method=method, space=space, dataset="synthetic", epochs=50,
        layers=setting["layers"], channels=setting["channels"],
        batch_size=batch_size or setting["batch_size"], train_portion=0.5, device=device,
        oracle="oneshot", progress=False, hessian_every=0,
        dataset_options={"n_train": images, "n_test": 64, "shape": list(setting["shape"]),
                         "augment": True},
        **execution)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Path:
    """One search being timed: its step is what the runner times (fetch one training and
    one validation batch, then ``method.step`` through the StepRunner)."""

    def __init__(self, cfg: RunConfig):
        torch.manual_seed(0)
        self.search = build_search(cfg)
        self.device, self.method = self.search.device, self.search.method
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.search.supernet.train()
        self.stepper = StepRunner(self.method, capture=self.search.execution.cuda_graphs)
        self.method.make_capturable(self.stepper.capture)
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
        self.batches = zip(self.search.train.epoch(g1), self.search.val.epoch(g2))
        self.times: list[float] = []

    def step(self, timed: bool) -> None:
        _sync(self.device)
        t = time.perf_counter()
        tb, vb = next(self.batches)
        self.stepper(tb, vb)
        _sync(self.device)
        if timed:
            self.times.append(time.perf_counter() - t)

    def result(self) -> dict:
        search, times = self.search, self.times
        out = {"s_per_step": statistics.median(times), "steps_per_epoch": search.steps_per_epoch,
               "min_s": min(times), "max_s": max(times), "execution": search.execution.to_dict(),
               "captured": self.stepper.graph is not None, "capture_error": self.stepper.failed}
        out["s_per_epoch"] = out["s_per_step"] * out["steps_per_epoch"]
        out["peak_gib"] = (torch.cuda.max_memory_allocated(self.device) / 2 ** 30
                           if self.device.type == "cuda" else None)
        return out

    def close(self) -> None:
        del self.search, self.method, self.batches, self.stepper
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def measure(cfg: RunConfig, steps: int, warmup: int) -> dict:
    """Median seconds per step (batch fetch + method.step) and peak GPU memory."""
    path = _Path(cfg)
    for i in range(warmup + steps):
        path.step(timed=i >= warmup)
    out = path.result()
    path.close()
    return out


def measure_interleaved(cfgs: list[RunConfig], steps: int, warmup: int) -> list[dict]:
    """Like :func:`measure` for several paths at once, their steps alternating (CPU): a
    shared machine's slow spells then hit every path alike instead of whichever ran then.
    (Not on CUDA, where each path's peak memory must be measured alone.)"""
    paths = [_Path(c) for c in cfgs]
    for i in range(warmup + steps):
        for p in paths:
            p.step(timed=i >= warmup)
    out = [p.result() for p in paths]
    for p in paths:
        p.close()
    return out


def largest_batch(method: str, setting: dict, device: str, fast: dict, steps: int,
                  images: int = N_IMAGES, space: str = "darts") -> dict | None:
    """Double the fast path's batch until it no longer fits; the last one that did, timed."""
    best = None
    for b in (setting["batch_size"] * 2 ** k for k in itertools.count(1)):
        try:
            r = measure(_config(method, setting, device, batch_size=b, images=images,
                                space=space, **fast), steps, 5)
        except torch.OutOfMemoryError:
            break
        best = {"batch_size": b, **r}
        if b >= 4096:
            break
    return best


def trajectory(method: str, setting: dict, device: str, epochs: int, steps: int,
               plain: dict, fast: dict, images: int, space: str = "darts") -> dict:
    """The same fixed-seed search on both paths' numerics, with the same (on-device) batches:
    per epoch, do the derived genotypes agree, and how far apart are the search-val
    accuracies? (The DataLoader path draws its augmentations from another RNG, so it would
    see other batches; layout, precision and compilation are what is compared here.)"""
    import tempfile

    from nasbench_eval.runner import run

    docs = {}
    base = {**plain, "data_loader": "device"}
    variants = [("plain", base), ("fast", fast)]
    if fast.get("cuda_graphs"):  # replay alone, with plain numerics: should agree to ~1e-6
        variants.append(("plain+graphs", {**base, "cuda_graphs": True}))
    with tempfile.TemporaryDirectory() as tmp:
        for name, ex in variants:
            cfg = _config(method, setting, device, images=images, space=space, **ex)
            cfg = RunConfig.from_dict({**cfg.to_dict(), "epochs": epochs,
                                       "max_steps_per_epoch": steps, "out": f"{tmp}/{name}",
                                       "bn_recalibration_batches": 2})
            d = run(cfg)
            rows = [json.loads(line) for line in (d / "genotypes.jsonl").read_text().splitlines()]
            import csv

            with (d / "metrics.csv").open() as f:
                acc = [float(r["val_acc"]) for r in csv.DictReader(f)]
            docs[name] = ([r["genotype"] for r in rows], acc)
    (ga, aa), (gb, ab) = docs["plain"], docs["fast"]
    same = [a == b for a, b in zip(ga, gb)]
    out = {"method": method, "epochs": epochs, "steps_per_epoch": steps, "images": images,
           "genotype_equal_per_epoch": same, "epochs_equal": sum(same),
           "val_acc_plain": aa, "val_acc_fast": ab,
           "max_abs_val_acc_diff": max(abs(x - y) for x, y in zip(aa, ab))}
    if "plain+graphs" in docs:
        gc_, ac = docs["plain+graphs"]
        out["graphs_genotype_equal_per_epoch"] = [a == b for a, b in zip(ga, gc_)]
        out["graphs_max_abs_val_acc_diff"] = max(abs(x - y) for x, y in zip(aa, ac))
    return out


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--setting", choices=sorted(SETTINGS), help="default: reference on CUDA, "
                   "small elsewhere")
    p.add_argument("--space", default="darts", help="search space (default darts; nb201: "
                   "the NAS-Bench-201 supernet)")
    p.add_argument("--methods", default=None, help="comma-separated (default: every method "
                   "that applies to the space)")
    p.add_argument("--baseline", choices=BASELINES, default="reference",
                   help="the path the fast one is compared with: the reference-style path, or "
                        "the fast path without source-fused cells (--fused-edges off)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10 CUDA, 5 CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default 5 CUDA, 2 CPU)")
    p.add_argument("--images", type=int, default=N_IMAGES, help="synthetic training images")
    p.add_argument("--compile", action="store_true", help="fast path with torch.compile too")
    p.add_argument("--no-largest-batch", action="store_true")
    p.add_argument("--no-cuda-graphs", action="store_true",
                   help="fast path without capturing the step (CUDA)")
    p.add_argument("--trajectory", type=int, default=0, metavar="EPOCHS",
                   help="also run a fixed-seed darts search of EPOCHS epochs on both paths' "
                        "numerics and compare the genotype trajectories")
    p.add_argument("--trajectory-steps", type=int, default=50, help="steps per epoch of it")
    p.add_argument("--trajectory-images", type=int, default=2000,
                   help="synthetic training images of it (every epoch evaluates the whole "
                        "search-val half)")
    p.add_argument("--out", default="results/benchmarks")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    setting_name = args.setting or ("reference" if cuda else "small")
    setting = SETTINGS[setting_name]
    steps = args.steps or (10 if cuda else 5)
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 2)
    fast = {"memory_format": "auto", "precision": "auto", "data_loader": "device",
            "compile": args.compile, "fused_edges": "on",  # also where auto means off (nb201)
            "cuda_graphs": cuda and not args.compile and not args.no_cuda_graphs}
    plain = reference_execution() if args.baseline == "reference" else {**fast, "fused_edges": "off"}
    space = args.space
    methods = [m.strip() for m in (args.methods or ",".join(SPACE_METHODS.get(space, METHODS)))
               .split(",") if m.strip()]
    dev_name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or "cpu")
    record = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "commit": _commit(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device), "device_name": dev_name, "torch": torch.__version__,
        "python": platform.python_version(), "threads": torch.get_num_threads(),
        "setting": {"name": setting_name, **setting, "images": args.images, "space": space},
        "baseline": args.baseline, "steps": steps, "warmup": warmup, "methods": {},
    }
    print(f"search speed on {dev_name} ({device}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; setting {setting_name}: {setting}", flush=True)
    for m in methods:
        cfgs = [_config(m, setting, str(device), images=args.images, space=space, **ex)
                for ex in (plain, fast)]
        if cuda:
            r_plain, r_fast = (measure(c, steps, warmup) for c in cfgs)
        else:
            r_plain, r_fast = measure_interleaved(cfgs, steps, warmup)
        row = {"plain": r_plain, "fast": r_fast,
               "speedup": r_plain["s_per_step"] / r_fast["s_per_step"]}
        if cuda and not args.no_largest_batch and m == "darts":
            row["largest_batch"] = largest_batch(m, setting, str(device), fast,
                                                 max(3, steps // 2), args.images, space)
        record["methods"][m] = row
        mem = (f"  peak {r_plain['peak_gib']:.2f} / {r_fast['peak_gib']:.2f} GiB" if cuda else "")
        if cuda and r_fast["capture_error"]:
            print(f"{m}: capture failed, the fast path ran eagerly: {r_fast['capture_error']}")
        print(f"{m:11s} plain {r_plain['s_per_step']:.4f} s/step  fast "
              f"{r_fast['s_per_step']:.4f} s/step  speedup {row['speedup']:.2f}x{mem}", flush=True)
    if args.trajectory:
        t = trajectory("darts", setting, str(device), args.trajectory, args.trajectory_steps,
                       plain, fast, args.trajectory_images, space)
        record["trajectory"] = t
        print(f"trajectory: genotypes equal in {t['epochs_equal']}/{t['epochs']} epochs, "
              f"max |val acc plain - fast| {t['max_abs_val_acc_diff']:.4f}", flush=True)
    md = to_markdown(record)
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"search-speed-{device.type}-{setting_name}"
    if space != "darts":
        stem += f"-{space}"
    if args.baseline != "reference":
        stem += f"-vs-{args.baseline}"
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / f"{stem}.md").write_text(md)
    print(f"wrote {out / stem}.md and .json")
    return record


def to_markdown(r: dict) -> str:
    s = r["setting"]
    space = s.get("space", "darts")
    plain = ("plain" if r.get("baseline", "reference") == "reference"
             else "plain = fast path with --fused-edges off")
    lines = [
        f"# Search speed: plain vs fast path ({r['device_name']}, {r['device']})", "",
        f"- space `{space}`; {plain}",
        f"- command: `{r['command']}`",
        f"- commit {r['commit']}, {r['date']}, torch {r['torch']}, python {r['python']}, "
        f"{r['threads']} CPU threads",
        f"- setting `{s['name']}`: {s['layers']} cells, {s['channels']} channels, "
        f"batch {s['batch_size']}, synthetic {s['images']:,} images {tuple(s['shape'])} split "
        f"50/50, CIFAR-10's augmentation (crop with padding 4, flip); median of {r['steps']} steps after {r['warmup']} warm-up steps", "",
        "| method | plain s/step | fast s/step | speedup | plain s/epoch | fast s/epoch "
        "| plain peak GiB | fast peak GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    for m, row in r["methods"].items():
        p, f = row["plain"], row["fast"]
        lines.append(f"| {m} | {p['s_per_step']:.4f} | {f['s_per_step']:.4f} | "
                     f"{row['speedup']:.2f}x | {p['s_per_epoch']:.1f} | {f['s_per_epoch']:.1f} | "
                     f"{fmt(p['peak_gib'])} | {fmt(f['peak_gib'])} |")
    if r["device"].startswith("cuda"):
        cap = ", ".join(f"{m} {'yes' if row['fast'].get('captured') else 'no'}"
                        + (f" ({row['fast']['capture_error']})" if row["fast"].get("capture_error")
                           else "") for m, row in r["methods"].items())
        lines += ["", f"Step captured as a CUDA graph on the fast path: {cap}."]
    lb = [(m, row["largest_batch"]) for m, row in r["methods"].items() if row.get("largest_batch")]
    for m, b in lb:
        lines += ["", f"Largest batch of the fast path that fits ({m}): {b['batch_size']}, "
                  f"{b['s_per_step']:.4f} s/step, {b['s_per_epoch']:.1f} s/epoch "
                  f"({b['steps_per_epoch']} steps), peak {fmt(b['peak_gib'])} GiB"]
    t = r.get("trajectory")
    if t:
        lines += ["", f"Fixed-seed darts search, {t['epochs']} epochs x {t['steps_per_epoch']} "
                  f"steps ({t['images']:,} synthetic images), same on-device batches, plain numerics (fp32, NCHW) vs fast: derived "
                  f"genotypes equal in {t['epochs_equal']} of {t['epochs']} epochs "
                  f"({''.join('=' if e else 'x' for e in t['genotype_equal_per_epoch'])}); "
                  f"largest search-val accuracy difference {t['max_abs_val_acc_diff']:.4f}."]
        if "graphs_genotype_equal_per_epoch" in t:
            g = t["graphs_genotype_equal_per_epoch"]
            lines += ["", f"CUDA-graph replay alone (fp32, NCHW, captured vs eager): genotypes "
                      f"equal in {sum(g)} of {len(g)} epochs, largest search-val accuracy "
                      f"difference {t['graphs_max_abs_val_acc_diff']:.6f}."]
    ex = next(iter(r["methods"].values()), None)
    if ex:
        lines += ["", f"plain path: `{ex['plain']['execution']}`  ",
                  f"fast path: `{ex['fast']['execution']}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
