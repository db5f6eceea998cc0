"""The nb201-cell space family (NAS-Bench-201's topology space)."""
from . import family  # noqa: F401  (registers the family)
