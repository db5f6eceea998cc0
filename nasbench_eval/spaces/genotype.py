"""Old import path: the DARTS genotype lives in :mod:`.darts.genotype`."""
from .darts.genotype import Genotype, Pair, derive_genotype, discrete_weights

__all__ = ["Genotype", "Pair", "derive_genotype", "discrete_weights"]
