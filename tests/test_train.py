"""The fit loop: History, evaluate, callbacks, early stopping, divergence,
progress output, diagnostics, and a digits-sized run."""

import json

import numpy as np
import pytest

import flexnet
from flexnet import EarlyStopping, History, Linear, Sequential, TrainingDiverged
from flexnet.nn.losses import MSE, SoftmaxCrossEntropy
from flexnet.optim import SGD, Adam
from flexnet.optim.schedules import ReduceLROnPlateau, StepLR
from flexnet.training.callbacks import Callback


def blobs(n=120, seed=0, n_classes=3, dtype="float32"):
    """Three well separated Gaussian blobs in 4-D."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    centers = rng.normal(0, 3, size=(n_classes, 4))
    X = centers[y] + rng.normal(0, 0.5, size=(n, 4))
    return X.astype(dtype), y


def weights(net):
    return {k: v.copy() for k, v in net.parameters().items()}


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# -- fit and History -------------------------------------------------------------


def test_fit_returns_history_with_per_epoch_lists():
    X, y = blobs()
    net = flexnet.Network([4, 8, 3], seed=0)
    h = flexnet.fit(net, X, y, epochs=4, batch_size=16, lr=0.1, validation_split=0.25, seed=1)
    assert isinstance(h, History)
    assert h.epoch == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"):
        assert len(h.history[key]) == 4, key
    assert h.history["lr"] == [0.1] * 4
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert h.params["n_train"] + h.params["n_val"] == 120


def test_history_round_trips_through_json():
    X, y = blobs()
    h = flexnet.Network([4, 3], seed=0).fit(X, y, epochs=2, lr=0.1, seed=0)
    back = History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.history == h.history and back.epoch == h.epoch and back.params == h.params
    with pytest.raises(ValueError, match="History.from_dict"):
        History.from_dict([1, 2])


def test_net_fit_shortcut_equals_flexnet_fit():
    X, y = blobs()
    a, b = flexnet.Network([4, 8, 3], seed=0), flexnet.Network([4, 8, 3], seed=0)
    a.fit(X, y, epochs=2, lr=0.05, seed=3)
    flexnet.fit(b, X, y, epochs=2, lr=0.05, seed=3)
    assert same(weights(a), weights(b))


def test_same_seed_gives_bit_identical_weights_with_dropout_and_adam():
    X, y = blobs()
    runs = []
    for _ in range(2):
        net = flexnet.Network([4, 16, 3], dropout=0.3, seed=7)
        net.fit(X, y, epochs=3, batch_size=10, optimizer=Adam(lr=0.01), validation_split=0.2, seed=11)
        runs.append(weights(net))
    assert same(*runs)
    other = flexnet.Network([4, 16, 3], dropout=0.3, seed=7)
    other.fit(X, y, epochs=3, batch_size=10, optimizer=Adam(lr=0.01), validation_split=0.2, seed=12)
    assert not same(runs[0], weights(other))  # the shuffle seed matters


def test_default_optimizer_is_plain_sgd_like_the_tutorials_loop():
    # shuffle=False, one epoch: fit must equal net.train_step over the batches in order.
    X, y = blobs(40)
    a, b = flexnet.Network([4, 5, 3], seed=2), flexnet.Network([4, 5, 3], seed=2)
    a.fit(X, y, epochs=1, batch_size=16, lr=0.05, shuffle=False)
    for i in range(0, 40, 16):
        b.train_step(X[i:i + 16], y[i:i + 16], lr=0.05)
    assert same(weights(a), weights(b))


def test_optimizer_by_name_and_the_schedulers_optimizer():
    X, y = blobs()
    net = flexnet.Network([4, 3], seed=0)
    h = net.fit(X, y, epochs=1, optimizer="adam", lr=0.002)
    assert h.history["lr"] == [0.002]
    opt = SGD(lr=0.4)
    h = flexnet.Network([4, 3], seed=0).fit(X, y, epochs=3, scheduler=StepLR(opt, step_size=1, gamma=0.5))
    assert h.history["lr"] == [0.4, 0.2, 0.1]  # fit used the scheduler's optimizer
    with pytest.raises(ValueError, match="different optimizer"):
        flexnet.Network([4, 3], seed=0).fit(X, y, optimizer=SGD(lr=0.1), scheduler=StepLR(opt, 1))
    with pytest.raises(TypeError, match="fit\\(optimizer\\)"):
        flexnet.Network([4, 3], seed=0).fit(X, y, optimizer=object())


def test_reduce_on_plateau_is_stepped_with_the_validation_loss():
    X, y = blobs()

    class Spy(ReduceLROnPlateau):
        def step(self, metric=None):
            self.seen = getattr(self, "seen", []) + [metric]
            return super().step(metric)

    sched = Spy(SGD(lr=0.1), factor=0.5, patience=0)
    h = flexnet.Network([4, 3], seed=0).fit(X, y, epochs=3, scheduler=sched, validation_split=0.25, seed=0)
    assert sched.seen == h.history["val_loss"]
    sched = Spy(SGD(lr=0.1))
    h = flexnet.Network([4, 3], seed=0).fit(X, y, epochs=2, scheduler=sched)
    assert sched.seen == h.history["loss"]  # no validation data: the training loss


def test_validation_split_is_stratified_and_seeded():
    X, y = blobs(150)
    seen = []

    class Grab(Callback):
        def on_train_begin(self, logs=None):
            seen.append((self.loop.yv.copy(), self.loop.y.copy()))

    for _ in range(2):
        flexnet.Network([4, 3], seed=0).fit(X, y, epochs=1, validation_split=0.2, seed=5, callbacks=[Grab()])
    (yv, yt), (yv2, _) = seen
    assert np.bincount(yv).tolist() == [10, 10, 10]  # 20% of each class of 50
    assert np.bincount(yt).tolist() == [40, 40, 40]
    assert np.array_equal(yv, yv2)


def test_validation_data_one_hot_targets_and_regression():
    X, y = blobs()
    onehot = np.eye(3, dtype="float32")[y]
    h = flexnet.Network([4, 8, 3], seed=0).fit(X, onehot, epochs=2, lr=0.1, validation_data=(X[:30], onehot[:30]))
    assert h.history["val_accuracy"][-1] > 0.5
    # Regression: y = x0 - 2 x1 learnt by one Linear with MSE; no accuracy keys.
    rng = np.random.default_rng(0)
    Xr = rng.normal(size=(200, 2)).astype("float32")
    yr = (Xr[:, :1] - 2 * Xr[:, 1:]).astype("float32")
    net = Sequential([Linear(2, 1, seed=0)], MSE())
    h = net.fit(Xr, yr, epochs=30, batch_size=20, lr=0.1, validation_split=0.2, seed=0)
    assert "accuracy" not in h.history and "val_accuracy" not in h.history
    assert h.history["val_loss"][-1] < 1e-4
    result = flexnet.evaluate(net, Xr, yr)
    assert set(result) == {"loss", "mae", "rmse"} and result["rmse"] < 1e-2


@pytest.mark.parametrize("bad, match", [
    (dict(validation_split=1.5), "validation_split"),
    (dict(validation_split=0.2, validation_data=(np.zeros((2, 4)), [0, 1])), "not both"),
    (dict(epochs=0), "fit\\(epochs\\)"),
    (dict(batch_size=2.5), "fit\\(batch_size\\)"),
    (dict(checkpoint_every="often"), "checkpoint_every"),
    (dict(callbacks=[print]), "Callback"),
    (dict(lr=-1), "lr"),
    (dict(seed=1.5), "fit\\(seed\\)"),
])
def test_bad_settings_are_refused_before_training(bad, match):
    X, y = blobs(30)
    net = flexnet.Network([4, 3], seed=0)
    before = weights(net)
    with pytest.raises((ValueError, TypeError), match=match):
        net.fit(X, y, epochs=bad.pop("epochs", 1), **bad)
    assert same(before, weights(net))


def test_bad_data_is_refused_once_with_the_row():
    X, y = blobs(30)
    net = flexnet.Network([4, 3], seed=0)
    Xn = X.copy()
    Xn[17, 2] = np.nan
    with pytest.raises(ValueError, match="row 17"):
        net.fit(Xn, y)
    bad_y = y.copy()
    bad_y[5] = 3
    with pytest.raises(ValueError, match="label 3 at row 5"):
        net.fit(X, bad_y)
    with pytest.raises(ValueError, match="30 rows but y has 29"):
        net.fit(X, y[:-1])
    with pytest.raises(ValueError, match="Linear\\(4 -> 3\\)"):
        net.fit(X[:, :3], y)


# -- evaluate ---------------------------------------------------------------------


def test_evaluate_classification_report_worked_by_hand():
    # Linear with W = I, b = 0 predicts the argmax of each row.
    net = Sequential([Linear(2, 2)], SoftmaxCrossEntropy())
    net.layers[0].W[...] = np.eye(2)
    X = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [0, 1]], dtype="float32")  # predicts 0 0 1 0 1
    y = np.array([0, 0, 0, 1, 1])
    r = flexnet.evaluate(net, X, y)
    # true 0: predicted 0, 0, 1 -> row [2, 1]; true 1: predicted 0, 1 -> row [1, 1]
    assert r["confusion"] == [[2, 1], [1, 1]]
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["precision"] == pytest.approx([2 / 3, 1 / 2])  # column sums 3 and 2
    assert r["recall"] == pytest.approx([2 / 3, 1 / 2])  # row sums 3 and 2
    assert r["f1"] == pytest.approx([2 / 3, 1 / 2])
    assert r["support"] == [3, 2]
    assert r["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # loss: each row has logits (1, 0) or (0, 1); -log softmax = log(1 + e) when wrong, log(1 + 1/e) when right
    right, wrong = np.log1p(np.exp(-1)), np.log1p(np.e)
    assert r["loss"] == pytest.approx((3 * right + 2 * wrong) / 5, rel=1e-6)
    json.dumps(r)  # JSON-friendly


def test_evaluate_never_predicted_class_gets_zero_precision():
    net = Sequential([Linear(2, 3)])
    net.layers[0].W[...] = [[1, 0, 0], [0, 1, 0]]
    r = flexnet.evaluate(net, np.eye(2, dtype="float32"), [0, 2])
    assert r["precision"] == [1.0, 0.0, 0.0] and r["recall"] == [1.0, 0.0, 0.0]


# -- callbacks ----------------------------------------------------------------------


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, logs["size"]))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.events.append("train_end")


# -- labels checked once, before the loop --------------------------------------


def test_labels_checked_once_train_as_labels_checked_every_batch():
    # int64 class ids skip the per-batch range check inside fit (fit checked all
    # of them first); int32 ids take the loss's own checked forward. Same bits.
    X, y = blobs()
    runs = {}
    for dtype in (np.int64, np.int32):
        net = flexnet.Network([4, 8, 3], seed=0)
        h = flexnet.fit(net, X, y.astype(dtype), epochs=3, batch_size=16, lr=0.1, seed=1)
        runs[dtype] = (weights(net), h.history["loss"], h.history["accuracy"])
    (w64, loss64, acc64), (w32, loss32, acc32) = runs[np.int64], runs[np.int32]
    assert same(w64, w32) and loss64 == loss32 and acc64 == acc32


def test_a_subclassed_softmax_cross_entropy_keeps_its_own_forward_in_fit():
    class Counting(SoftmaxCrossEntropy):
        calls = 0

        def forward(self, z, y):
            Counting.calls += 1
            return super().forward(z, y)

    X, y = blobs(40)
    net = flexnet.Network([4, 3], seed=0, loss=Counting())
    flexnet.fit(net, X, y, epochs=2, batch_size=10, lr=0.1)
    assert Counting.calls >= 8  # every batch of both epochs went through it


@pytest.mark.parametrize("loss, targets", [
    ("mse", "1d"), ("l1", "2d"), ("huber", "2d"), ("bce_with_logits", "1d"), ("bce_with_logits", "multi"),
    ("cross_entropy", "onehot"),
])
def test_targets_checked_once_train_as_targets_checked_every_batch(loss, targets, monkeypatch):
    # fit checks every target through the loss before its loop; its batches then skip the
    # loss's own check. A subclass (same math) keeps the check in every batch: same bits.
    from flexnet.nn import losses

    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4)).astype(np.float32)
    k = 3 if targets in ("multi", "onehot") else (1 if targets == "1d" else 2)
    y = (X[:, :k] > 0).astype(np.float64) if loss == "bce_with_logits" else X[:, :k] * 2.0 + 1.0
    y = np.eye(k)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0)] if targets == "onehot" else y
    y = y[:, 0] if targets == "1d" else y  # float64: fit converts them to float32 once
    checks = []
    original = losses.check_targets  # every loss's check of dense targets ends there
    monkeypatch.setattr(losses, "check_targets", lambda y, *a: checks.append(len(y)) or original(y, *a))
    runs = []
    for subclassed in (False, True):
        cls = losses.get(loss)
        net = flexnet.Network([4, 8, k], seed=0, loss=type("Mine", (cls,), {})() if subclassed else cls())
        checks.clear()
        h = flexnet.fit(net, X, y, epochs=3, batch_size=16, lr=0.05, seed=1)
        runs.append((weights(net), h.history["loss"], checks[:]))
    (w_fast, loss_fast, checks_fast), (w_full, loss_full, checks_full) = runs
    assert same(w_fast, w_full) and loss_fast == loss_full
    assert checks_fast == [50]  # once, every row, before the loop
    assert checks_full == [50] + [16, 16, 16, 2] * 3  # and in every batch


def test_targets_in_another_dtype_than_the_outputs_keep_the_checked_paths_numbers():
    # A float64 network whose last layer gives float32 outputs: the loss computes in the
    # outputs' dtype, as the full check's cast makes it, whether or not fit checked before.
    class Cast32(flexnet.Layer):
        def forward(self, x, training=False):
            return x.astype(np.float32)

        def backward(self, grad):
            return grad.astype(np.float64)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    for loss, y in [("mse", X[:, 0] * 2.0), ("bce_with_logits", (X[:, 0] > 0) * 1.0)]:
        runs = []
        for cls in (flexnet.losses.get(loss), type("Mine", (flexnet.losses.get(loss),), {})):
            net = flexnet.Sequential([Linear(4, 6, seed=0), flexnet.ReLU(), Linear(6, 1, seed=1), Cast32()], loss=cls(), dtype="float64")
            flexnet.fit(net, X, y, epochs=3, batch_size=16, lr=0.05, seed=1)
            runs.append(weights(net))
        assert same(*runs)


def test_a_forward_replaced_on_the_loss_object_is_called_as_it_was_written():
    X, y = blobs(40)
    for net, targets in [(flexnet.Network([4, 1], loss="mse", seed=0), X[:, 0]), (flexnet.Network([4, 3], seed=0), y)]:
        original, calls = net.loss_fn.forward, []
        net.loss_fn.forward = lambda z, y, original=original: calls.append(1) or original(z, y)
        flexnet.fit(net, X, targets, epochs=1, batch_size=10)
        assert len(calls) >= 4  # every batch, without a keyword it does not take


def test_label_smoothing_switched_on_during_fit_takes_effect():
    class SmoothFromEpoch2(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                self.net.loss_fn.label_smoothing = 0.5

    X, y = blobs()
    losses = {}
    for callbacks in ([], [SmoothFromEpoch2()]):
        net = flexnet.Network([4, 8, 3], seed=0)
        h = flexnet.fit(net, X, y, epochs=2, batch_size=16, lr=0.1, seed=1, callbacks=callbacks)
        losses[len(callbacks)] = h.history["loss"]
    assert losses[0][0] == losses[1][0]  # epoch 1: the same run
    assert losses[1][1] > losses[0][1] + 0.1  # smoothed targets: a clearly higher loss


def test_callback_hooks_are_called_in_order():
    X, y = blobs(25)
    rec = Recorder()
    flexnet.Network([4, 3], seed=0).fit(X, y, epochs=2, batch_size=10, callbacks=[rec])
    keys = ["accuracy", "loss", "lr", "time"]
    epoch = [("batch_end", 1, 10), ("batch_end", 2, 10), ("batch_end", 3, 5)]
    assert rec.events == (["train_begin", ("epoch_begin", 1)] + epoch + [("epoch_end", 1, keys), ("epoch_begin", 2)]
                          + epoch + [("epoch_end", 2, keys), "train_end"])


class Scripted(Callback):
    """Puts a made-up score into the epoch logs and remembers the weights."""

    def __init__(self, scores):
        self.scores, self.snapshots = scores, {}

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch - 1]
        self.snapshots[epoch] = weights(self.net)


def test_early_stopping_stops_and_restores_best_weights():
    X, y = blobs()
    script = Scripted([3.0, 1.0, 2.0, 1.5, 0.5, 0.1])
    stop = EarlyStopping(monitor="score", patience=2)
    net = flexnet.Network([4, 8, 3], seed=0)
    h = net.fit(X, y, epochs=6, lr=0.1, callbacks=[script, stop])
    assert h.epoch == [1, 2, 3, 4]  # no improvement on 1.0 in epochs 3 and 4
    assert stop.best_epoch == 2 and stop.stopped_epoch == 4
    assert same(weights(net), script.snapshots[2])


def test_early_stopping_mode_min_delta_and_no_restore():
    X, y = blobs()
    script = Scripted([0.5, 0.55, 0.9, 0.2])
    stop = EarlyStopping(monitor="score", patience=1, mode="max", min_delta=0.1, restore_best_weights=False)
    net = flexnet.Network([4, 3], seed=0)
    h = net.fit(X, y, epochs=4, callbacks=[script, stop])
    assert h.epoch == [1, 2]  # 0.55 is not 0.1 better than 0.5
    assert same(weights(net), script.snapshots[2])
    with pytest.raises(ValueError, match="validation_split"):
        flexnet.Network([4, 3], seed=0).fit(X, y, epochs=1, callbacks=[EarlyStopping()])


def test_early_stopping_reused_in_a_second_fit_starts_afresh():
    X, y = blobs()
    stop = EarlyStopping(monitor="score", patience=1)
    flexnet.Network([4, 3], seed=0).fit(X, y, epochs=3, callbacks=[Scripted([0.1, 0.5, 0.5]), stop])
    assert stop.best == 0.1
    h = flexnet.Network([4, 3], seed=0).fit(X, y, epochs=3, callbacks=[Scripted([0.9, 0.8, 0.7]), stop])
    assert h.epoch == [1, 2, 3] and stop.best == 0.7 and stop.best_epoch == 3


def test_early_stopping_on_val_loss_keeps_the_best_epoch():
    X, y = blobs()
    script = Scripted([0] * 8)
    stop = EarlyStopping(patience=100)
    net = flexnet.Network([4, 8, 3], seed=0)
    h = net.fit(X, y, epochs=8, lr=2.0, validation_split=0.3, seed=0, callbacks=[script, stop])
    best = int(np.argmin(h.history["val_loss"])) + 1
    assert stop.best_epoch == best
    assert same(weights(net), script.snapshots[best])


# -- divergence ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on the way to inf
def test_divergence_stops_with_epoch_batch_and_keeps_previous_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 100, size=(64, 3)).astype("float32")  # unscaled inputs
    y = X.sum(axis=1, keepdims=True)
    net = Sequential([Linear(3, 1, seed=0)], MSE())

    class Snap(Callback):
        def on_batch_begin(self, batch, logs=None):
            self.before = weights(self.net)

    snap = Snap()
    with pytest.raises(TrainingDiverged) as info:
        net.fit(X, y, epochs=50, batch_size=8, lr=0.5, callbacks=[snap])
    err = info.value
    assert f"epoch {err.epoch}, batch {err.batch} of 8" in str(err)
    assert "learning rate" in str(err) and not np.isfinite(err.loss)
    assert same(weights(net), snap.before)
    assert all(np.isfinite(p).all() for p in net.parameters().values())
    assert isinstance(err, ArithmeticError)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on the way to inf
def test_divergence_after_an_overflowing_update_says_the_weights_are_gone():
    # A finite loss whose update overflows float32: the next batch's loss is
    # not finite, and the weights from before it are no longer worth keeping.
    X = np.random.default_rng(0).normal(0, 100, size=(64, 5)).astype("float32")
    net = flexnet.Network([5, 2], seed=0)
    with pytest.raises(TrainingDiverged) as info:
        net.fit(X, np.arange(64) % 2, batch_size=16, lr=1e38, seed=0)
    assert "already non-finite" in str(info.value) and "kept" not in str(info.value)


@pytest.mark.parametrize("n, batch_size", [(33, 32), (33, 16), (1, 4)])
def test_a_one_row_batchnorm_batch_is_refused_before_training(n, batch_size):
    X, y = blobs(n)
    net = flexnet.Network([4, 8, 3], batchnorm=True, seed=0)
    before = weights(net)
    with pytest.raises(ValueError, match="BatchNorm1d\\(8\\) at layers.1 needs at least 2"):
        net.fit(X, y, batch_size=batch_size)
    assert same(weights(net), before)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on the way to inf
def test_divergence_undoes_batchnorm_running_statistics():
    X, y = blobs(40)
    net = flexnet.Network([4, 8, 3], batchnorm=True, seed=0)
    bn = [layer for layer in net.layers if type(layer).__name__ == "BatchNorm1d"][0]

    class Poison(Callback):
        def on_batch_begin(self, batch, logs=None):
            if batch == 2:
                self.saved = (bn.running_mean.copy(), bn.running_var.copy())
                self.net.layers[-1].W[0, 0] = np.inf  # the next forward gives inf/NaN logits

    poison = Poison()
    with pytest.raises(TrainingDiverged, match="epoch 1, batch 2"):
        net.fit(X, y, epochs=1, batch_size=10, callbacks=[poison])
    assert np.array_equal(bn.running_mean, poison.saved[0])
    assert np.array_equal(bn.running_var, poison.saved[1])


# -- progress and diagnostics --------------------------------------------------------------


def test_progress_is_quiet_when_output_is_not_a_terminal(capsys):
    X, y = blobs()
    flexnet.Network([4, 3], seed=0).fit(X, y, epochs=2)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_progress_bar_on_request_shows_loss_and_accuracy(capsys):
    pytest.importorskip("tqdm")  # the 'progress' extra; CI installs it
    X, y = blobs()
    flexnet.Network([4, 3], seed=0).fit(X, y, epochs=2, progress=True, validation_split=0.2, seed=0)
    err = capsys.readouterr().err
    assert "epoch 2/2, loss " in err and ", acc " in err and ", val acc " in err


def test_diagnostics_record_gradient_norms_update_ratios_and_dead_relus():
    X, y = blobs()
    net = flexnet.Network([4, 16, 3], seed=0)
    h = net.fit(X, y, epochs=2, lr=0.1, diagnostics=True)
    hist = h.history
    for name in ("layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b"):
        assert len(hist[f"grad_norm/{name}"]) == 2 and hist[f"grad_norm/{name}"][0] > 0
    assert set(k for k in hist if k.startswith("update_ratio/")) == {"update_ratio/layers.0.W", "update_ratio/layers.2.W"}
    assert 0 < hist["update_ratio/layers.0.W"][0] < 1
    dead = hist["dead_relu/layers.1"]
    assert len(dead) == 2 and all(0 <= d <= 1 for d in dead)
    # Kill every hidden unit: biases so negative that no input switches a ReLU on.
    net.layers[0].b[...] = -1e6
    h = net.fit(X, y, epochs=1, lr=1e-9, diagnostics=True)
    assert h.history["dead_relu/layers.1"] == [1.0]


def test_diagnostics_do_not_change_the_weights():
    X, y = blobs()
    a, b = flexnet.Network([4, 8, 3], dropout=0.2, seed=0), flexnet.Network([4, 8, 3], dropout=0.2, seed=0)
    a.fit(X, y, epochs=2, seed=1)
    b.fit(X, y, epochs=2, seed=1, diagnostics=True)
    assert same(weights(a), weights(b))


# -- a digits-sized run ----------------------------------------------------------------------------


@pytest.mark.parametrize("options, floor", [
    ({}, 0.87),
    ({"dropout": 0.2}, 0.87),
    ({"batchnorm": True}, 0.90),
    ({"dropout": 0.2, "batchnorm": True}, 0.90),
])
def test_digits_reaches_documented_accuracy(options, floor):
    # 600 training and 300 held-out 8x8 digits; see docs/training.md for the numbers.
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    X, y = (d.data / 16.0).astype("float32"), d.target
    net = flexnet.Network([64, 64, 10], seed=0, **options)
    h = net.fit(X[:600], y[:600], epochs=20, batch_size=32, optimizer="adam", lr=3e-3, seed=0)
    assert h.history["accuracy"][-1] > 0.95
    assert flexnet.evaluate(net, X[600:900], y[600:900])["accuracy"] >= floor


@pytest.mark.parametrize("make_y", [
    lambda b: b.astype(int), lambda b: b.astype("float64")[:, None], lambda b: b,
], ids=["int", "float64-column", "bool"])
def test_binary_classification_with_bce_end_to_end(make_y):
    from flexnet.nn.losses import BCEWithLogits

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype("float32")
    y = make_y(X[:, 0] + X[:, 1] > 0)
    net = flexnet.Network([3, 8, 1], loss=BCEWithLogits(), seed=0)
    h = net.fit(X, y, epochs=20, lr=0.1, validation_split=0.2, seed=0)
    assert h.history["val_accuracy"][-1] > 0.9
    r = flexnet.evaluate(net, X, y)
    assert len(r["confusion"]) == 2 and sum(map(sum, r["confusion"])) == 200
    assert all(p.dtype == np.float32 for p in net.parameters().values())  # no quiet upcast
