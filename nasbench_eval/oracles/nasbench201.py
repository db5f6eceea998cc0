"""Anytime scores from the official NAS-Bench-201 / NATS-Bench topology table.

The user downloads the benchmark once (NATS-Bench's topology files, which hold NAS-Bench-201's
15,625 cells under the same indices: ``NATS-tss-v1_0-3ffb9-simple/`` (a folder, read lazily) or
``NATS-tss-v1_0-3ffb9.pickle.pbz2``), and points the oracle at it with ``path=`` or puts it under
``$NASBENCH_EVAL_DATA/nats-bench/``. The file is read through the ``nats_bench`` package itself
(the optional extra ``nasbench-eval[nb201]``), never by a reader of our own, so the numbers are
exactly what the API gives its users.

**The protocol is explicit**, because it is what the benchmark's users most often get wrong
(NATS-Bench issues 11, 27, 35, 38): every number is one of

* ``dataset``: ``cifar10-valid`` (trained on half of CIFAR-10's training set; ``valid`` = the
  other half, ``test`` = the CIFAR-10 test set), ``cifar10`` (trained on all 50k; only
  ``test``), ``cifar100`` and ``ImageNet16-120`` (``valid`` and ``test`` are the two halves of
  the original test set);
* ``split``: ``valid`` or ``test``;
* ``epochs``: the training budget, 12 or 200 (NATS-Bench's ``hp``); the last epoch's accuracy,
  averaged over the table's seeds.

The options choose the headline number (``test_error``); every protocol the table holds is
also recorded each epoch as ``oracle_acc_<dataset>_<split>_<epochs>ep`` (in %), and the
chosen one as ``oracle_protocol``.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from ..errors import NasbenchEvalError
from ..options import Option
from ..spaces.base import Genotype, Space
from ..spaces.registry import family_of
from .base import Oracle, OracleContext, register_oracle

SPLITS: dict[str, tuple[str, ...]] = {
    "cifar10-valid": ("valid", "test"),
    "cifar10": ("test",),
    "cifar100": ("valid", "test"),
    "ImageNet16-120": ("valid", "test"),
}
"""Which splits each of the benchmark's datasets has (see the module docstring)."""
EPOCHS = (12, 200)
DEFAULT_NAMES = ("NATS-tss-v1_0-3ffb9-simple", "NATS-tss-v1_0-3ffb9.pickle.pbz2")
EXTRA = "pip install 'nasbench-eval[nb201]'  (the nats_bench package)"


def default_path(data_root: str | None) -> Path | None:
    """The first of :data:`DEFAULT_NAMES` under ``<data root>/nats-bench/`` that exists."""
    from ..data import default_data_root

    root = Path(data_root) if data_root else default_data_root()
    for name in DEFAULT_NAMES:
        p = root / "nats-bench" / name
        if p.exists():
            return p
    return None


def column(dataset: str, split: str, epochs: int) -> str:
    """The metrics column (after the runner's ``oracle_`` prefix) of one protocol."""
    return f"acc_{dataset}_{split}_{epochs}ep"


@lru_cache(maxsize=4)
def load_api(path: str) -> Any:
    """The ``nats_bench`` topology API on ``path`` (a folder: fast mode), once per process."""
    try:
        from nats_bench import create
    except ImportError:
        raise NasbenchEvalError(f"the nasbench201 oracle reads the official table through the "
                                f"nats_bench package: {EXTRA}") from None
    p = Path(path)
    if not p.exists():
        raise NasbenchEvalError(f"nasbench201: no benchmark file or folder at {p}; download "
                                f"NATS-tss-v1_0-3ffb9-simple (or the .pickle.pbz2 file) and "
                                f"pass path=... or put it under $NASBENCH_EVAL_DATA/nats-bench/")
    try:
        return create(str(p), "tss", fast_mode=p.is_dir(), verbose=False)
    except (ValueError, OSError, EOFError) as exc:
        raise NasbenchEvalError(f"nasbench201: nats_bench could not load {p}: {exc}") from None


