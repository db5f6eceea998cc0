"""Old import path: the DARTS candidate ops live in :mod:`.darts.ops`."""
from .darts.ops import *  # noqa: F401,F403
from .darts.ops import OPS, build_op, op_spec  # noqa: F401
