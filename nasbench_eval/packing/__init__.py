"""Seed packing (issue 20): K independent searches of one setting as one computation.

:mod:`.net` runs K DARTS-cell supernets as one (weights stacked on the channel axis),
:mod:`.step` is the packed search step of each packable method, :mod:`.runner` opens the K
ordinary run directories and drives them (``nasbench-eval run --seeds``). See docs/speed.md.
"""
