"""flexnet and PyTorch compute the same numbers: forward, loss, every gradient, whole runs.

Random architectures cover every layer the bridge knows, in float32 and
float64, batch norm and layer norm in training and inference. Gradients come
from torch autograd; flexnet's come from its hand-written backward passes.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch
from registry import LAYER_FACTORIES, LAYER_TRAINING, LOSS_FACTORIES

import flexnet
from flexnet import Linear, Sequential
from flexnet.bridges.pytorch import (
    LAYERS,
    flexnet_class,
    from_torch,
    load_torch,
    save_torch,
    to_torch,
    torch_loss,
    torch_names,
)
from flexnet.nn.activations import GELU, LeakyReLU, Sigmoid, Softmax, Tanh
from flexnet.nn.dropout import Dropout
from flexnet.nn.layers import ReLU
from flexnet.nn.normalization import BatchNorm1d, LayerNorm

# The matrices here are tiny: extra threads only contend for the cores.
torch.set_num_threads(1)

#: Worst relative error allowed between flexnet and torch, per dtype.
RTOL = {"float32": 1e-5, "float64": 1e-10}

ACTIVATIONS = {
    "relu": ReLU,
    "leaky_relu": lambda: LeakyReLU(0.2),
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "gelu": GELU,
    "gelu_tanh": lambda: GELU(approximate="tanh"),
    "softmax": Softmax,
}
NORMS = {"none": None, "batchnorm": BatchNorm1d, "layernorm": LayerNorm}


def rel_err(a, b) -> float:
    """Largest difference, relative to the largest entry of the reference ``b``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def random_net(seed, activation="relu", norm="none", dtype="float64", dropout=None) -> Sequential:
    """Linear -> [norm] -> activation -> [Dropout] blocks of random depth and width.

    Norm parameters and running statistics are randomised, so no layer is
    tested at its trivial initial values.
    """
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(1, 4))
    widths = [int(w) for w in rng.integers(3, 9, size=depth + 1)] + [int(rng.integers(2, 5))]
    layers = []
    for i in range(depth):
        layers.append(Linear(widths[i], widths[i + 1], dtype=dtype, seed=rng))
        if NORMS[norm] is not None:
            layers.append(NORMS[norm](widths[i + 1], dtype=dtype))
        layers.append(ACTIVATIONS[activation]())
        if dropout is not None:
            layers.append(Dropout(dropout))
    layers.append(Linear(widths[-2], widths[-1], dtype=dtype, seed=rng))
    for layer in layers:
        for name in ("b", "gamma", "beta"):
            if hasattr(layer, name):
                arr = getattr(layer, name)
                arr[...] = rng.normal(1.0 if name == "gamma" else 0.0, 0.3, arr.shape)
        if isinstance(layer, BatchNorm1d):
            layer.running_mean[...] = rng.normal(0, 0.5, layer.running_mean.shape)
            layer.running_var[...] = rng.uniform(0.5, 2.0, layer.running_var.shape)
    return Sequential(layers, dtype=dtype, seed=seed)


def data(net, n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1.5, (n, net.in_features)).astype(net.dtype)
    n_out = [layer for layer in net.layers if isinstance(layer, Linear)][-1].out_features
    y = rng.integers(0, n_out, n)
    return x, y


def torch_grads(net, module) -> dict:
    """The gradient of every torch parameter, in flexnet's names and layout."""
    state = dict(module.named_parameters())
    out = {}
    for flex_name, torch_name in torch_names(net).items():
        if torch_name in state:
            g = state[torch_name].grad.numpy()
            out[flex_name] = g.T if g.ndim == 2 else g.reshape(1, -1)
    return out


