"""Optimizers and learning-rate schedules: hand-worked steps, PyTorch parity,
exact save/restore, and every bad hyper-parameter."""

import json
import math

import numpy as np
import pytest

import flexnet
from flexnet import Linear, Network
from flexnet.optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    CosineWarmup,
    ExponentialLR,
    ReduceLROnPlateau,
    RMSprop,
    StepLR,
    make_optimizer,
    make_scheduler,
)


class One:
    """The smallest model: one named parameter and its gradient (float64)."""

    def __init__(self, p, g=None):
        self.p = np.array(p, dtype=np.float64)
        self.g = None if g is None else np.array(g, dtype=np.float64)

    def named_parameters(self):
        yield "w", self.p, self.g

    def steps(self, opt, grads):
        for g in grads:
            self.g = np.array(g, dtype=np.float64)
            opt.step(self)
        return self.p


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


# -- one or two steps worked out by hand ----------------------------------------


def test_sgd_by_hand():
    # p -= lr * g: 1 - 0.1*0.5 = 0.95, -2 - 0.1*0.25 = -2.025
    close(One([1.0, -2.0]).steps(SGD(0.1), [[0.5, 0.25]]), [0.95, -2.025])


def test_sgd_momentum_by_hand():
    # step 1: b = g = 0.5 (no dampening on the first step); p = 1 - 0.1*0.5 = 0.95
    # step 2: b = 0.9*0.5 + 0.5 = 0.95;                      p = 0.95 - 0.095 = 0.855
    close(One([1.0]).steps(SGD(0.1, momentum=0.9), [[0.5], [0.5]]), [0.855])
    # dampening 0.5, step 2: b = 0.9*0.5 + 0.5*0.5 = 0.7; p = 0.95 - 0.07 = 0.88
    close(One([1.0]).steps(SGD(0.1, momentum=0.9, dampening=0.5), [[0.5], [0.5]]), [0.88])


def test_sgd_nesterov_by_hand():
    # step 1: b = 0.5, d = g + 0.9*b = 0.95,          p = 1 - 0.095 = 0.905
    # step 2: b = 0.9*0.5 + 0.5 = 0.95, d = 0.5 + 0.855 = 1.355, p = 0.905 - 0.1355 = 0.7695
    close(One([1.0]).steps(SGD(0.1, momentum=0.9, nesterov=True), [[0.5], [0.5]]), [0.7695])


def test_weight_decay_and_l1_by_hand():
    # L2: g' = g + 0.5*p = 1 + 1 = 2; p = 2 - 0.1*2 = 1.8
    close(One([2.0]).steps(SGD(0.1, weight_decay=0.5), [[1.0]]), [1.8])
    # L1: g' = g + 0.5*sign(p) = [0.5, -0.5, 0]; p = [2 - 0.05, -2 + 0.05, 0]
    close(One([2.0, -2.0, 0.0]).steps(SGD(0.1, l1=0.5), [[0, 0, 0]]), [1.95, -1.95, 0.0])


def test_adam_by_hand():
    # eps=0 keeps the arithmetic exact. Step 1: m = 0.1*g, v = 0.001*g*g, and
    # the bias corrections divide by 0.1 and 0.001: p -= 0.1 * g/|g| = 0.1*sign(g)
    p = One([1.0, 1.0]).steps(Adam(0.1, eps=0.0), [[0.5, -2.0]])
    close(p, [0.9, 1.1])
    # Step 2, second entry, g = -2 again: m = 0.9*(-0.2) + 0.1*(-2) = -0.38, m_hat = -0.38/0.19 = -2
    # v = 0.999*0.004 + 0.001*4 = 0.007996, v_hat = 0.007996/0.001999 = 4: p = 1.1 + 0.1*2/2 = 1.2
    # first entry, g = -0.5: m = 0.045 - 0.05 = -0.005, m_hat = -1/38; v = 0.00049975,
    # v_hat = 0.00049975/0.001999 = 0.25, sqrt = 0.5: p = 0.9 + 0.1*(1/38)/0.5 = 0.9 + 1/190
    close(One([1.0, 1.0]).steps(Adam(0.1, eps=0.0), [[0.5, -2.0], [-0.5, -2.0]]),
          [0.9 + 1 / 190, 1.2])


