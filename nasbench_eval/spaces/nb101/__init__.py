"""The nb101-cell space family (NAS-Bench-1Shot1 spaces over NAS-Bench-101 cells)."""
from . import family  # noqa: F401  (registers the family)