# -- forward, loss and every gradient against autograd --------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_forward_loss_and_gradients_equal_autograd(activation, norm, training, dtype):
    seed = sorted(ACTIVATIONS).index(activation) * 10 + list(NORMS).index(norm)
    # Dropout is in every architecture: as the identity in inference, with
    # p=0 in training (its masks are random in both libraries).
    net = random_net(seed, activation, norm, dtype, dropout=0.0 if training else 0.4)
    module = to_torch(net).train(training)
    x, y = data(net, seed=seed)

    z = net.forward(x, training=training)
    loss = net.loss_fn.forward(z, y)
    dx = net.backward(input_grad=True)

    xt = torch.tensor(x, requires_grad=True)
    zt = module(xt)
    loss_t = torch_loss(net.loss_fn, dtype)(zt, torch.tensor(y))
    loss_t.backward()

    tol = RTOL[dtype]
    assert z.dtype == np.dtype(dtype) and dx.dtype == np.dtype(dtype)
    assert rel_err(z, zt.detach().numpy()) <= tol
    assert abs(loss - loss_t.item()) <= tol * abs(loss_t.item())
    assert rel_err(dx, xt.grad.numpy()) <= tol
    grads = torch_grads(net, module)
    assert set(grads) == set(net.gradients())
    following = {a.name: b for a, b in zip(net.layers, net.layers[1:])}
    for name, g in net.gradients().items():
        assert g.dtype == np.dtype(dtype), name
        layer = name.rsplit(".", 1)[0]
        if training and name.endswith(".b") and isinstance(following.get(layer), BatchNorm1d):
            # A bias followed by training-mode batch norm has a true gradient
            # of exactly 0 (the batch mean removes it); both libraries return
            # rounding noise there, judged next to the layer's dW instead.
            scale = max(np.abs(v).max() for k, v in grads.items() if k.rsplit(".", 1)[0] == layer)
            assert np.abs(g - grads[name]).max() <= tol * scale, name
        else:
            assert rel_err(g, grads[name]) <= tol, name
    # Batch norm's running statistics moved the same way (training only).
    state = module.state_dict()
    for name, buf in net.named_buffers():
        assert rel_err(buf, state[torch_names(net)[name]].numpy().reshape(buf.shape)) <= tol, name


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(LAYER_FACTORIES))
def test_every_registered_layer_alone_equals_its_torch_module(case, dtype):
    layer = LAYER_FACTORIES[case](5, dtype, 0)
    # Dropout's masks are random in both libraries: compare it as the identity.
    training = case in LAYER_TRAINING and not isinstance(layer, Dropout)
    net = Sequential([layer], dtype=dtype)
    module = to_torch(net).train(training)
    x = np.random.default_rng(1).normal(0, 2, (8, 5)).astype(dtype)
    out = net.forward(x, training=training)
    r = np.random.default_rng(2).normal(size=out.shape).astype(dtype)  # L = sum(out * r)
    dx = net.backward(r, input_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out_t = module(xt)
    (out_t * torch.tensor(r)).sum().backward()
    assert rel_err(out, out_t.detach().numpy()) <= RTOL[dtype]
    assert rel_err(dx, xt.grad.numpy()) <= RTOL[dtype]
    grads = torch_grads(net, module)
    for name, g in net.gradients().items():
        assert rel_err(g, grads[name]) <= RTOL[dtype], name


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(LOSS_FACTORIES))
def test_every_registered_loss_and_its_gradients_equal_torch(case, dtype):
    rng = np.random.default_rng(len(case))
    loss_fn, n_out, y = LOSS_FACTORIES[case](9, rng)
    net = Sequential([Linear(5, 6, dtype=dtype, seed=rng), GELU(), Linear(6, n_out, dtype=dtype, seed=rng)],
                     loss_fn, dtype=dtype)
    x = rng.normal(size=(9, 5)).astype(dtype)
    module = to_torch(net)
    loss = net.loss(x, y)
    net.backward()
    z_t = module(torch.tensor(x))
    if y.dtype.kind in "iu" and isinstance(loss_fn, flexnet.SoftmaxCrossEntropy):
        y_t = torch.tensor(y)  # class ids
    else:
        y_t = torch.tensor(np.asarray(y, dtype=dtype).reshape(z_t.shape))
    loss_t = torch_loss(net.loss_fn, dtype)(z_t, y_t)
    loss_t.backward()
    assert abs(loss - loss_t.item()) <= RTOL[dtype] * abs(loss_t.item())
    grads = torch_grads(net, module)
    for name, g in net.gradients().items():
        assert rel_err(g, grads[name]) <= RTOL[dtype], name
    # ... and the torch loss maps back to the same flexnet loss.
    back = from_torch(module, torch_loss(net.loss_fn, dtype)).loss_fn
    assert type(back) is type(net.loss_fn)
    assert repr(back.config()) == repr(net.loss_fn.config())


