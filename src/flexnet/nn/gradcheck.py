"""Finite-difference gradient check, for layers and whole networks.

Backpropagation is easy to get subtly wrong; a central difference,
``(L(p + h) - L(p - h)) / 2h``, is slow but hard to get wrong. Comparing the
two in float64 catches almost every mistake in a hand-written backward.
"""

from __future__ import annotations

import copy

import numpy as np

from .layers import Layer
from .network import Sequential, layer_backward


def _rngs(obj):
    """Every Generator the model draws from, so each evaluation can replay it."""
    found = {id(rng): rng for o in [obj, *getattr(obj, "layers", [])]
             if isinstance(rng := getattr(o, "rng", None), np.random.Generator)}
    return list(found.values())


def gradcheck(model, x, y=None, *, eps: float = 1e-6, max_checks: int = 64, seed: int = 0) -> dict[str, float]:
    """Compare backpropagated gradients with central finite differences.

    Works on a copy of ``model`` cast to float64, so the model itself is left
    untouched. For a network the loss is its own ``loss_fn`` on ``y``; for a
    lone layer it is ``sum(forward(x) * R)`` with a fixed random ``R``, whose
    gradient with respect to the output is ``R``. Random layers (dropout)
    replay the same random numbers in every evaluation.

    Args:
        model: a :class:`Sequential`/:class:`Network` or a single :class:`Layer`.
        x: input batch, shape (N, features).
        y: targets, needed for a network.
        eps: the finite-difference step.
        max_checks: at most this many entries are checked per array (chosen at
            random with ``seed``); every entry when the array is smaller.

    Returns:
        ``{name: worst relative error}`` for every parameter (``"layers.0.W"``
        for a network, ``"W"`` for a layer) and for the ``"input"``. Errors
        below about 1e-6 mean the gradients agree. Each entry's error is
        relative to its own size, or to 1% of the largest gradient of the same
        layer when it is smaller than that (gradients that are truly 0).
    """
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(model)
    x = np.array(x, dtype=np.float64)  # a private copy we may perturb
    if not isinstance(model, (Sequential, Layer)):
        raise TypeError(f"gradcheck: expected a flexnet network or layer, got {type(model).__name__}")
    if isinstance(model, Sequential) and y is None:
        raise ValueError("gradcheck: a network needs targets y for its loss")
    model.dtype = np.dtype(np.float64)
    for layer in getattr(model, "layers", [model]):
        layer.astype(np.float64)

    states = [(g, copy.deepcopy(g.bit_generator.state)) for g in _rngs(model)]
    probe = None

    def loss_and_grads():
        nonlocal probe
        for g, state in states:
            g.bit_generator.state = state
        if isinstance(model, Sequential):
            return model.loss_fn.forward(model.forward(x, training=True), y), model.backward(input_grad=True)
        out = model.forward(x, training=True)
        if probe is None:
            probe = rng.standard_normal(out.shape)
        return float((out * probe).sum()), layer_backward(model, probe)

    _, dx = loss_and_grads()
    params = list(model.named_parameters())
    analytic = {name: np.array(g) for name, _, g in params} | {"input": np.array(dx)}
    arrays = {name: p for name, p, _ in params} | {"input": x}

    # An entry far smaller than the largest gradient of its layer is judged at
    # that larger scale: a bias right before training-mode batch norm has a
    # true gradient of exactly 0, and the finite difference returns rounding
    # noise there (about 1e-16 * loss / eps), which no relative error can judge.
    def layer_of(name):
        return name.rsplit(".", 1)[0] if "." in name else ("input" if name == "input" else "")

    scale = {}
    for name, g in analytic.items():
        scale[layer_of(name)] = max(scale.get(layer_of(name), 0.0), float(np.abs(g).max()) if g.size else 0.0)

    report = {}
    for name, arr in arrays.items():
        floor = max(1e-2 * scale[layer_of(name)], 1e-7)
        flat = arr.reshape(-1)  # a view: writing it perturbs the model
        idx = rng.choice(flat.size, size=max_checks, replace=False) if flat.size > max_checks else range(flat.size)
        worst = 0.0
        for i in idx:
            old = flat[i]
            flat[i] = old + eps
            up, _ = loss_and_grads()
            flat[i] = old - eps
            down, _ = loss_and_grads()
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            exact = analytic[name].reshape(-1)[i]
            worst = max(worst, abs(numeric - exact) / max(abs(numeric) + abs(exact), floor))
        report[name] = worst
    return report