def test_adam_amsgrad_by_hand():
    # betas (0.5, 0.5), eps 0, lr 0.1. Step 1, g = 2: m = 1, v = 2, m_hat = 2, v_hat = 4: p -= 0.1
    # Step 2, g = 0: m = 0.5, v = 1, both corrections 0.75; m_hat = 2/3.
    #   plain:   denominator sqrt(1/0.75):  p -= 0.1 * (2/3) * sqrt(0.75)            = 0.1/sqrt(3)
    #   amsgrad: uses max(v) = 2:           p -= 0.1 * (2/3) * sqrt(0.75) / sqrt(2)  = 0.1/sqrt(6)
    grads = [[2.0], [0.0]]
    close(One([1.0]).steps(Adam(0.1, betas=(0.5, 0.5), eps=0.0), grads), [0.9 - 0.1 / math.sqrt(3)])
    close(One([1.0]).steps(Adam(0.1, betas=(0.5, 0.5), eps=0.0, amsgrad=True), grads),
          [0.9 - 0.1 / math.sqrt(6)])


def test_adamw_decouples_weight_decay_by_hand():
    # AdamW: p *= 1 - 0.1*0.5 -> 1.9, then the first Adam step moves 0.1*sign(g): 1.8
    close(One([2.0]).steps(AdamW(0.1, eps=0.0, weight_decay=0.5), [[0.5]]), [1.8])
    # Adam couples it: g' = 0.5 + 0.5*2 = 1.5, and the first step still moves 0.1: 1.9
    close(One([2.0]).steps(Adam(0.1, eps=0.0, weight_decay=0.5), [[0.5]]), [1.9])


def test_rmsprop_by_hand():
    # alpha 0.5, eps 0, g = 2: s = 0.5*4 = 2, p -= 0.1 * 2/sqrt(2) = 0.1*sqrt(2)
    close(One([1.0]).steps(RMSprop(0.1, alpha=0.5, eps=0.0), [[2.0]]), [1 - 0.1 * math.sqrt(2)])
    # centered: a = 0.5*2 = 1, s - a*a = 2 - 1 = 1: p -= 0.1 * 2/1 = 0.2
    close(One([1.0]).steps(RMSprop(0.1, alpha=0.5, eps=0.0, centered=True), [[2.0]]), [0.8])
    # momentum 0.9: step 1 b = 2/sqrt(2) = sqrt(2); step 2 s = 0.5*2 + 0.5*4 = 3,
    # b = 0.9*sqrt(2) + 2/sqrt(3); p = 1 - 0.1*sqrt(2) - 0.1*b
    b2 = 0.9 * math.sqrt(2) + 2 / math.sqrt(3)
    close(One([1.0]).steps(RMSprop(0.1, alpha=0.5, eps=0.0, momentum=0.9), [[2.0], [2.0]]),
          [1 - 0.1 * math.sqrt(2) - 0.1 * b2])


def test_adagrad_by_hand():
    # step 1, g = 3: s = 9, p -= 0.1*3/3 = 0.1; step 2, g = 4: s = 25, p -= 0.1*4/5 = 0.08
    close(One([1.0]).steps(Adagrad(0.1, eps=0.0), [[3.0], [4.0]]), [0.82])
    # lr_decay 1: step 2 uses lr 0.1/(1 + 1*1) = 0.05: p = 0.9 - 0.05*4/5 = 0.86
    close(One([1.0]).steps(Adagrad(0.1, lr_decay=1.0, eps=0.0), [[3.0], [4.0]]), [0.86])
    # initial sum 16: s = 16 + 9 = 25, p -= 0.1*3/5 = 0.06
    close(One([1.0]).steps(Adagrad(0.1, initial_accumulator_value=16.0, eps=0.0), [[3.0]]), [0.94])


def lrs_of(sched, n, metrics=None):
    """The lr after construction, then after each of n steps."""
    out = [sched.get_last_lr()]
    for i in range(n):
        out.append(sched.step() if metrics is None else sched.step(metrics[i]))
    return out


def test_step_and_exponential_lr_by_hand():
    # StepLR halves every 2 epochs: 1, 1, 0.5, 0.5, 0.25
    assert lrs_of(StepLR(SGD(1.0), step_size=2, gamma=0.5), 4) == [1, 1, 0.5, 0.5, 0.25]
    # ExponentialLR halves every epoch
    assert lrs_of(ExponentialLR(SGD(1.0), gamma=0.5), 3) == [1, 0.5, 0.25, 0.125]