def test_from_torch_refuses_losses_flexnet_lacks():
    seq = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="reduction='sum'"):
        from_torch(seq, torch.nn.MSELoss(reduction="sum"))
    with pytest.raises(ValueError, match="NLLLoss has no flexnet equivalent"):
        from_torch(seq, torch.nn.NLLLoss())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_torch_keeps_dtype_and_returns_eval_mode(dtype):
    module = to_torch(random_net(1, "tanh", "batchnorm", dtype, dropout=0.5))
    assert not module.training
    assert {p.dtype for p in module.state_dict().values() if p.is_floating_point()} == {
        getattr(torch, dtype)}


# -- round trips and refusals ----------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("norm", list(NORMS))
def test_round_trip_gives_identical_weights(norm, dtype):
    for activation in ACTIVATIONS:
        net = random_net(7, activation, norm, dtype, dropout=0.25)
        back = from_torch(to_torch(net))
        assert back.dtype == net.dtype
        assert [repr(a) for a in back.layers] == [repr(a) for a in net.layers]
        assert [a.config() for a in back.layers] == [a.config() for a in net.layers]
        for (n1, p1, _), (n2, p2, _) in zip(net.named_parameters(), back.named_parameters()):
            assert n1 == n2 and p1.dtype == p2.dtype and np.array_equal(p1, p2), n1
        for (n1, b1), (n2, b2) in zip(net.named_buffers(), back.named_buffers()):
            assert n1 == n2 and b1.dtype == b2.dtype and np.array_equal(b1, b2), n1


def test_from_torch_reproduces_a_torch_model():
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.GELU(), torch.nn.Dropout(0.3),
        torch.nn.Linear(8, 5), torch.nn.LayerNorm(5), torch.nn.LeakyReLU(0.05),
        torch.nn.Linear(5, 3), torch.nn.Softmax(dim=1),
    ).double()
    module.train()
    for _ in range(3):  # move the running statistics away from 0 and 1
        module(torch.randn(16, 6, dtype=torch.float64) * 2 + 1)
    module.eval()
    net = from_torch(module)
    assert net.dtype == np.float64
    x = np.random.default_rng(0).normal(size=(10, 6))
    assert rel_err(net.forward(x), module(torch.tensor(x)).detach().numpy()) <= 1e-12


@pytest.mark.parametrize("module, message", [
    (torch.nn.Conv1d(1, 1, 1), r"module \[1\] \(Conv1d\) has no flexnet equivalent"),
    (torch.nn.BatchNorm1d(4, track_running_stats=False), r"module \[1\]: BatchNorm1d with track_running"),
    (torch.nn.BatchNorm1d(4, bias=False), r"module \[1\]: BatchNorm1d with bias=False"),
    (torch.nn.LayerNorm((2, 2)), r"module \[1\]: LayerNorm with normalized_shape=\(2, 2\)"),
    (torch.nn.Softmax(dim=0), r"module \[1\]: Softmax with dim=0"),
    (torch.nn.Sequential(torch.nn.ReLU()), r"module \[1\] \(Sequential\)"),
    (torch.nn.ELU(), r"module \[1\] \(ELU\)"),
])
def test_from_torch_refuses_unsupported_modules_by_index_and_type(module, message):
    with pytest.raises(ValueError, match=message):
        from_torch(torch.nn.Sequential(torch.nn.Linear(4, 4), module))


def test_batchnorm_cumulative_average_matches_torch_over_several_batches():
    # momentum=None: the t-th training batch weighs 1/t in the running statistics.
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4, momentum=None)).double()
    net = from_torch(module)
    assert net.layers[1].momentum is None
    module.train()
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.normal(2, 3, size=(7, 4))
        net.forward(x, training=True)
        module(torch.tensor(x))
    bn, bn_t = net.layers[1], module[1]
    assert int(bn.num_batches_tracked) == int(bn_t.num_batches_tracked) == 3
    assert rel_err(bn.running_mean, bn_t.running_mean.numpy().reshape(1, 4)) <= 1e-12
    assert rel_err(bn.running_var, bn_t.running_var.numpy().reshape(1, 4)) <= 1e-12
    back = to_torch(net)
    assert int(back[1].num_batches_tracked) == 3 and back[1].momentum is None


