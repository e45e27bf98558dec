"""Bridges to other libraries: PyTorch (both ways), ONNX (export), safetensors (weights) and
scikit-learn (estimators).

Each imports its library only when called, so ``import flexnet`` never pulls
in torch, onnx, safetensors or scikit-learn. ``estimators.py`` (FlexNetClassifier,
FlexNetRegressor) imports scikit-learn when it is imported itself:
``from flexnet.bridges.estimators import FlexNetClassifier``.
"""

from .onnx_export import to_onnx
from .pytorch import from_torch, load_torch, save_torch, to_torch
from .safetensors_file import from_safetensors, to_safetensors

__all__ = ["from_safetensors", "from_torch", "load_torch", "save_torch", "to_onnx", "to_safetensors", "to_torch"]
