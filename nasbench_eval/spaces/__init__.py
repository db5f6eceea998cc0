"""Search spaces: declarative specs, candidate ops, supernets and genotypes."""
from .darts_cell import DartsSupernet
from .genotype import Genotype, derive_genotype, discrete_weights
from .spec import SearchSpace, builtin_spaces, load_space

__all__ = ["DartsSupernet", "Genotype", "SearchSpace", "builtin_spaces", "derive_genotype",
           "discrete_weights", "load_space"]