def test_from_torch_refuses_a_lookalike_class():
    class Linear(torch.nn.Module):  # same name, not torch's
        pass

    with pytest.raises(ValueError, match=r"module \[0\] \(Linear\)"):
        from_torch(torch.nn.Sequential(Linear()))

    class Scaled(torch.nn.Linear):  # a subclass may change what forward computes
        __name__ = "Linear"

    Scaled.__name__ = "Linear"
    with pytest.raises(ValueError, match=r"module \[0\] \(Linear\)"):
        from_torch(torch.nn.Sequential(Scaled(2, 2)))
    from torch.ao.nn.qat import Linear as FakeQuantLinear  # torch's own namesake

    assert FakeQuantLinear.__name__ == "Linear"
    with pytest.raises(ValueError, match=r"module \[0\] \(Linear\)"):
        from_torch(torch.nn.Sequential(FakeQuantLinear(2, 2, qconfig=torch.ao.quantization.default_qat_qconfig)))


def test_from_torch_needs_a_sequential():
    with pytest.raises(TypeError, match="wrap a lone layer"):
        from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="expected a flexnet Sequential"):
        to_torch(torch.nn.Linear(2, 2))


def test_every_bridge_entry_names_real_classes():
    for pair in LAYERS:
        assert isinstance(flexnet_class(pair.flexnet), type), pair.flexnet
        assert issubclass(getattr(torch.nn, pair.torch), torch.nn.Module), pair.torch


# -- whole training runs with every optimizer and schedule ------------------------

