"""Optimizers: objects that turn gradients into parameter updates.

An optimizer reads ``model.named_parameters()`` -- ``(name, array, gradient)``
triples such as ``("layers.0.W", W, dW)`` -- and changes each array in place,
so every reference to a weight stays valid. Its state (momentum buffers,
moment estimates) is kept in ``self.state``, a dict keyed by the same names
that key model files, so a checkpoint can hold both side by side.

Every optimizer follows the algorithm of the PyTorch class of the same name,
on purpose: same defaults, same state names (``exp_avg``, ``momentum_buffer``
...), so results can be compared number for number. They agree to rounding,
not bit for bit: PyTorch fuses multiply-adds, NumPy rounds each operation.

Penalties, shared by all optimizers:

- ``weight_decay`` is PyTorch's: an L2 term ``weight_decay * p`` added to the
  gradient (coupled), except in :class:`AdamW`, which shrinks the weights
  directly (decoupled).
- ``l1`` adds ``l1 * sign(p)`` to the gradient (the subgradient of
  ``l1 * |p|``), before any moment estimate sees it, in every optimizer.

Learning-rate schedules live beside this module, in
:mod:`flexnet.optim.schedules`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .. import ops
from ..nn.checks import check_flag, check_lr, check_number

# -- the base class ----------------------------------------------------------


class Optimizer:
    """Base class: validation, per-parameter state and the step loop.

    Subclasses set ``defaults`` (constructor arguments other than ``lr``, in
    order), implement ``_update(p, g, state)`` and ``state_keys()``.

    Args:
        lr: learning rate, finite and > 0. ``opt.lr`` is the current value;
            schedules change it between epochs.
        weight_decay: coupled L2 penalty (see the module docstring), >= 0.
        l1: L1 penalty, >= 0.

    Attributes:
        state: ``{parameter name: {state name: array or int}}``.
    """

    def __init__(self, lr: float, *, weight_decay: float = 0.0, l1: float = 0.0):
        self._lr = check_lr(lr, f"{type(self).__name__}(lr)")
        self.weight_decay = check_number(weight_decay, f"{type(self).__name__}(weight_decay)")
        self.l1 = check_number(l1, f"{type(self).__name__}(l1)")
        self.state: dict[str, dict[str, Any]] = {}
        self._prepared: dict[str, tuple] = {}  # name -> (param, grad, state, update), checked

    # The learning rate may reach 0 at the end of a schedule, never below.
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = check_number(value, f"{type(self).__name__}.lr")

    # -- the step ---------------------------------------------------------------

    def step(self, model) -> None:
        """Update every parameter of ``model`` in place from its gradient.

        ``model`` is anything with ``named_parameters()`` yielding
        ``(name, parameter, gradient)``: a Sequential, a Network or a lone
        Layer. Parameters whose gradient is None (no backward yet) are skipped.
        """
        named = getattr(model, "named_parameters", None)
        if not callable(named):
            raise TypeError(f"{type(self).__name__}.step: expected a model with named_parameters() "
                            f"(a Sequential, Network or Layer), got {type(model).__name__}")
        prepared = self._prepared
        for name, p, g in named():
            if g is None:
                continue
            state = self.state.get(name)
            # The same parameter, gradient and state arrays as at the last step
            # (layers reuse their gradient arrays) were checked then and cannot
            # have changed shape or dtype since: check and prepare only what is new.
            seen = prepared.get(name)
            if seen is None or seen[0] is not p or seen[1] is not g or seen[2] is not state:
                self._check_pair(name, p, g)
                if state is None:
                    state = self.state[name] = self._new_state(p)
                else:
                    self._match_state(name, p, state)
                seen = prepared[name] = (p, g, state, self._prepare(p, g, state))
            seen[3]()

    def _prepare(self, p: np.ndarray, g: np.ndarray, state: dict):
        """The update of one parameter as a call of no arguments, made once per
        (parameter, gradient, state) and called at every step."""
        return functools.partial(self._update, p, g, state)

    def __getstate__(self) -> dict:
        # The cache holds the model's arrays: a copy or a pickle prepares its own.
        return {**self.__dict__, "_prepared": {}}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.pop("_checked", None)  # the cache's name in a 0.1 pickle
        self._prepared = {}

    def _penalized(self, p: np.ndarray, g: np.ndarray, weight_decay: float) -> np.ndarray:
        """The gradient plus the L2 and L1 terms (a new array; ``g`` is untouched)."""
        if weight_decay != 0:
            g = g + weight_decay * p
        if self.l1 != 0:
            g = g + self.l1 * ops.xp(p).sign(p)
        return g

    def _check_pair(self, name: str, p, g) -> None:
        where = f"{type(self).__name__}.step"
        if not all(isinstance(a, np.ndarray) or ops.is_foreign(a) for a in (p, g)):
            raise TypeError(f"{where}: parameter {name} and its gradient must be arrays, "
                            f"got {type(p).__name__} and {type(g).__name__}")
        if g.shape != p.shape:
            raise ValueError(f"{where}: gradient of {name} has shape {g.shape}, "
                             f"but the parameter has shape {p.shape}")
        if ops.dtype(g) != ops.dtype(p):
            raise TypeError(f"{where}: gradient of {name} is {g.dtype}, but the parameter is {p.dtype}; "
                            "a layer's backward must keep the parameter's dtype")

    def _match_state(self, name: str, p: np.ndarray, state: dict) -> None:
        """Refuse state of another shape; cast state of another dtype (a loaded
        float64 checkpoint driving a float32 model computes in float32)."""
        for key, value in state.items():
            if ops.is_foreign(p) and isinstance(value, np.ndarray):  # state loaded from a file: to p's device
                state[key] = value = ops.like(value.astype(ops.dtype(p)), p)
            if isinstance(value, np.ndarray) and value.shape != p.shape:
                raise ValueError(f"{type(self).__name__}.step: state {key!r} of {name} has shape {value.shape}, "
                                 f"but the parameter has shape {p.shape}; was this optimizer state saved "
                                 "for a different model?")
            if isinstance(value, np.ndarray) and value.dtype != p.dtype:
                state[key] = value.astype(p.dtype)

    # -- what subclasses define ---------------------------------------------------

    #: constructor arguments other than lr, with their defaults, in order
    defaults: dict[str, Any] = {}

    def state_keys(self) -> tuple[str, ...]:
        """Names of the per-parameter state this configuration keeps."""
        return ()

    def _new_state(self, p: np.ndarray) -> dict[str, Any]:
        return {key: 0 if key == "step" else ops.xp(p).zeros_like(p) for key in self.state_keys()}

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        raise NotImplementedError

    # -- saving and restoring ------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """Constructor arguments (current lr included) that rebuild this optimizer."""
        values = {key: getattr(self, key) for key in self.defaults}
        return {"lr": self.lr, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly: type, hyper-parameters,
        per-parameter state. Values are JSON scalars, lists and NumPy arrays
        (copies: later steps do not change a saved dict)."""
        state = {name: {k: (v.copy() if isinstance(v, np.ndarray) else ops.to_numpy(v)) for k, v in st.items()}
                 for name, st in self.state.items()}
        return {"type": type(self).__name__, "config": self.config(), "state": state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state from :meth:`state_dict`'s output.

        Raises:
            ValueError: the dict was saved by another optimizer type or holds
                state this configuration does not keep.
        """
        kind = type(self).__name__
        where = f"{kind}.load_state_dict"
        if not isinstance(state_dict, dict) or not {"type", "config", "state"} <= set(state_dict):
            raise ValueError(f"{where}: expected a dict with keys 'type', 'config' and 'state' "
                             f"as made by state_dict()")
        if state_dict["type"] != kind:
            raise ValueError(f"{where}: this state was saved by {state_dict['type']}, not {kind}; "
                             f"build a {state_dict['type']} to load it")
        config = dict(state_dict["config"])
        if set(config) - {"lr", *self.defaults}:
            raise ValueError(f"{where}: unknown hyper-parameters {sorted(set(config) - {'lr', *self.defaults})}")
        fresh = type(self)(**config)  # validates every value
        restored = {str(name): fresh._checked_state(str(name), st, where)
                    for name, st in dict(state_dict["state"]).items()}
        for key in ("_lr", "weight_decay", "l1", *self.defaults):
            setattr(self, key, getattr(fresh, key))
        self.state = restored

    def _checked_state(self, name: str, st, where: str) -> dict[str, Any]:
        expected = set(self.state_keys())
        if not isinstance(st, dict) or set(st) != expected:
            got = sorted(st) if isinstance(st, dict) else type(st).__name__
            raise ValueError(f"{where}: state of {name} should hold {sorted(expected)} for this "
                             f"configuration, got {got}")
        out: dict[str, Any] = {}
        for key, value in st.items():
            if key == "step":  # a whole number >= 0
                out[key] = int(check_number(value, f"{where}: step of {name}"))
                if out[key] != value:
                    raise ValueError(f"{where}: step of {name} must be a whole number >= 0, got {value!r}")
            elif np.asarray(value).dtype.kind != "f":
                raise TypeError(f"{where}: state {key!r} of {name} must be a float array, "
                                f"got dtype {np.asarray(value).dtype}")
            else:
                out[key] = np.array(value)  # a copy
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


# -- the optimizers --------------------------------------------------------------


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (PyTorch's ``SGD``).

    Update, with ``g`` the gradient plus penalties::

        b = g on the first step, else b = momentum * b + (1 - dampening) * g
        d = g + momentum * b if nesterov else b      (d = g without momentum)
        p -= lr * d

    Convention (PyTorch's, not Sutskever's): the learning rate multiplies the
    buffer at use, so changing ``lr`` mid-run does not rescale past momentum.
    With the defaults this is exactly ``net.update(lr)``, bit for bit.
    """

    defaults = {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0, "l1": 0.0}

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, *, l1: float = 0.0):
        super().__init__(lr, weight_decay=weight_decay, l1=l1)
        self.momentum = check_number(momentum, "SGD(momentum)", high=1.0)
        self.dampening = check_number(dampening, "SGD(dampening)", high=1.0, high_open=False)
        self.nesterov = check_flag(nesterov, "SGD(nesterov)")
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError(f"SGD(nesterov=True): Nesterov momentum needs momentum > 0 and dampening = 0, "
                             f"got momentum={self.momentum}, dampening={self.dampening}")

    def state_keys(self):
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def _new_state(self, p):
        # PyTorch starts the buffer at the first gradient, not at zero; the
        # buffer is filled in _update, where the penalised gradient is known.
        return {}

    def _prepare(self, p, g, state):
        general = super()._prepare(p, g, state)
        if type(self) is not SGD:
            return general  # a subclass's own rule (its _update, its lr) always runs
        plain = ops.prepare_axpy(g, p)  # p += a * g, its checks and flat views made once

        def update():
            if self.momentum == 0 and self.weight_decay == 0 and self.l1 == 0:
                plain(-self._lr)  # p -= lr * g: plain SGD, the common case
            else:
                general()
        return update

    def _update(self, p, g, state):
        g = self._penalized(p, g, self.weight_decay)
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = ops.copy(g)
            else:
                buf *= self.momentum
                ops.axpy(1 - self.dampening, g, buf)  # buf += (1 - dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        ops.axpy(-self.lr, g, p)  # p -= lr * g

    def _checked_state(self, name, st, where):
        # A buffer appears at the first step, so a parameter may hold none yet.
        return {} if st == {} else super()._checked_state(name, st, where)


