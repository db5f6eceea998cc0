"""The DARTS-cell space family (S1-S4, DARTS): spec, genotype, supernet, discrete network."""
from . import family  # noqa: F401  (registers the family)