OPTIMIZERS = [
    ("SGD", "SGD", dict(lr=0.1)),
    ("SGD", "SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3)),
    ("SGD", "SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("Adam", "Adam", dict(lr=0.01)),
    ("Adam", "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2, amsgrad=True)),
    ("AdamW", "AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", "AdamW", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", "RMSprop", dict(lr=0.01)),
    ("RMSprop", "RMSprop", dict(lr=0.005, alpha=0.9, momentum=0.5, centered=True, weight_decay=1e-3)),
    ("Adagrad", "Adagrad", dict(lr=0.05)),
    ("Adagrad", "Adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=1e-3)),
]


def _cosine_warmup_lambda(total, warmup, base_lr, min_lr):
    """Linear warm-up from base_lr / (warmup + 1), then cosine down to min_lr."""
    import math

    def factor(epoch):
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        m = min_lr / base_lr
        progress = min(epoch - warmup, total - warmup) / (total - warmup)
        return m + (1 - m) * (1 + math.cos(math.pi * progress)) / 2

    return factor


def _schedules(opt_f, opt_t, kind):
    """(flexnet scheduler, torch scheduler) for one kind of schedule."""
    from flexnet import optim

    base = opt_t.param_groups[0]["lr"]
    if kind == "step":
        return optim.StepLR(opt_f, step_size=4, gamma=0.5), torch.optim.lr_scheduler.StepLR(opt_t, 4, 0.5)
    if kind == "exponential":
        return optim.ExponentialLR(opt_f, gamma=0.9), torch.optim.lr_scheduler.ExponentialLR(opt_t, 0.9)
    if kind == "cosine":
        return (optim.CosineWarmup(opt_f, total_epochs=20, warmup_epochs=3, min_lr=base / 10),
                torch.optim.lr_scheduler.LambdaLR(opt_t, _cosine_warmup_lambda(20, 3, base, base / 10)))
    if kind == "plateau":
        return (optim.ReduceLROnPlateau(opt_f, factor=0.5, patience=1, threshold=0.05),
                torch.optim.lr_scheduler.ReduceLROnPlateau(opt_t, factor=0.5, patience=1, threshold=0.05))
    return None, None


def run_both(net, opt_f, opt_t, kind=None, steps=20, batch=16, seed=0):
    """Train flexnet and its torch copy side by side; returns both loss curves."""
    module = to_torch(net).train()
    opt_t = opt_t(module.parameters())
    sched_f, sched_t = _schedules(opt_f, opt_t, kind) if kind else (None, None)
    crit = torch_loss(net.loss_fn, net.dtype)
    x_all, y_all = data(net, n=steps * batch, seed=seed)
    losses_f, losses_t, lrs_f, lrs_t = [], [], [], []
    for step in range(steps):
        x, y = x_all[step * batch:(step + 1) * batch], y_all[step * batch:(step + 1) * batch]
        loss = net.loss_fn.forward(net.forward(x, training=True), y)
        net.backward()
        opt_f.step(net)
        opt_t.zero_grad()
        loss_t = crit(module(torch.tensor(x)), torch.tensor(y))
        loss_t.backward()
        opt_t.step()
        losses_f.append(loss)
        losses_t.append(loss_t.item())
        if kind == "plateau":
            sched_f.step(loss)
            sched_t.step(loss_t.item())
        elif kind:
            sched_f.step()
            sched_t.step()
        lrs_f.append(opt_f.lr)
        lrs_t.append(opt_t.param_groups[0]["lr"])
    return module, losses_f, losses_t, lrs_f, lrs_t


def _training_net(dtype, seed=3):
    # Batch norm after the activation: a bias straight before training-mode
    # batch norm has a true gradient of 0, and Adam would blow the rounding
    # noise both libraries leave there up into full-size steps.
    rng = np.random.default_rng(seed)
    layers = [Linear(6, 10, dtype=dtype, seed=rng), Tanh(), BatchNorm1d(10, dtype=dtype),
              Linear(10, 8, dtype=dtype, seed=rng), LayerNorm(8, dtype=dtype), GELU(),
              Linear(8, 3, dtype=dtype, seed=rng)]
    return Sequential(layers, dtype=dtype)


def assert_same_state(net, module, tol):
    state = module.state_dict()
    arrays = {**net.parameters(), **dict(net.named_buffers())}
    for name, torch_name in torch_names(net).items():
        arr = arrays[name]
        t = state[torch_name].numpy()
        t = t.T if t.ndim == 2 else t.reshape(arr.shape)
        assert rel_err(arr, t) <= tol, name


@pytest.mark.parametrize("name, torch_name, kwargs", OPTIMIZERS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(OPTIMIZERS)])
def test_twenty_steps_of_each_optimizer_equal_torch_optim(name, torch_name, kwargs):
    from flexnet import optim

    net = _training_net("float64")
    module, lf, lt, _, _ = run_both(
        net, getattr(optim, name)(**kwargs), lambda p: getattr(torch.optim, torch_name)(p, **kwargs))
    assert lf[-1] < lf[0]  # it did learn something
    np.testing.assert_allclose(lf, lt, rtol=1e-10)
    assert_same_state(net, module, 1e-10)


@pytest.mark.parametrize("kind", ["step", "exponential", "cosine", "plateau"])
@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_twenty_steps_with_each_schedule_equal_torch(kind, name):
    from flexnet import optim

    kwargs = {"lr": 0.05, "momentum": 0.9} if name == "SGD" else {"lr": 0.02}
    net = _training_net("float64", seed=4)
    module, lf, lt, lrf, lrt = run_both(
        net, getattr(optim, name)(**kwargs), lambda p: getattr(torch.optim, name)(p, **kwargs), kind)
    np.testing.assert_allclose(lrf, lrt, rtol=1e-12)
    assert len(set(lrf)) > 1  # the schedule did change the learning rate
    np.testing.assert_allclose(lf, lt, rtol=1e-10)
    assert_same_state(net, module, 1e-10)


@pytest.mark.parametrize("name, torch_name, kwargs", OPTIMIZERS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(OPTIMIZERS)])
def test_float32_training_runs_stay_within_float32_tolerance(name, torch_name, kwargs):
    from flexnet import optim

    net = _training_net("float32")
    module, lf, lt, _, _ = run_both(
        net, getattr(optim, name)(**kwargs), lambda p: getattr(torch.optim, torch_name)(p, **kwargs))
    np.testing.assert_allclose(lf, lt, rtol=1e-5)
    assert_same_state(net, module, 1e-5)


@pytest.mark.parametrize("kind", ["step", "exponential", "cosine", "plateau"])
def test_float32_runs_with_each_schedule_stay_within_float32_tolerance(kind):
    from flexnet import optim

    net = _training_net("float32", seed=4)
    module, lf, lt, lrf, lrt = run_both(
        net, optim.SGD(lr=0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), kind)
    np.testing.assert_allclose(lrf, lrt, rtol=1e-6)
    np.testing.assert_allclose(lf, lt, rtol=1e-5)
    assert_same_state(net, module, 1e-5)


# -- files torch.load reads ------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_export_file_loads_with_weights_only_and_reproduces_outputs(tmp_path, dtype):
    net = random_net(5, "gelu", "batchnorm", dtype, dropout=0.1)
    net.metadata = {"class_names": ["a", "b", "c", "d"], "input_shape": [net.in_features]}
    path = tmp_path / "model.pt"
    save_torch(net, path)
    d = torch.load(path, weights_only=True)  # plain data: no pickled classes
    assert d["metadata"] == net.metadata
    # The recipe from the docs, plain PyTorch only:
    m = torch.nn.Sequential(*[getattr(torch.nn, l["type"])(**l["kwargs"]) for l in d["layers"]])
    m.to(getattr(torch, d["dtype"])).load_state_dict(d["state_dict"])
    x = np.random.default_rng(0).normal(size=(7, net.in_features)).astype(dtype)
    expected = net.forward(x)
    for module in (m.eval(), load_torch(path)):
        assert rel_err(module(torch.tensor(x)).detach().numpy(), expected) <= RTOL[dtype]


def test_load_torch_refuses_other_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a flexnet PyTorch export"):
        load_torch(path)


# -- the core needs none of the optional packages --------------------------------


def test_import_flexnet_imports_no_optional_package():
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'onnx', 'onnxruntime', 'sklearn', 'matplotlib',\n"
        "                                  'scipy', 'joblib', 'dask', 'distributed', 'threadpoolctl',\n"
        "                                  'tqdm', 'PIL', 'pandas'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import flexnet, flexnet.torch_bridge, flexnet.onnx_bridge\n"
        "net = flexnet.Network([3, 4, 2], seed=0)\n"
        "print(net.predict([[1.0, 2.0, 3.0]])[0] in (0, 1))\n"
        "try:\n"
        "    flexnet.to_torch(net)\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "True" and lines[1].startswith("the PyTorch bridge needs torch")
    assert lines[1].endswith('install it with: pip install "flexnet[torch]"')
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, flexnet; print(sorted(m for m in ('torch', 'onnx', "
         "'onnxruntime', 'sklearn', 'scipy', 'joblib', 'dask', 'distributed', 'threadpoolctl', "
         "'matplotlib', 'tqdm', 'PIL', 'pandas') if m in sys.modules))"],
        capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_cli_export_torch_writes_a_file_torch_load_reads(tmp_path, capsys):
    from flexnet.cli import main

    net = flexnet.Network([5, 7, 2], layernorm=True, activation="tanh", dtype="float64", seed=1)
    flexnet.save(net, tmp_path / "model.npz")
    out = tmp_path / "exported.pt"
    assert main(["export", str(tmp_path / "model.npz"), "--format", "torch", "--out", str(out)]) == 0
    module = load_torch(out)
    x = np.random.default_rng(0).normal(size=(6, 5))
    assert rel_err(module(torch.tensor(x)).detach().numpy(), net.forward(x)) <= 1e-12
    assert main(["export", str(tmp_path / "model.npz"), "--format", "torch", "--probabilities"]) == 2
    assert "--format onnx only" in capsys.readouterr().err


# -- Linear(bias=False), the batch count, half-precision modules ----------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_without_bias_crosses_both_ways(dtype, tmp_path):
    net = Sequential([Linear(4, 6, dtype=dtype, seed=0, bias=False), BatchNorm1d(6, dtype=dtype), GELU(),
                      Linear(6, 3, dtype=dtype, seed=1, bias=False)], dtype=dtype)
    module = to_torch(net)
    assert module[0].bias is None and module[3].bias is None
    assert "0.bias" not in module.state_dict() and "layers.0.b" not in torch_names(net)
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(dtype)
    assert rel_err(module(torch.tensor(x)).detach().numpy(), net.forward(x)) <= RTOL[dtype]
    back = from_torch(module)
    assert [layer.config() for layer in back.layers] == [layer.config() for layer in net.layers]
    np.testing.assert_array_equal(back.forward(x), net.forward(x))
    save_torch(net, tmp_path / "m.pt")
    loaded = load_torch(tmp_path / "m.pt")
    assert loaded[0].bias is None
    np.testing.assert_array_equal(loaded(torch.tensor(x)).detach().numpy(), module(torch.tensor(x)).detach().numpy())
    # and a torch model built the usual way
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 5, bias=False), torch.nn.BatchNorm1d(5), torch.nn.ReLU(),
                                 torch.nn.Linear(5, 2)).to(getattr(torch, dtype)).eval()
    ours = from_torch(theirs)
    assert ours.layers[0].b is None and ours.layers[3].b is not None
    assert rel_err(ours.forward(x), theirs(torch.tensor(x)).detach().numpy()) <= RTOL[dtype]


def test_linear_without_bias_gradients_equal_autograd():
    net = Sequential([Linear(5, 4, dtype="float64", seed=0, bias=False), Tanh(),
                      Linear(4, 3, dtype="float64", seed=1, bias=False)], dtype="float64")
    module = to_torch(net).train()
    x, y = data(net)
    net.loss_fn.forward(net.forward(x, training=True), y)
    net.backward()
    torch_loss(net.loss_fn, net.dtype)(module(torch.tensor(x)), torch.tensor(y)).backward()
    grads = torch_grads(net, module)
    assert set(grads) == {"layers.0.W", "layers.2.W"}
    for name, g in net.gradients().items():
        assert rel_err(g, grads[name]) <= 1e-12, name


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_a_network_trained_for_ten_batches_exports_a_count_of_ten(momentum, tmp_path):
    rng = np.random.default_rng(0)
    net = Sequential([Linear(4, 6, seed=0), BatchNorm1d(6, momentum=momentum), ReLU(), Linear(6, 3, seed=1),
                      BatchNorm1d(3, momentum=momentum)])
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    flexnet.fit(net, x, y, epochs=2, batch_size=8, seed=0)  # 5 batches an epoch
    module = to_torch(net)
    assert [int(module[i].num_batches_tracked) for i in (1, 4)] == [10, 10]
    assert module[1].num_batches_tracked.dtype == torch.int64
    save_torch(net, tmp_path / "m.pt")
    assert int(torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]["1.num_batches_tracked"]) == 10
    # torch counts on from there, and flexnet takes its count back
    module.train()
    for _ in range(3):
        module(torch.tensor(x[:8]))
    back = from_torch(module)
    assert back.layers[1].num_batches_tracked == 13 and back.layers[4].num_batches_tracked == 13


@pytest.mark.parametrize("momentum", [0.1, None])
def test_a_torch_count_is_imported_and_trains_on_as_in_torch(momentum):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4, momentum=momentum)).double()
    module.train()
    for _ in range(6):
        module(torch.randn(5, 4, dtype=torch.float64))
    assert int(module[1].num_batches_tracked) == 6
    net = from_torch(module)
    assert net.layers[1].num_batches_tracked == 6
    x = np.random.default_rng(1).normal(size=(5, 4))
    net.forward(x, training=True)
    module(torch.tensor(x))
    assert net.layers[1].num_batches_tracked == 7 == int(module[1].num_batches_tracked)
    np.testing.assert_allclose(net.layers[1].running_mean.ravel(), module[1].running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(net.layers[1].running_var.ravel(), module[1].running_var.numpy(), rtol=1e-12)


def test_a_bfloat16_module_is_refused_with_its_index_and_a_hint():
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).bfloat16()
    with pytest.raises(ValueError, match=r"module \[0\] \(Linear\) holds weight in torch\.bfloat16.*\.float\(\)"):
        from_torch(module)
    mixed = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4).bfloat16())
    with pytest.raises(ValueError, match=r"module \[1\] \(BatchNorm1d\).*bfloat16"):
        from_torch(mixed)