class Adam(Optimizer):
    """Adam (PyTorch's ``Adam``): moment estimates with bias correction.

    Update at step ``t``, with ``g`` the gradient plus penalties::

        m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g
        v_hat = max(v_hat, v) if amsgrad else v
        p -= lr / (1 - beta1**t) * m / (sqrt(v_hat) / sqrt(1 - beta2**t) + eps)

    Convention (PyTorch's): ``eps`` is added after the bias correction of the
    square root, and ``weight_decay`` is coupled L2 (use :class:`AdamW` for
    decoupled decay).
    """

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False, "l1": 0.0}
    _decoupled = False

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, l1: float = 0.0):
        super().__init__(lr, weight_decay=weight_decay, l1=l1)
        name = type(self).__name__
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise TypeError(f"{name}(betas): expected two numbers such as (0.9, 0.999), got {betas!r}")
        self.betas = (check_number(betas[0], f"{name}(betas[0])", high=1.0),
                      check_number(betas[1], f"{name}(betas[1])", high=1.0))
        self.eps = check_number(eps, f"{name}(eps)")
        self.amsgrad = check_flag(amsgrad, f"{name}(amsgrad)")

    def state_keys(self):
        return ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def _update(self, p, g, state):
        beta1, beta2 = self.betas
        lr = self.lr
        state["step"] += 1
        t = state["step"]
        if self._decoupled:
            if self.weight_decay != 0:
                p *= 1 - lr * self.weight_decay
            g = self._penalized(p, g, 0.0)
        else:
            g = self._penalized(p, g, self.weight_decay)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        if self.amsgrad:
            ops.maximum_into(state["max_exp_avg_sq"], v)
            v = state["max_exp_avg_sq"]
        step_size = lr / (1 - beta1 ** t)
        denom = ops.xp(v).sqrt(v)
        denom /= (1 - beta2 ** t) ** 0.5
        denom += self.eps
        p += -step_size * m / denom


