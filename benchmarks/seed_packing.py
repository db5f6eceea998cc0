"""Seed packing (issue 20): K seeds packed into one supernet vs K separate searches.

    python benchmarks/seed_packing.py --device cpu                  # small setting, K = 1,2,4,8
    python benchmarks/seed_packing.py --device cuda --ks 1,2,4,8,10  # reference setting
    python benchmarks/seed_packing.py --device cpu --ks 2 --steps 2 --warmup 1 --no-memory

For each K the same K searches (seeds 0..K-1, darts, the same settings and synthetic data as
benchmarks/search_speed.py) are stepped two ways, their steps interleaved (packed, then the K
separate searches one step each, then packed again, ...) so a shared machine's drifts hit
both alike:

* separate: K ordinary searches on the fast path (fused cells, channels_last, fp32 on the
  CPU), one ``method.step`` each, one after another: what K sequential runs compute;
* packed: one step of :class:`nasbench_eval.packing.step.PackedGradientStep` over the K
  searches' state (the path of ``nasbench-eval run --seeds``).

A step includes fetching its batches. Searches per hour is 3600 / (seconds per step of one
search x the setting's steps per search: 50 epochs of 25,000 search-train images at the
batch size), i.e. the searching alone: each seed's epoch end (accuracy, derivation, oracle)
is the same work packed or not and is left out. Peak memory: on CUDA
``max_memory_allocated`` of each configuration measured alone; on the CPU the peak resident
set of a fresh process that builds the configuration and runs ``--warmup`` steps (the
process's own baseline, torch and the data, is included; compare the rows, not the numbers
with anything else). Writes Markdown and JSON to ``--out``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_speed import N_IMAGES, SETTINGS, _commit, _config, _sync  # noqa: E402

from nasbench_eval.execution import resolve_device  # noqa: E402
from nasbench_eval.packing.net import PackedSupernet  # noqa: E402
from nasbench_eval.packing.step import packed_step_for  # noqa: E402
from nasbench_eval.runner import build_search  # noqa: E402

EPOCHS = 50


class _Group:
    """K searches (seeds 0..K-1) and their batch streams, stepped packed or separately."""

    def __init__(self, cfg, k: int, packed: bool):
        self.searches = [build_search(replace(cfg, seed=s)) for s in range(k)]
        self.device = self.searches[0].device
        self.iters = []
        for i, s in enumerate(self.searches):
            s.supernet.train()
            g1 = torch.Generator().manual_seed(100 + i)
            g2 = torch.Generator().manual_seed(200 + i)
            self.iters.append(zip(s.train.epoch(g1), s.val.epoch(g2)))
        self.step_fn = None
        if packed:
            net = PackedSupernet([s.supernet for s in self.searches])
            self.step_fn = packed_step_for([s.method for s in self.searches], net)
        self.times: list[float] = []

    def step(self, timed: bool) -> None:
        _sync(self.device)
        t = time.perf_counter()
        pairs = [next(it) for it in self.iters]
        if self.step_fn is not None:
            self.step_fn.step([p[0] for p in pairs], [p[1] for p in pairs])
        else:
            for s, (tb, vb) in zip(self.searches, pairs):
                s.method.step(tb, vb)
        _sync(self.device)
        if timed:
            self.times.append(time.perf_counter() - t)


def _peak_child(device: str, setting: str, images: int, k: int, packed: bool,
                warmup: int) -> float | None:
    """Peak memory (GiB) of one configuration measured alone in a fresh process."""
    code = (f"import sys; sys.argv=['x']; sys.path.insert(0, {str(Path(__file__).parent)!r});"
            f"import seed_packing as b; print(b._peak_here({device!r}, {setting!r}, {images}, "
            f"{k}, {packed}, {warmup}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    return float(out.stdout.strip().splitlines()[-1])


def _peak_here(device: str, setting: str, images: int, k: int, packed: bool,
               warmup: int) -> float:
    dev = resolve_device(device)
    cfg = _config("darts", SETTINGS[setting], device, images=images)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    g = _Group(cfg, k, packed)
    for _ in range(max(1, warmup)):
        g.step(False)
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB


def _time_here(device: str, setting: str, images: int, k: int, packed: bool, steps: int,
               warmup: int, threads: int) -> float:
    """Median seconds per step of one configuration, alone in this (fresh) process."""
    torch.set_num_threads(threads)
    cfg = _config("darts", SETTINGS[setting], device, images=images)
    g = _Group(cfg, k, packed)
    for i in range(warmup + steps):
        g.step(timed=i >= warmup)
    return statistics.median(g.times)


def _concurrent(device: str, setting: str, images: int, procs: list[tuple[int, bool, int]],
                steps: int, warmup: int) -> list[float]:
    """Start one fresh process per ``(k, packed, threads)`` at once, each timing its own
    steps (:func:`_time_here`); their medians. Processes started together run side by side,
    as the workers of ``sweep --workers`` do."""
    here = str(Path(__file__).parent)
    running = []
    for k, packed, threads in procs:
        code = (f"import sys; sys.argv=['x']; sys.path.insert(0, {here!r}); import seed_packing "
                f"as b; print(b._time_here({device!r}, {setting!r}, {images}, {k}, {packed}, "
                f"{steps}, {warmup}, {threads}))")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        running.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env))
    out = []
    for proc in running:
        stdout, stderr = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a timing process failed:\n{stderr[-3000:]}")
        out.append(float(stdout.strip().splitlines()[-1]))
    return out


CORE_WAYS = {
    "sequential": "one run at a time, all cores' threads (K sequential runs)",
    "workers": "W single-thread worker processes side by side, one run each (sweep --workers W)",
    "packed": "one packed search of K seeds, all cores' threads (run --seeds)",
    "packed-workers": "W single-thread worker processes side by side, K/W packed seeds each "
                      "(sweep --pack K/W --workers W)",
}


def _all_k(k: int, seeds_each: int, times: list[float]) -> float:
    """Seconds per step of all K seeds when processes side by side step ``seeds_each`` seeds
    each in ``times`` seconds: K over their summed rates (seeds stepped per second)."""
    return k / sum(seeds_each / t for t in times)


def cores_comparison(device: str, setting: str, images: int, k: int, cores: int, steps: int,
                     warmup: int, rounds: int, steps_per_search: int) -> dict:
    """K seeds on ``cores`` CPU cores, four ways, each in fresh processes (as real runs are),
    the ways alternated over ``rounds`` so a shared machine's drifts hit all alike. Seconds
    per step of all K seeds: sequential K x t(1 run, ``cores`` threads); packed t(K packed,
    ``cores`` threads); workers and packed-workers: K over the summed rates of W processes
    side by side, 1 thread each, one run or K/W packed seeds each (:func:`_all_k`)."""
    if k % cores:
        raise SystemExit(f"--cores-k {k} must be a multiple of the cores ({cores})")
    per: dict[str, list[float]] = {w: [] for w in CORE_WAYS}
    for r in range(rounds):
        runs = {
            "sequential": lambda: k * _concurrent(device, setting, images, [(1, False, cores)],
                                                  steps, warmup)[0],
            "workers": lambda: _all_k(k, 1, _concurrent(
                device, setting, images, [(1, False, 1)] * cores, steps, warmup)),
            "packed": lambda: _concurrent(device, setting, images, [(k, True, cores)], steps,
                                          warmup)[0],
            "packed-workers": lambda: _all_k(k, k // cores, _concurrent(
                device, setting, images, [(k // cores, True, 1)] * cores, steps, warmup)),
        }
        for way, fn in runs.items():
            per[way].append(fn())
            print(f"  round {r + 1}: {way}: {per[way][-1]:.3f} s per step of all {k} seeds",
                  flush=True)
    rows = {}
    for way, ts in per.items():
        s = statistics.median(ts)
        rows[way] = {"s_per_step_all": s, "rounds": ts,
                     "searches_per_hour": 3600.0 / (s / k * steps_per_search)}
    base = rows["sequential"]["searches_per_hour"]
    best_unpacked = rows["workers"]["searches_per_hour"]
    for way, row in rows.items():
        row["gain_vs_sequential"] = row["searches_per_hour"] / base
        row["gain_vs_workers"] = row["searches_per_hour"] / best_unpacked
    return {"k": k, "cores": cores, "rounds": rounds, "ways": rows}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--setting", choices=sorted(SETTINGS),
                   help="default: reference on CUDA, small elsewhere")
    p.add_argument("--ks", default="1,2,4,8", help="pack sizes (comma-separated)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10 CUDA, 5 CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default 3 CUDA, 2 CPU)")
    p.add_argument("--images", type=int, default=N_IMAGES, help="synthetic training images")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--cores-k", type=int, default=8, help="seeds of the cores comparison "
                   "(CPU only; 0 skips it)")
    p.add_argument("--cores", type=int, default=None,
                   help="cores of the cores comparison (default: torch's threads)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the cores comparison")
    p.add_argument("--out", default="results/benchmarks")
    args = p.parse_args(argv)

    started = time.perf_counter()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    setting_name = args.setting or ("reference" if cuda else "small")
    setting = SETTINGS[setting_name]
    steps = args.steps or (10 if cuda else 5)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 2)
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    steps_per_search = EPOCHS * ((args.images // 2) // setting["batch_size"])
    dev_name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or "cpu")
    record = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "commit": _commit(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device), "device_name": dev_name, "torch": torch.__version__,
        "python": platform.python_version(), "threads": torch.get_num_threads(),
        "setting": {"name": setting_name, **setting, "images": args.images, "space": "darts",
                    "method": "darts", "steps_per_search": steps_per_search},
        "steps": steps, "warmup": warmup, "ks": {},
    }
    print(f"seed packing on {dev_name} ({device}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; setting {setting_name}: {setting}", flush=True)
    cfg = _config("darts", setting, str(device), images=args.images)
    for k in ks:
        groups = {"separate": _Group(cfg, k, False), "packed": _Group(cfg, k, True)}
        for i in range(warmup + steps):
            for g in groups.values():
                g.step(timed=i >= warmup)
        row: dict = {}
        for name, g in groups.items():
            s = statistics.median(g.times)
            row[name] = {"s_per_step_all": s, "s_per_search_step": s / k,
                         "searches_per_hour": 3600.0 / (s / k * steps_per_search)}
        del groups
        if not args.no_memory:
            for name in ("separate", "packed"):
                row[name]["peak_gib"] = _peak_child(str(device), setting_name, args.images, k,
                                                    name == "packed", warmup)
        row["gain"] = row["packed"]["searches_per_hour"] / row["separate"]["searches_per_hour"]
        record["ks"][str(k)] = row
        print(f"K={k}: separate {row['separate']['s_per_step_all']:.3f} s per step of all K, "
              f"packed {row['packed']['s_per_step_all']:.3f} s; searches/hour "
              f"{row['separate']['searches_per_hour']:.2f} -> "
              f"{row['packed']['searches_per_hour']:.2f} ({row['gain']:.2f}x)", flush=True)
    if not cuda and args.cores_k:
        cores = args.cores or torch.get_num_threads()
        print(f"cores comparison: {args.cores_k} seeds on {cores} cores", flush=True)
        record["cores"] = cores_comparison(str(device), setting_name, args.images,
                                           args.cores_k, cores, steps, warmup, args.rounds,
                                           steps_per_search)
    record["wall_s"] = round(time.perf_counter() - started, 1)
    md = to_markdown(record)
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"seed-packing-{device.type}-{setting_name}"
    (out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / f"{stem}.md").write_text(md)
    print(f"wrote {out / stem}.md and .json")
    return record


def to_markdown(r: dict) -> str:
    s = r["setting"]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [
        f"# Seed packing: K packed seeds vs K separate searches ({r['device_name']}, "
        f"{r['device']})", "",
        f"- command: `{r['command']}`",
        f"- commit {r['commit']}, {r['date']}, torch {r['torch']}, python {r['python']}, "
        f"{r['threads']} CPU threads"
        + (f", wall time {r['wall_s'] / 60:.1f} min" if r.get("wall_s") else ""),
        f"- setting `{s['name']}`: darts on the DARTS space, {s['layers']} cells, "
        f"{s['channels']} channels, batch {s['batch_size']}, synthetic {s['images']:,} images "
        f"{tuple(s['shape'])}; a search = {s['steps_per_search']:,} steps (50 epochs), its "
        f"epoch ends left out; median of {r['steps']} steps after {r['warmup']} warm-up steps, "
        f"packed and separate interleaved", "",
        "| K | separate s/step (all K) | packed s/step | separate searches/h | packed searches/h "
        "| gain | separate peak GiB | packed peak GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, row in r["ks"].items():
        a, b = row["separate"], row["packed"]
        lines.append(f"| {k} | {a['s_per_step_all']:.3f} | {b['s_per_step_all']:.3f} | "
                     f"{a['searches_per_hour']:.2f} | {b['searches_per_hour']:.2f} | "
                     f"{row['gain']:.2f}x | {fmt(a.get('peak_gib'))} | {fmt(b.get('peak_gib'))} |")
    c = r.get("cores")
    if c:
        lines += [
            "", f"## {c['k']} seeds on {c['cores']} cores, each way in fresh processes", "",
            f"Each way runs as real runs do, in its own processes (worker processes side by "
            f"side); the ways alternate over {c['rounds']} rounds; median of each process's "
            f"median of {r['steps']} steps after {r['warmup']} warm-up steps. `sequential` is "
            f"the K sequential runs of the issue's criterion; `workers` is the fastest way to "
            f"run them unpacked on these cores.", "",
            "| way | s/step (all K) | searches/h | gain vs sequential | gain vs workers | "
            "rounds |", "|---|---|---|---|---|---|"]
        for way, row in c["ways"].items():
            lines.append(f"| {way}: {CORE_WAYS[way]} | {row['s_per_step_all']:.3f} | "
                         f"{row['searches_per_hour']:.2f} | {row['gain_vs_sequential']:.2f}x | "
                         f"{row['gain_vs_workers']:.2f}x | "
                         + ", ".join(f"{t:.2f}" for t in row["rounds"]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