def test_cosine_warmup_by_hand():
    # W = 1, T = 5, base 1. Epoch 0 warms up to (0+1)/(1+1) = 0.5; epoch 1 starts
    # the cosine at 1; then (1 + cos(pi*k/4))/2 for k = 1, 2, 3, 4; after T it stays at min_lr.
    c = math.cos(math.pi / 4)
    expected = [0.5, 1.0, (1 + c) / 2, 0.5, (1 - c) / 2, 0.0, 0.0]
    close(lrs_of(CosineWarmup(SGD(1.0), total_epochs=5, warmup_epochs=1), 6), expected)
    # min_lr 0.2: halfway is 0.2 + 0.8*0.5 = 0.6; the end is 0.2
    lrs = lrs_of(CosineWarmup(SGD(1.0), total_epochs=5, warmup_epochs=1, min_lr=0.2), 6)
    close([lrs[3], lrs[5], lrs[6]], [0.6, 0.2, 0.2])
    # no warm-up: epoch 0 runs at the full rate
    assert CosineWarmup(SGD(1.0), total_epochs=4).get_last_lr() == 1.0


def test_reduce_on_plateau_by_hand():
    # patience 1: the lr drops on the second bad epoch in a row (bad count 2 > 1).
    # metrics 1 (best), 1 (bad 1), 1 (bad 2 -> 0.5), 0.5 (best), 0.6 (bad 1), 0.6 (bad 2 -> 0.25)
    s = ReduceLROnPlateau(SGD(1.0), factor=0.5, patience=1)
    assert lrs_of(s, 6, [1, 1, 1, 0.5, 0.6, 0.6]) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    # cooldown 1: the epoch after a drop is not counted, so the next drop needs 2 more bad epochs
    s = ReduceLROnPlateau(SGD(1.0), factor=0.5, patience=1, cooldown=1)
    assert lrs_of(s, 6, [1, 1, 1, 1, 1, 1]) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    # min_lr 0.4: 1 -> 0.5 -> max(0.25, 0.4) = 0.4 -> stays
    s = ReduceLROnPlateau(SGD(1.0), factor=0.5, patience=0, min_lr=0.4)
    assert lrs_of(s, 4, [1, 1, 1, 1]) == [1, 1, 0.5, 0.4, 0.4]
    # max mode, absolute threshold 0.1: 0.55 does not beat 0.5 + 0.1, so it is bad
    s = ReduceLROnPlateau(SGD(1.0), mode="max", factor=0.5, patience=0, threshold=0.1,
                          threshold_mode="abs")
    assert lrs_of(s, 3, [0.5, 0.55, 0.7]) == [1, 1, 0.5, 0.5]
    # NaN never improves
    s = ReduceLROnPlateau(SGD(1.0), factor=0.5, patience=0)
    assert lrs_of(s, 2, [1.0, float("nan")]) == [1, 1, 0.5]


# -- PyTorch parity: 20 steps on the same network ----------------------------------

torch = pytest.importorskip("torch")

VARIANTS = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (Adam, {"lr": 0.01}),
    (Adam, {"lr": 0.01, "betas": (0.3, 0.9), "weight_decay": 0.1}),
    (Adam, {"lr": 0.01, "amsgrad": True}),
    (AdamW, {"lr": 0.01}),
    (AdamW, {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    (RMSprop, {"lr": 0.01}),
    (RMSprop, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}),
    (RMSprop, {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.01}),
    (Adagrad, {"lr": 0.1}),
    (Adagrad, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01, "initial_accumulator_value": 0.1}),
]


def variant_id(v):
    return v[0].__name__ + "".join(f"-{k}={val}" for k, val in v[1].items() if k != "lr")


def data(dtype="float64"):
    rng = np.random.default_rng(0)
    return rng.standard_normal((16, 6)).astype(dtype), rng.integers(0, 3, 16)


def torch_twin(net):
    """An equal torch.nn.Sequential: W is (in, out) here and (out, in) there."""
    mods = []
    for layer in net.layers:
        if isinstance(layer, Linear):
            m = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.W.T.copy()))
                m.bias.copy_(torch.from_numpy(layer.b[0].copy()))
            mods.append(m)
        else:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def torch_name(name):
    """layers.0.W -> 0.weight, layers.0.b -> 0.bias."""
    _, i, attr = name.split(".")
    return f"{i}.{'weight' if attr == 'W' else 'bias'}"


def as_torch_layout(name, a):
    return a.T if name.endswith(".W") else a[0]