class AdamW(Adam):
    """AdamW (PyTorch's ``AdamW``): Adam with decoupled weight decay.

    Before the Adam step, ``p *= 1 - lr * weight_decay``; the decay never
    enters the moment estimates, so it acts the same on every weight however
    large its gradients. Default ``weight_decay`` is 1e-2, as in PyTorch.
    ``l1`` is still added to the gradient.
    """

    defaults = {**Adam.defaults, "weight_decay": 1e-2}
    _decoupled = True

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, l1: float = 0.0):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, l1=l1)


class RMSprop(Optimizer):
    """RMSprop (PyTorch's ``RMSprop``): divide by a running RMS of the gradient.

    Update, with ``g`` the gradient plus penalties::

        s = alpha * s + (1 - alpha) * g * g;   a = alpha * a + (1 - alpha) * g  (centered)
        r = sqrt(s - a * a) if centered else sqrt(s);   d = g / (r + eps)
        b = momentum * b + d; p -= lr * b      (p -= lr * d without momentum)

    Convention (PyTorch's): ``eps`` outside the square root, no bias correction,
    default ``alpha`` 0.99 (Keras uses rho=0.9 and eps inside the root).
    """

    defaults = {"alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
                "centered": False, "l1": 0.0}

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 *, l1: float = 0.0):
        super().__init__(lr, weight_decay=weight_decay, l1=l1)
        self.alpha = check_number(alpha, "RMSprop(alpha)", high=1.0)
        self.eps = check_number(eps, "RMSprop(eps)")
        self.momentum = check_number(momentum, "RMSprop(momentum)", high=1.0)
        self.centered = check_flag(centered, "RMSprop(centered)")

    def state_keys(self):
        keys = ("step", "square_avg")
        if self.momentum > 0:
            keys += ("momentum_buffer",)
        return keys + (("grad_avg",) if self.centered else ())

    def _update(self, p, g, state):
        alpha = self.alpha
        state["step"] += 1
        g = self._penalized(p, g, self.weight_decay)
        s = state["square_avg"]
        s *= alpha
        s += (1 - alpha) * g * g
        if self.centered:
            a = state["grad_avg"]
            a *= alpha
            a += (1 - alpha) * g
            # s - a*a >= 0 in exact arithmetic; clip rounding so sqrt never gives NaN
            avg = ops.xp(s).sqrt(ops.xp(s).maximum(s - a * a, 0))
        else:
            avg = ops.xp(s).sqrt(s)
        avg += self.eps
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g / avg
            p -= self.lr * buf
        else:
            p += -self.lr * g / avg


