"""Old import path (before the family folders): the spec registry now lives in
:mod:`.registry`, the DARTS-cell spec in :mod:`.darts.spec`. Kept so existing imports work."""
from .darts.spec import CELL_TYPES, SearchSpace, edges_of, parse_darts_cell
from .registry import builtin_spaces, load_space, load_spec_file, parse_spec, spec_dir

__all__ = ["CELL_TYPES", "SearchSpace", "builtin_spaces", "edges_of", "load_space",
           "load_spec_file", "parse_darts_cell", "parse_spec", "spec_dir"]