def test_a_float16_module_is_converted_with_a_warning():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).half()
    with pytest.warns(UserWarning, match=r"modules \[0\], \[2\] hold float16 weights; they are converted to float32"):
        net = from_torch(module)
    assert net.dtype == np.float32
    np.testing.assert_array_equal(net.layers[0].W, module[0].weight.detach().float().numpy().T)  # exactly
    with pytest.warns(UserWarning, match="converted to float64"):
        assert from_torch(module, dtype="float64").dtype == np.float64


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int32])
def test_other_module_dtypes_are_refused(dtype):
    import warnings

    module = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about complex modules
        module[0].weight = torch.nn.Parameter(module[0].weight.detach().to(dtype), requires_grad=False)
    with pytest.raises(ValueError, match=rf"module \[0\] \(Linear\) holds weight in {dtype}; flexnet takes float32"):
        from_torch(module)


# -- float32 Adam: exact with Linear(bias=False) before batch norm ----------------------


def test_float32_adam_follows_torch_optim_on_a_network_without_redundant_biases():
    """Network(batchnorm=True, bias=False): every parameter has a true gradient, and 20 steps of
    float32 Adam stay within float32 rounding of torch.optim (with a bias before each
    BatchNorm1d, that bias's true gradient is 0 and Adam scales its rounding noise up to
    full steps in both libraries; benchmarks/batchnorm_bias.py shows both)."""
    from flexnet.optim import Adam

    rng = np.random.default_rng(1)
    y = np.arange(640) % 4
    x = (rng.normal(0, 2, (4, 20))[y] + rng.normal(size=(640, 20))).astype(np.float32)
    net = flexnet.Network([20, 32, 16, 4], batchnorm=True, bias=False, seed=0)
    module = to_torch(net).train()
    opt_f, opt_t = Adam(lr=0.01), torch.optim.Adam(module.parameters(), lr=0.01)
    crit = torch_loss(net.loss_fn)
    for step in range(20):
        xb, yb = x[step * 32:(step + 1) * 32], y[step * 32:(step + 1) * 32]
        net.loss_fn.forward(net.forward(xb, training=True), yb)
        net.backward()
        opt_f.step(net)
        opt_t.zero_grad()
        crit(module(torch.tensor(xb)), torch.tensor(yb)).backward()
        opt_t.step()
    assert_same_state(net, module, 1e-5)
    state = module.state_dict()
    worst = max(float(np.abs(p - (state[t].numpy().T if p.ndim == 2 else state[t].numpy().reshape(p.shape))).max())
                for name, t in torch_names(net).items() if name in net.parameters()
                for p in [net.parameters()[name]])
    assert worst < 1e-5, worst


