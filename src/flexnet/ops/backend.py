"""Array libraries other than NumPy, through the Python Array API standard.

A network's parameters may live in another library's arrays (PyTorch tensors,
CuPy arrays on a GPU, or ``array_api_strict``, which refuses every call outside
the standard). Layers and optimizers then find the library from the arrays they
are given, ``xp = ops.xp(x)``, and call it as they would call NumPy:
``xp.maximum(z, 0)``. For a NumPy array ``xp`` is NumPy itself, found with one
type check, so NumPy's path and its fast paths (BLAS axpy, reused buffers)
stay exactly as they are.

Other libraries are reached through ``array-api-compat``
(``pip install "flexnet[array-api]"``), imported when a network first asks for
one, never with flexnet.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np

#: The libraries a network can be moved to, by the name ``Network(backend=)`` takes.
NAMES = ("numpy", "torch", "cupy", "array_api_strict")


def namespace(name: str):
    """The Array API namespace of library ``name``: NumPy itself for "numpy",
    else ``array_api_compat``'s wrapper of the library (``array_api_strict`` as is)."""
    if name == "numpy":
        return np
    if name not in NAMES:
        raise ValueError(f"backend: expected one of {list(NAMES)}, got {name!r}")
    try:
        importlib.import_module("array_api_compat")
        return importlib.import_module("array_api_strict" if name == "array_api_strict"
                                       else f"array_api_compat.{name}")
    except ImportError as exc:
        package = {"torch": "torch", "cupy": "cupy-cuda12x", "array_api_strict": "array-api-strict"}[name]
        raise ImportError(f"backend={name!r} needs array-api-compat and {package}: "
                          f'pip install "flexnet[array-api]" {package} ({exc})') from exc


def is_foreign(x) -> bool:
    """True for an array of a library other than NumPy. Such arrays reach flexnet
    only after a backend was asked for, so array-api-compat is loaded by then."""
    compat = sys.modules.get("array_api_compat")
    return compat is not None and not isinstance(x, (np.ndarray, np.generic)) and compat.is_array_api_obj(x)


def xp(x):
    """The namespace of array ``x``: NumPy for a NumPy array (one type check)."""
    if type(x) is np.ndarray or not is_foreign(x):
        return np
    return sys.modules["array_api_compat"].array_namespace(x)


def name_of(x) -> str:
    """The backend name of array ``x``'s library ("numpy", "torch", ...)."""
    if not is_foreign(x):
        return "numpy"
    compat = sys.modules["array_api_compat"]
    return "torch" if compat.is_torch_array(x) else "cupy" if compat.is_cupy_array(x) else "array_api_strict"


def erf(x):
    """erf of another library's array, where the library has one (the standard has
    none): ``torch.special.erf``, CuPy's ``cupyx.scipy.special.erf``."""
    name = name_of(x)
    if name == "torch":
        return importlib.import_module("torch").special.erf(x)
    if name == "cupy":
        return importlib.import_module("cupyx.scipy.special").erf(x)
    raise TypeError(f"erf: the Array API standard has no erf, and {name} arrays have none of their own")


def device(x):
    """The device ``x`` lives on (None for NumPy)."""
    return sys.modules["array_api_compat"].device(x) if is_foreign(x) else None


def dtype(x) -> np.dtype:
    """``x``'s dtype as a NumPy dtype, whatever the library (``torch.float64`` -> float64)."""
    if isinstance(x, np.ndarray):
        return x.dtype
    return np.dtype(str(x.dtype).rpartition(".")[2])


def astype(x, dt):
    """``x`` cast to NumPy dtype ``dt``, in ``x``'s own library."""
    if isinstance(x, np.ndarray):
        return x.astype(dt)
    space = xp(x)
    return space.astype(x, getattr(space, np.dtype(dt).name), copy=False)


def move(a, space, where=None):
    """A copy of array ``a`` (NumPy or any library) in namespace ``space`` on ``where``."""
    a = to_numpy(a)
    if space is np:
        return np.array(a, copy=True)
    return space.asarray(np.require(a, requirements="C"), device=where, copy=True)  # torch takes no negative strides


def like(a: np.ndarray, x):
    """NumPy array ``a`` in ``x``'s library and on its device (``a`` itself for NumPy ``x``)."""
    if type(x) is np.ndarray or not is_foreign(x):
        return a
    return xp(x).asarray(a, device=device(x))


def to_numpy(x) -> np.ndarray:
    """``x`` as a NumPy array: NumPy arrays as they are, others copied to the host."""
    if isinstance(x, np.ndarray) or not is_foreign(x):
        return x
    compat = sys.modules["array_api_compat"]
    if compat.is_torch_array(x):
        return x.detach().cpu().numpy().copy()
    if compat.is_cupy_array(x):
        return x.get()
    return np.array(np.from_dlpack(x), copy=True)


def copy(x):
    """A copy of ``x`` in its own library."""
    return x.copy() if isinstance(x, np.ndarray) else xp(x).asarray(x, copy=True)
