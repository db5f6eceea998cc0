"""Search methods. Each module registers its classes with :func:`register`; adding a method
means adding a module here, or one file named in ``$NASBENCH_EVAL_PLUGINS`` (docs/methods.md).

Bases: :class:`Method` (the interface, every hook defaulted), :class:`WeightTraining` (SGD on
the supernet's weights) and :class:`GradientMethod` (the DARTS alpha machinery on top).
"""
from __future__ import annotations

from .base import (METHODS, ArchWeights, Batch, Method, Mixing, create_method, load_all,
                   method_class, method_description, register)
from .gradient import GradientMethod, SoftmaxMixing
from .weights import WeightTraining

__all__ = ["METHODS", "ArchWeights", "Batch", "GradientMethod", "Method", "Mixing",
           "SoftmaxMixing", "WeightTraining", "create_method", "load_all", "method_class",
           "method_description", "register"]
