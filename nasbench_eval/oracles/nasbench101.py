"""Anytime test error from the NAS-Bench-101 table (for spaces whose genotypes map to
NAS-Bench-101 cells, e.g. NAS-Bench-1Shot1).

The genotype's ``to_model_spec()`` is hashed (pruned first) and looked up in the cache built
by ``nasbench-eval data import-nasbench101``; the score is the mean test error over the
repeats at 108 epochs, with each repeat and the validation error alongside. The table is
loaded once per process.
"""
from __future__ import annotations

from typing import Any, ClassVar

from ..errors import NasbenchEvalError
from .base import OracleContext, register_oracle


def _maps_to_nasbench101(space: Any) -> bool:
    """Whether a space's genotypes have ``to_model_spec()``: the space says so with a
    ``nasbench101`` attribute, or its family is ``nb101-cell`` (NAS-Bench-1Shot1 spaces)."""
    flag = getattr(space, "nasbench101", None)
    if flag is not None:
        return bool(flag)
    family = str(getattr(space, "family", "")).lower()
    return family.startswith("nb101") or "1shot1" in family


@register_oracle
class NasBench101Oracle:
    name: ClassVar[str] = "nasbench101"
    budget: ClassVar[int] = 108

    @classmethod
    def available(cls, space: Any, cfg: Any) -> bool:
        """For ``--oracle auto``: the space maps to NAS-Bench-101 and the cache exists."""
        from ..nb101.table import resolve_cache_path

        return (_maps_to_nasbench101(space)
                and resolve_cache_path(None, getattr(cfg, "data_root", None)).is_file())

    @classmethod
    def unavailable_reason(cls, space: Any, cfg: Any) -> str:
        from ..nb101.table import resolve_cache_path

        if not _maps_to_nasbench101(space):
            return "its architectures do not map to NAS-Bench-101 cells"
        path = resolve_cache_path(None, getattr(cfg, "data_root", None))
        return (f"no NAS-Bench-101 cache at {path}; build it once with "
                f"`nasbench-eval data import-nasbench101 nasbench_only108.tfrecord`")

    def score(self, genotype: Any, ctx: OracleContext) -> dict[str, Any]:
        from ..nb101.table import load_table, spec_hash

        to_spec = getattr(genotype, "to_model_spec", None)
        if to_spec is None:
            raise NasbenchEvalError(
                f"oracle 'nasbench101' needs a space whose architectures map to NAS-Bench-101 "
                f"cells (e.g. nb1shot1-1/2/3); {type(genotype).__name__} of space "
                f"'{getattr(ctx.space, 'name', '?')}' has no to_model_spec()")
        table = load_table(None, getattr(ctx.cfg, "data_root", None))
        h = spec_hash(to_spec())
        q = table.query(h, budget=self.budget)
        out: dict[str, Any] = {"test_error": q["test_error"], "hash": h,
                               "val_error": q["val_error"], "repeats": q["repeats"]}
        for r, acc in enumerate(q["per_repeat"]["test_accuracy"]):
            out[f"test_error_r{r}"] = 1.0 - acc
        for r, acc in enumerate(q["per_repeat"]["validation_accuracy"]):
            out[f"val_error_r{r}"] = 1.0 - acc
        return out