class Adagrad(Optimizer):
    """Adagrad (PyTorch's ``Adagrad``): per-weight steps shrink with the summed
    squared gradients.

    Update at step ``t``, with ``g`` the gradient plus penalties::

        s += g * g;   p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    Convention (PyTorch's): the sum starts at ``initial_accumulator_value``
    (default 0), ``eps`` is outside the square root.
    """

    defaults = {"lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0,
                "eps": 1e-10, "l1": 0.0}

    def __init__(self, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, l1: float = 0.0):
        super().__init__(lr, weight_decay=weight_decay, l1=l1)
        self.lr_decay = check_number(lr_decay, "Adagrad(lr_decay)")
        self.initial_accumulator_value = check_number(initial_accumulator_value,
                                                      "Adagrad(initial_accumulator_value)")
        self.eps = check_number(eps, "Adagrad(eps)")

    def state_keys(self):
        return ("step", "sum")

    def _new_state(self, p):
        return {"step": 0, "sum": ops.xp(p).full_like(p, self.initial_accumulator_value)}

    def _update(self, p, g, state):
        state["step"] += 1
        g = self._penalized(p, g, self.weight_decay)
        clr = self.lr / (1 + (state["step"] - 1) * self.lr_decay)
        s = state["sum"]
        s += g * g
        std = ops.xp(s).sqrt(s)
        std += self.eps
        p += -clr * g / std
