"""Anytime oracles: score the current discrete architecture each epoch."""
from .base import ORACLES, Oracle, OracleContext, create_oracle, register_oracle

__all__ = ["ORACLES", "Oracle", "OracleContext", "create_oracle", "register_oracle"]
