"""Bridges to other libraries: PyTorch (both ways), ONNX (export) and scikit-learn (estimators).

Each imports its library only when called, so ``import flexnet`` never pulls
in torch, onnx or scikit-learn. ``estimators.py`` (FlexNetClassifier,
FlexNetRegressor) imports scikit-learn when it is imported itself:
``from flexnet.bridges.estimators import FlexNetClassifier``.
"""

from .onnx_export import to_onnx
from .pytorch import from_torch, load_torch, save_torch, to_torch

__all__ = ["from_torch", "load_torch", "save_torch", "to_onnx", "to_torch"]
