"""NAS-Bench-101: cell specs (adjacency matrix + op labels), pruning and the module hash.

:mod:`.graph` holds :class:`ModelSpec`; the table reader lives in sibling modules.
"""
from .graph import (CONV1X1, CONV3X3, INPUT, LABELS, MAX_EDGES, MAX_VERTICES, MAXPOOL3X3,
                    OUTPUT, GraphError, ModelSpec, module_hash)

__all__ = ["CONV1X1", "CONV3X3", "INPUT", "LABELS", "MAX_EDGES", "MAX_VERTICES", "MAXPOOL3X3",
           "OUTPUT", "GraphError", "ModelSpec", "module_hash"]