def train_pair(opt, topt_cls, topt_kw, steps=20, sched=None, tsched_fn=None):
    X, y = data()
    net = Network([6, 5, 3], dtype="float64", seed=1)
    twin = torch_twin(net)
    topt = topt_cls(twin.parameters(), foreach=False, **topt_kw)
    sched = sched(opt) if sched else None
    tsched = tsched_fn(topt) if tsched_fn else None
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    lrs, tlrs = [], []
    for _ in range(steps):
        net.loss_fn.forward(net.forward(X, training=True), y)
        net.backward()
        opt.step(net)
        topt.zero_grad()
        torch.nn.functional.cross_entropy(twin(Xt), yt).backward()
        topt.step()
        if sched:
            lrs.append(sched.step())
            tsched.step()
            tlrs.append(topt.param_groups[0]["lr"])
    return net, twin, topt, lrs, tlrs


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_matches_torch_optim_for_20_steps(variant):
    cls, kw = variant
    opt = cls(**kw)
    net, twin, topt, _, _ = train_pair(opt, getattr(torch.optim, cls.__name__), kw)
    tparams = dict(twin.named_parameters())
    for name, p, _ in net.named_parameters():
        t = tparams[torch_name(name)]
        # worst measured difference 1.8e-15; the requirement is 1e-6
        np.testing.assert_allclose(as_torch_layout(name, p), t.detach().numpy(), rtol=0, atol=1e-12)
        # the state uses torch's names and agrees too
        for key, value in opt.state[name].items():
            theirs = topt.state[t][key]
            if key == "step":
                assert value == int(theirs.item()) == 20
            else:
                np.testing.assert_allclose(as_torch_layout(name, value), theirs.numpy(),
                                           rtol=0, atol=1e-12)


SCHEDULES = {
    "step": (lambda o: StepLR(o, step_size=3, gamma=0.5),
             lambda t: torch.optim.lr_scheduler.StepLR(t, step_size=3, gamma=0.5)),
    "exponential": (lambda o: ExponentialLR(o, gamma=0.9),
                    lambda t: torch.optim.lr_scheduler.ExponentialLR(t, gamma=0.9)),
    "cosine": (lambda o: CosineWarmup(o, total_epochs=20, warmup_epochs=4, min_lr=0.01),
               lambda t: torch.optim.lr_scheduler.LambdaLR(t, cosine_factor(0.1, 20, 4, 0.01))),
}


