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

from ..errors import NasbenchEvalError
from ..spaces.base import Genotype, Space
from ..spaces.registry import family_of
from .base import Oracle, OracleContext, register_oracle


def _maps_to_nasbench101(space: Space) -> bool:
    """Whether the space's family maps its genotypes to NAS-Bench-101 cells."""
    return family_of(space).maps_to_nasbench101


@register_oracle
class NasBench101Oracle(Oracle):
    name: ClassVar[str] = "nasbench101"
    budget: ClassVar[int] = 108

    @classmethod
    def available(cls, space: Space, cfg: Any) -> bool:
        """For ``--oracle auto``: the space maps to NAS-Bench-101 and the cache exists."""
        from ..nb101.table import resolve_cache_path

        return (_maps_to_nasbench101(space)
                and resolve_cache_path(None, cfg.data_root).is_file())

    @classmethod
    def unavailable_reason(cls, space: Space, cfg: Any) -> str:
        from ..nb101.table import resolve_cache_path

        if not _maps_to_nasbench101(space):
            return "its architectures do not map to NAS-Bench-101 cells"
        path = resolve_cache_path(None, cfg.data_root)
        return (f"no NAS-Bench-101 cache at {path}; build it once with "
                f"`nasbench-eval data import-nasbench101 nasbench_only108.tfrecord`")

    def score(self, genotype: Genotype, ctx: OracleContext) -> dict[str, Any]:
        from ..nb101.table import load_table, spec_hash

        family = family_of(ctx.space)
        if not family.maps_to_nasbench101:
            raise NasbenchEvalError(
                f"oracle 'nasbench101' needs a space whose architectures map to NAS-Bench-101 "
                f"cells (e.g. nb1shot1-1/2/3); space '{ctx.space.name}' is of family "
                f"'{family.name}', whose genotypes do not")
        spec = family.nasbench101_spec(genotype)
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
