"""Anytime test error from the NAS-Bench-101 table (for spaces whose genotypes map to
NAS-Bench-101 cells, e.g. NAS-Bench-1Shot1).

The space family's NAS-Bench-101 cell of the genotype
(:meth:`~nasbench_eval.spaces.base.SpaceFamily.nasbench101_spec`) is hashed (pruned first) and looked up in the cache built
by ``nasbench-eval data import-nasbench101``; the score is the mean test error over the
repeats at 108 epochs, with each repeat and the validation error alongside. The table is
loaded once per process.
"""
from __future__ import annotations

from typing import Any, ClassVar

from ..spaces.base import Genotype, Space
from .base import NasBench101CellOracle, OracleContext, register_oracle


@register_oracle
class NasBench101Oracle(NasBench101CellOracle):
    name: ClassVar[str] = "nasbench101"
    budget: ClassVar[int] = 108

    @classmethod
    def available(cls, space: Space, cfg: Any) -> bool:
        """For ``--oracle auto``: the space maps to NAS-Bench-101 and the cache exists."""
        from ..nb101.table import resolve_cache_path

        return (super().available(space, cfg)
                and resolve_cache_path(None, cfg.data_root).is_file())

    @classmethod
    def unavailable_reason(cls, space: Space, cfg: Any) -> str:
        from ..nb101.table import resolve_cache_path

        if not super().available(space, cfg):
            return super().unavailable_reason(space, cfg)
        path = resolve_cache_path(None, cfg.data_root)
        return (f"no NAS-Bench-101 cache at {path}; build it once with "
                f"`nasbench-eval data import-nasbench101 nasbench_only108.tfrecord`")

    def score(self, genotype: Genotype, ctx: OracleContext) -> dict[str, Any]:
        from ..nb101.table import load_table, spec_hash

        spec = self.cell_spec(genotype, ctx.space)
        table = load_table(None, ctx.cfg.data_root)
        h = spec_hash(spec)
        q = table.query(h, budget=self.budget)
        out: dict[str, Any] = {"test_error": q["test_error"], "hash": h,
                               "val_error": q["val_error"], "repeats": q["repeats"]}
        for r, acc in enumerate(q["per_repeat"]["test_accuracy"]):
            out[f"test_error_r{r}"] = 1.0 - acc
        for r, acc in enumerate(q["per_repeat"]["validation_accuracy"]):
            out[f"val_error_r{r}"] = 1.0 - acc
        return out
