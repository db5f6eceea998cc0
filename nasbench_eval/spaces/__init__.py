"""Search spaces: declarative specs, candidate ops, supernets and genotypes."""
from .darts.genotype import Genotype, derive_genotype, discrete_weights
from .darts.spec import SearchSpace, builtin_spaces, load_space
from .darts.supernet import DartsSupernet

__all__ = ["DartsSupernet", "Genotype", "SearchSpace", "builtin_spaces", "derive_genotype",
           "discrete_weights", "load_space"]
