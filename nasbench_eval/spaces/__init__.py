"""Search spaces: one folder per space family (``darts/``, ``nb101/``), the family interface
(:mod:`.base`), the family registry and spec loading (:mod:`.registry`), and the supernet
seam (:mod:`.supernet`). See ``docs/spaces.md``."""
from .base import EvalNetwork, GenotypeError, SpaceFamily
from .darts.genotype import Genotype, derive_genotype, discrete_weights
from .darts.spec import SearchSpace
from .darts.supernet import DartsSupernet
from .registry import (FAMILIES, builtin_spaces, family_of, get_family, load_space,
                       register_family)

__all__ = ["FAMILIES", "DartsSupernet", "EvalNetwork", "Genotype", "GenotypeError",
           "SearchSpace", "SpaceFamily", "builtin_spaces", "derive_genotype",
           "discrete_weights", "family_of", "get_family", "load_space", "register_family"]
