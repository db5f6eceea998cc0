"""Anytime oracles: score the current discrete architecture each epoch."""
from .base import (AUTO_ORDER, ORACLES, Oracle, OracleContext, auto_order, create_oracle,
                   fallback_notes, load_oracles, register_oracle, resolve_auto_oracle)

__all__ = ["AUTO_ORDER", "ORACLES", "Oracle", "OracleContext", "auto_order", "create_oracle",
           "fallback_notes",
           "load_oracles", "register_oracle", "resolve_auto_oracle"]