def cosine_factor(base, total, warmup, min_lr):
    """CosineWarmup's multiplier written out again, for torch's LambdaLR."""
    def f(e):
        if e < warmup:
            return (e + 1) / (warmup + 1)
        m = min_lr / base
        return m + (1 - m) * (1 + math.cos(math.pi * min(e - warmup, total - warmup) / (total - warmup))) / 2
    return f


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedules_match_torch_for_20_epochs(name):
    ours, theirs = SCHEDULES[name]
    kw = {"lr": 0.1, "momentum": 0.9}
    net, twin, _, lrs, tlrs = train_pair(SGD(**kw), torch.optim.SGD, kw, sched=ours, tsched_fn=theirs)
    assert lrs == tlrs  # the same float operations: equal bit for bit
    assert len(set(lrs)) > 3
    tparams = dict(twin.named_parameters())
    for pname, p, _ in net.named_parameters():
        np.testing.assert_allclose(as_torch_layout(pname, p), tparams[torch_name(pname)].detach().numpy(),
                                   rtol=0, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")
def test_cosine_warmup_equals_torch_linear_then_cosine_composition():
    W, T, base, min_lr = 4, 20, 0.1, 0.01
    ours = CosineWarmup(SGD(base), total_epochs=T, warmup_epochs=W, min_lr=min_lr)
    t = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    sch = torch.optim.lr_scheduler
    composed = sch.SequentialLR(t, [
        sch.LinearLR(t, start_factor=1 / (W + 1), end_factor=1.0, total_iters=W),
        sch.CosineAnnealingLR(t, T_max=T - W, eta_min=min_lr),
    ], milestones=[W])
    got, want = [ours.get_last_lr()], [t.param_groups[0]["lr"]]
    for _ in range(T):
        got.append(ours.step())
        composed.step()
        want.append(t.param_groups[0]["lr"])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_reduce_on_plateau_matches_torch():
    kw = dict(mode="min", factor=0.5, patience=2, threshold=0.05, cooldown=1, min_lr=0.003)
    ours = ReduceLROnPlateau(SGD(0.1), **kw)
    t = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(t, **kw)
    rng = np.random.default_rng(3)
    metrics = np.concatenate([np.linspace(1, 0.5, 5), 0.5 + 0.03 * rng.random(15)])
    got, want = [], []
    for m in metrics:
        got.append(ours.step(m))
        theirs.step(m)
        want.append(t.param_groups[0]["lr"])
    assert got == want
    assert len(set(got)) >= 3


# -- save and restore: 5 + 5 steps equal 10, bit for bit --------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_state_dict_round_trip_is_bit_identical(variant, dtype):
    cls, kw = variant
    X, y = data(dtype)

    def steps(net, opt, sched, n):
        for _ in range(n):
            net.loss_fn.forward(net.forward(X, training=True), y)
            net.backward()
            opt.step(net)
            sched.step()

    straight = Network([6, 5, 3], dtype=dtype, seed=1)
    opt = cls(**kw)
    steps(straight, opt, StepLR(opt, step_size=3, gamma=0.5), 10)

    resumed = Network([6, 5, 3], dtype=dtype, seed=1)
    opt1 = cls(**kw)
    sched1 = StepLR(opt1, step_size=3, gamma=0.5)
    steps(resumed, opt1, sched1, 5)
    saved, saved_sched = opt1.state_dict(), sched1.state_dict()
    weights = {name: p.copy() for name, p, _ in resumed.named_parameters()}
    steps(resumed, opt1, sched1, 1)  # a later step must not change what was saved
    for name, p, _ in resumed.named_parameters():
        p[...] = weights[name]
    opt2 = cls(lr=0.5)  # other hyper-parameters: the saved ones must win
    sched2 = StepLR(opt2, step_size=7)
    opt2.load_state_dict(saved)
    sched2.load_state_dict(saved_sched)
    steps(resumed, opt2, sched2, 5)

    for (name, a, _), (_, b, _) in zip(straight.named_parameters(), resumed.named_parameters()):
        assert a.dtype == np.dtype(dtype)
        assert np.array_equal(a, b), name
    assert opt2.lr == opt.lr


def test_state_dict_is_json_scalars_and_arrays():
    net = Network([6, 5, 3], dtype="float32", seed=1)
    X, y = data("float32")
    opt = Adam(amsgrad=True)
    net.loss_fn.forward(net.forward(X, training=True), y)
    net.backward()
    opt.step(net)
    sd = opt.state_dict()
    arrays = []

    def strip(obj):
        if isinstance(obj, np.ndarray):
            arrays.append(obj)
            return None
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items()}
        return obj

    json.dumps(strip(sd), allow_nan=False)  # everything else is plain JSON
    assert set(sd["state"]) == {"layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b"}
    assert set(sd["state"]["layers.0.W"]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert all(a.dtype == np.float32 for a in arrays)
    sched = ReduceLROnPlateau(opt)
    sched.step(1.0)
    json.dumps(sched.state_dict(), allow_nan=False)
    json.dumps(ReduceLROnPlateau(SGD(0.1)).state_dict(), allow_nan=False)  # no best yet


def test_schedule_state_round_trip_restores_lr_and_counters():
    opt = SGD(1.0)
    s = ReduceLROnPlateau(opt, factor=0.5, patience=1)
    for m in [1, 1]:
        s.step(m)
    saved = s.state_dict()
    opt2 = SGD(1.0)
    s2 = ReduceLROnPlateau(opt2, factor=0.5, patience=1)
    s2.load_state_dict(saved)
    assert s2.step(1) == s.step(1) == 0.5 and opt2.lr == 0.5
    c = CosineWarmup(SGD(0.1), total_epochs=10, warmup_epochs=2)
    for _ in range(4):
        c.step()
    opt3 = SGD(0.025)
    c2 = CosineWarmup(opt3, total_epochs=10, warmup_epochs=2)
    c2.load_state_dict(c.state_dict())
    assert opt3.lr == c.get_last_lr()
    assert [c2.step() for _ in range(3)] == [c.step() for _ in range(3)]


# -- the tutorial's update, dtype, in place, skipping, a lone layer -----------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_plain_sgd_is_exactly_net_update(dtype):
    X, y = data(dtype)
    a, b = Network([6, 5, 3], dtype=dtype, seed=2), Network([6, 5, 3], dtype=dtype, seed=2)
    opt = SGD(0.37)
    for _ in range(5):
        for net in (a, b):
            net.loss_fn.forward(net.forward(X, training=True), y)
            net.backward()
        a.update(0.37)
        opt.step(b)
    for (_, p, _), (_, q, _) in zip(a.named_parameters(), b.named_parameters()):
        assert p.dtype == q.dtype == np.dtype(dtype)
        assert np.array_equal(p, q)


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_float32_stays_float32_and_updates_in_place(variant):
    cls, kw = variant
    net = Network([6, 5, 3], dtype="float32", seed=1)
    refs = {name: p for name, p, _ in net.named_parameters()}
    before = {name: p.copy() for name, p in refs.items()}
    X, y = data("float32")
    opt = cls(**kw)
    for _ in range(2):
        net.loss_fn.forward(net.forward(X, training=True), y)
        net.backward()
        opt.step(net)
    for name, p, _ in net.named_parameters():
        assert p is refs[name]  # the same array, changed in place
        assert p.dtype == np.float32
        assert not np.array_equal(p, before[name])
        for key, value in opt.state[name].items():
            assert key == "step" or value.dtype == np.float32


def test_parameters_without_gradient_are_skipped():
    net = Network([6, 5, 3], dtype="float64", seed=1)
    before = [p.copy() for _, p, _ in net.named_parameters()]
    opt = Adam()
    opt.step(net)  # no backward yet: every gradient is None
    assert opt.state == {}
    assert all(np.array_equal(a, p) for a, (_, p, _) in zip(before, net.named_parameters()))


def test_step_works_on_a_lone_layer():
    layer = Linear(3, 2, dtype="float64", seed=0)
    x = np.ones((4, 3))
    layer.backward(layer.forward(x) - 1.0)
    w = layer.W.copy()
    opt = SGD(0.1, momentum=0.5)
    opt.step(layer)
    np.testing.assert_array_equal(layer.W, w - 0.1 * layer.dW)
    assert set(opt.state) == {"W", "b"}


# -- prepared updates: made once per parameter, never stale ---------------------------


def _sgd_step(net, opt, X, y):
    net.loss_fn.forward(net.forward(X, training=True), y)
    net.backward()
    opt.step(net)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("path", ["optimizer", "train_step"])
def test_a_copy_of_a_trained_net_updates_its_own_arrays(how, path):
    # Each parameter's update is prepared once, on views of its arrays; a copy
    # must prepare its own, never write into the original's weights.
    import copy
    import pickle

    X, y = data("float32")
    net, opt = Network([6, 300, 3], seed=3), SGD(0.1)  # 1,800 weights: one BLAS call each
    run = (lambda n, o: _sgd_step(n, o, X, y)) if path == "optimizer" else \
        (lambda n, o: n.train_step(X, y, 0.1))
    for _ in range(2):
        run(net, opt)
        clone_net, clone_opt = (copy.deepcopy((net, opt)) if how == "deepcopy"
                                else pickle.loads(pickle.dumps((net, opt))))
        before = {k: v.copy() for k, v in net.parameters().items()}
        run(clone_net, clone_opt)
        for k, v in net.parameters().items():
            np.testing.assert_array_equal(v, before[k], err_msg=f"the copy's step changed {k}")
        run(net, opt)
        for (k, a), b in zip(net.parameters().items(), clone_net.parameters().values()):
            assert not np.array_equal(a, before[k])
            np.testing.assert_array_equal(a, b, err_msg=k)


def test_a_replaced_parameter_array_gets_the_next_update():
    X, y = data("float64")
    net, opt = Network([6, 5, 3], dtype="float64", seed=1), SGD(0.1)
    _sgd_step(net, opt, X, y)
    layer = net.layers[0]
    old = layer.W
    layer.W = old.copy()  # as loading weights by assignment does
    net.loss_fn.forward(net.forward(X, training=True), y)
    net.backward()
    want = layer.W - 0.1 * layer.dW
    kept = old.copy()
    opt.step(net)
    np.testing.assert_allclose(layer.W, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(old, kept)  # the array no longer in the net is left alone
    for update in (lambda: net.update(0.1), lambda: layer.update(0.1)):
        layer.W = layer.W.copy()
        want = layer.W - 0.1 * layer.dW
        update()
        np.testing.assert_allclose(layer.W, want, rtol=1e-14, atol=1e-15)


def test_sgd_hyper_parameters_changed_mid_run_take_effect():
    X, y = data("float64")
    net, opt = Network([6, 5, 3], dtype="float64", seed=1), SGD(0.1)
    _sgd_step(net, opt, X, y)  # plain SGD: its fast path is prepared here
    opt.weight_decay, opt.momentum = 0.5, 0.9
    net.loss_fn.forward(net.forward(X, training=True), y)
    net.backward()
    W, dW = net.layers[0].W.copy(), net.layers[0].dW.copy()
    opt.step(net)
    g = dW + 0.5 * W  # the first momentum step: buffer = the penalised gradient
    np.testing.assert_allclose(net.layers[0].W, W - 0.1 * g, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(opt.state["layers.0.W"]["momentum_buffer"], g, rtol=1e-13)


@pytest.mark.parametrize("blas", [True, False])
def test_a_parameter_frozen_after_its_first_step_is_refused_not_written(blas, monkeypatch):
    from flexnet import ops as _blas

    if not blas:
        monkeypatch.setattr(_blas, "_kernels", lambda: {})
    X, y = data("float32")
    for update in ("optimizer", "net.update"):
        net, opt = Network([6, 300, 3], seed=1), SGD(0.1)
        _sgd_step(net, opt, X, y)
        net.update(0.1)  # both kinds of update are prepared now
        W = net.layers[0].W
        W.flags.writeable = False
        kept = W.copy()
        net.loss_fn.forward(net.forward(X, training=True), y)
        net.backward()
        with pytest.raises(ValueError, match="read-only"):
            opt.step(net) if update == "optimizer" else net.update(0.1)
        np.testing.assert_array_equal(W, kept)


def test_an_sgd_subclass_keeps_its_own_update_rule():
    class ClippedSGD(SGD):
        def _update(self, p, g, state):
            super()._update(p, np.clip(g, -1e-3, 1e-3), state)

    X, y = data("float64")
    net, opt = Network([6, 5, 3], dtype="float64", seed=1), ClippedSGD(0.5)
    for _ in range(3):  # from the second step on, through the prepared update
        before = net.layers[0].W.copy()
        _sgd_step(net, opt, X, y)
        change = np.abs(net.layers[0].W - before).max()
        assert 0 < change <= 0.5 * 1e-3 + 1e-15


@pytest.mark.parametrize("blas", [True, False])
def test_a_zero_learning_rate_spreads_a_nan_gradient_on_either_path(blas, monkeypatch):
    # BLAS's axpy skips the work when a is 0; the update must not depend on that.
    from flexnet import ops as _blas

    if not blas:
        monkeypatch.setattr(_blas, "_kernels", lambda: {})
    layer = Linear(30, 40, seed=0)
    layer.forward(np.ones((2, 30), np.float32))
    layer.backward(np.ones((2, 40), np.float32))
    layer.dW[0, 0] = np.nan
    opt = SGD(0.1)
    opt.lr = 0.0  # where a schedule may end
    opt.step(layer)
    assert np.isnan(layer.W[0, 0]) and np.isfinite(layer.W.ravel()[1:]).all()


# -- names for the command line ------------------------------------------------------


def test_make_optimizer_and_scheduler_by_name():
    assert isinstance(make_optimizer("adamw", lr=0.01), AdamW)
    assert make_optimizer("SGD", lr=0.2, momentum=0.9).momentum == 0.9
    for name, cls in [("sgd", SGD), ("adam", Adam), ("rmsprop", RMSprop), ("adagrad", Adagrad)]:
        assert type(make_optimizer(name)) is cls
    opt = SGD(0.1)
    assert isinstance(make_scheduler("step", opt, step_size=2), StepLR)
    assert isinstance(make_scheduler("exponential", opt, gamma=0.9), ExponentialLR)
    assert isinstance(make_scheduler("cosine", opt, total_epochs=5), CosineWarmup)
    plateau = make_scheduler("plateau", opt, patience=2)
    assert isinstance(plateau, ReduceLROnPlateau) and plateau.needs_metric
    with pytest.raises(ValueError, match="sgd, adam, adamw, rmsprop, adagrad"):
        make_optimizer("adamax")
    with pytest.raises(ValueError, match="step, exponential, cosine, plateau"):
        make_scheduler("cyclic", opt)


def test_flexnet_exports_optim():
    assert flexnet.optim.Adam is Adam
    assert flexnet.optim.StepLR is StepLR


# -- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("build, error, words", [
    (lambda: SGD(0), ValueError, "SGD(lr)"),
    (lambda: SGD(-0.1), ValueError, "SGD(lr)"),
    (lambda: SGD(float("nan")), ValueError, "SGD(lr)"),
    (lambda: SGD("0.1"), TypeError, "SGD(lr)"),
    (lambda: SGD(0.1, momentum=-0.5), ValueError, "SGD(momentum)"),
    (lambda: SGD(0.1, momentum=1.0), ValueError, "[0, 1)"),
    (lambda: SGD(0.1, nesterov=True), ValueError, "needs momentum > 0"),
    (lambda: SGD(0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "dampening = 0"),
    (lambda: SGD(0.1, nesterov="yes"), TypeError, "True or False"),
    (lambda: SGD(0.1, weight_decay=-1e-4), ValueError, "SGD(weight_decay)"),
    (lambda: SGD(0.1, l1=-1), ValueError, "SGD(l1)"),
    (lambda: Adam(betas=(0.9, 1.0)), ValueError, "Adam(betas[1])"),
    (lambda: Adam(betas=(-0.1, 0.999)), ValueError, "Adam(betas[0])"),
    (lambda: Adam(betas=0.9), TypeError, "two numbers"),
    (lambda: Adam(eps=-1e-8), ValueError, "Adam(eps)"),
    (lambda: AdamW(weight_decay=float("inf")), ValueError, "AdamW(weight_decay)"),
    (lambda: Adam(amsgrad=1), TypeError, "Adam(amsgrad)"),
    (lambda: RMSprop(alpha=1.5), ValueError, "RMSprop(alpha)"),
    (lambda: RMSprop(momentum=-0.1), ValueError, "RMSprop(momentum)"),
    (lambda: Adagrad(lr_decay=-1), ValueError, "Adagrad(lr_decay)"),
    (lambda: Adagrad(initial_accumulator_value=-1), ValueError, "initial_accumulator_value"),
    (lambda: StepLR(SGD(0.1), step_size=0), ValueError, "StepLR(step_size)"),
    (lambda: StepLR(SGD(0.1), step_size=2.0), TypeError, "StepLR(step_size)"),
    (lambda: StepLR(SGD(0.1), step_size=2, gamma=0), ValueError, "StepLR(gamma)"),
    (lambda: ExponentialLR(SGD(0.1), gamma=-0.5), ValueError, "ExponentialLR(gamma)"),
    (lambda: CosineWarmup(SGD(0.1), total_epochs=5, warmup_epochs=5), ValueError, "smaller than"),
    (lambda: CosineWarmup(SGD(0.1), total_epochs=0), ValueError, "total_epochs"),
    (lambda: CosineWarmup(SGD(0.1), total_epochs=5, min_lr=-1), ValueError, "min_lr"),
    (lambda: ReduceLROnPlateau(SGD(0.1), factor=1.0), ValueError, "factor"),
    (lambda: ReduceLROnPlateau(SGD(0.1), mode="lowest"), ValueError, "'min' or 'max'"),
    (lambda: ReduceLROnPlateau(SGD(0.1), threshold_mode="pct"), ValueError, "'rel' or 'abs'"),
    (lambda: ReduceLROnPlateau(SGD(0.1), patience=-1), ValueError, "patience"),
    (lambda: ReduceLROnPlateau(SGD(0.1)).step(), TypeError, "sched.step(val_loss)"),
    (lambda: StepLR(object(), step_size=2), TypeError, "lr attribute"),
    (lambda: SGD(0.1).step(np.zeros(3)), TypeError, "named_parameters"),
])
def test_bad_hyper_parameters_raise(build, error, words):
    with pytest.raises(error) as info:
        build()
    assert words in str(info.value)


def test_lr_may_reach_zero_but_not_below():
    opt = SGD(0.1)
    opt.lr = 0.0
    with pytest.raises(ValueError, match="SGD.lr"):
        opt.lr = -0.1
    with pytest.raises(TypeError, match="SGD.lr"):
        opt.lr = None


def test_bad_gradients_and_foreign_state_raise():
    opt = SGD(0.1)
    with pytest.raises(ValueError, match="gradient of w has shape"):
        opt.step(One([1.0, 2.0], [1.0]))
    model = One([1.0])
    model.g = np.ones(1, dtype=np.float32)
    with pytest.raises(TypeError, match="gradient of w is float32"):
        opt.step(model)
    with pytest.raises(ValueError, match="saved by Adam, not SGD"):
        SGD().load_state_dict(Adam().state_dict())
    adam = Adam()
    One([1.0, 2.0]).steps(adam, [[1.0, 1.0]])
    other = Adam()
    other.load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match="saved for a different model"):
        One([1.0, 2.0, 3.0]).steps(other, [[1.0, 1.0, 1.0]])
    bad = adam.state_dict()
    del bad["state"]["w"]["exp_avg"]
    with pytest.raises(ValueError, match="should hold"):
        Adam().load_state_dict(bad)
    amsgrad_state = Adam(amsgrad=True).state_dict()
    amsgrad_state["config"]["momentum"] = 0.9
    with pytest.raises(ValueError, match="unknown hyper-parameters"):
        Adam().load_state_dict(amsgrad_state)
    with pytest.raises(ValueError, match="saved by StepLR"):
        ExponentialLR(SGD(0.1), 0.9).load_state_dict(StepLR(SGD(0.1), 2).state_dict())
