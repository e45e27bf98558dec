"""Experiments: the tutorial's architecture comparison and hyper-parameter sweeps.

``compare.py`` trains several architectures on one data set and tabulates
them (``flexnet compare``); ``sweep.py`` runs a grid or random search in
parallel, locally or on Dask; ``results.py`` holds what a sweep writes.
"""

from .compare import CompareResult, compare
from .results import SweepResult
from .sweep import sweep

__all__ = ["CompareResult", "SweepResult", "compare", "sweep"]