def query_arch(arch: str, path: str) -> dict[str, Any]:
    """Every protocol the table holds for ``arch`` (accuracies in %, mean over seeds), plus
    its index and the cost information of ``cifar10`` at 200 epochs where present."""
    api = load_api(path)
    try:
        index = api.query_index_by_arch(arch)
    except Exception as exc:  # the API raises bare errors on odd strings
        raise NasbenchEvalError(f"nasbench201: {arch!r} is not in the table ({exc})") from None
    if index is None or index < 0:
        raise NasbenchEvalError(f"nasbench201: {arch!r} is not in the table")
    out: dict[str, Any] = {"index": int(index), "arch": arch}
    for epochs in EPOCHS:
        for dataset, splits in SPLITS.items():
            try:
                info = api.get_more_info(index, dataset, iepoch=None, hp=str(epochs),
                                         is_random=False)
            except (KeyError, ValueError):
                continue  # this budget or dataset is not in the file
            for split in splits:
                acc = info.get(f"{split}-accuracy")
                if acc is not None:
                    out[column(dataset, split, epochs)] = float(acc)
    try:
        cost = api.get_cost_info(index, "cifar10", hp="200")
        out["params_m_cifar10"] = float(cost["params"])
        out["flops_m_cifar10"] = float(cost["flops"])
    except (KeyError, ValueError, TypeError):
        pass
    return out


@register_oracle
class NasBench201Oracle(Oracle):
    """The official NAS-Bench-201 / NATS-Bench table (nats_bench; you download the file)."""

    name: ClassVar[str] = "nasbench201"
    options: ClassVar[dict[str, Option]] = {
        "path": Option(None, str, "benchmark file or folder; none: $NASBENCH_EVAL_DATA/"
                                  "nats-bench/NATS-tss-v1_0-3ffb9-simple", none_ok=True),
        "dataset": Option("cifar10", str, "which training/evaluation data",
                          choices=tuple(SPLITS)),
        "split": Option("test", str, "valid or test (cifar10 has only test)",
                        choices=("valid", "test")),
        "epochs": Option(200, int, "training budget of the table", choices=EPOCHS),
    }

    def __init__(self, **options: Any) -> None:
        self.overrides = dict(options)
        self.resolve(options)

    @classmethod
    def _path(cls, cfg: Any) -> Path | None:
        """The table: the ``path`` option when this oracle was chosen with it, else the
        default location (None when nothing is there)."""
        given = cls.resolve(cfg.oracle_options)["path"] if cfg.oracle == cls.name else None
        return Path(given) if given else default_path(cfg.data_root)

    @classmethod
    def available(cls, space: Space, cfg: Any) -> bool:
        if not family_of(space).maps_to_nasbench201:
            return False
        path = cls._path(cfg)
        if path is None or not path.exists():
            return False
        try:
            import nats_bench  # noqa: F401
        except ImportError:
            return False
        return True

    @classmethod
    def unavailable_reason(cls, space: Space, cfg: Any) -> str:
        if not family_of(space).maps_to_nasbench201:
            return "its architectures are not NAS-Bench-201 cells (use a space such as nb201)"
        return cls.install_hint(space, cfg)

    @classmethod
    def install_hint(cls, space: Space, cfg: Any) -> str:
        if not family_of(space).maps_to_nasbench201:
            return ""
        try:
            import nats_bench  # noqa: F401
        except ImportError:
            return f"the official NAS-Bench-201 table needs {EXTRA}"
        if cls._path(cfg) is None:
            return ("no official NAS-Bench-201 table found: put NATS-tss-v1_0-3ffb9-simple "
                    "under $NASBENCH_EVAL_DATA/nats-bench/ or pass --oracle nasbench201 "
                    "--oracle-option path=...")
        return ""

    def score(self, genotype: Genotype, ctx: OracleContext) -> dict[str, Any]:
        opts = self.resolve({**ctx.cfg.oracle_options, **self.overrides})
        if opts["split"] not in SPLITS[opts["dataset"]]:
            raise NasbenchEvalError(f"oracle 'nasbench201': dataset {opts['dataset']} has no "
                                    f"'{opts['split']}' split; valid: "
                                    f"{', '.join(SPLITS[opts['dataset']])}")
        path = opts["path"] or default_path(ctx.cfg.data_root)
        if path is None:
            raise NasbenchEvalError(self.install_hint(ctx.space, ctx.cfg))
        arch = family_of(ctx.space).nasbench201_arch(genotype)
        row = query_arch(arch, os.fspath(path))
        key = column(opts["dataset"], opts["split"], opts["epochs"])
        if key not in row:
            raise NasbenchEvalError(f"oracle 'nasbench201': the table at {path} holds no "
                                    f"{opts['dataset']}/{opts['split']} accuracy at "
                                    f"{opts['epochs']} epochs for {arch}")
        protocol = f"{opts['dataset']}/{opts['split']}/{opts['epochs']}ep"
        return {"test_error": 1.0 - row[key] / 100.0, "protocol": protocol,
                **{k: v for k, v in row.items() if k != "arch"}}


__all__ = ["EPOCHS", "NasBench201Oracle", "SPLITS", "column", "default_path", "load_api",
           "query_arch"]