def test_the_batchnorm_bias_benchmark_shows_the_drift_and_its_cure(capsys):
    import os

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    try:
        import batchnorm_bias
    finally:
        sys.path.pop(0)
    batchnorm_bias.main(["--steps", "8"])
    lines = capsys.readouterr().out.splitlines()
    rows = {line[:40].strip(): [float(v) for v in line[40:].split()] for line in lines[2:]}
    with_bias, without = rows["with the redundant bias"], rows["Linear(bias=False) before BatchNorm1d"]
    assert with_bias[0] > 1e-3 and with_bias[1] < 1e-5  # the biases drift, the weights do not
    assert np.isnan(without[0]) and without[2] < 1e-5


def test_a_module_with_a_float64_layer_is_converted_to_float64_whatever_comes_first():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2).double())
    net = from_torch(module)
    assert net.dtype == np.float64  # nothing of the float64 layer is rounded to float32
    np.testing.assert_array_equal(net.layers[2].W, module[2].weight.detach().numpy().T)


def test_a_negative_batch_count_is_refused_with_the_module_index():
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4, momentum=None))
    module[1].num_batches_tracked.fill_(-1)
    with pytest.raises(ValueError, match=r"module \[1\] \(BatchNorm1d\): num_batches_tracked is -1, expected a count"):
        from_torch(module)
