"""scikit-learn's conventions: sample weights, the MLP's stopping rule, random_state=None, multilabel y."""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import (
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.ensemble import AdaBoostClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    r2_score,
)
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import flexnet
from flexnet.bridges.estimators import FlexNetClassifier, FlexNetRegressor
from flexnet.nn.losses import L1, MSE, BCEWithLogits, Huber, SoftmaxCrossEntropy
from flexnet.training.callbacks import EarlyStopping
from flexnet.training.weights import weighted_loss


def _load_benchmark():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "early_stopping.py"
    spec = importlib.util.spec_from_file_location("early_stopping_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _load_benchmark()


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(240, 6, n_informative=4, n_classes=3, random_state=0)
    return X, y


def _params(net):
    return [p.copy() for p in net.parameters().values()]


# -- sample_weight in flexnet.fit -------------------------------------------------------


def _fit(X, y, sizes, loss=None, **kwargs):
    net = flexnet.Network(sizes, loss=loss, seed=1, dtype="float64")
    history = flexnet.fit(net, X, y, **{"epochs": 3, "batch_size": 32, "optimizer": "adam",
                                        "lr": 0.01, "seed": 2, **kwargs})
    return net, history


@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_equal_weights_train_exactly_as_none(blobs, weight):
    X, y = blobs
    net0, h0 = _fit(X, y, [6, 8, 3], validation_split=0.2)
    net1, h1 = _fit(X, y, [6, 8, 3], validation_split=0.2, sample_weight=np.full(len(X), weight))
    assert all(np.array_equal(a, b) for a, b in zip(_params(net0), _params(net1)))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if weight == 1:
            assert h0.history[key] == h1.history[key]
        else:  # the same means, summed in weights of 2.5: equal to rounding
            np.testing.assert_allclose(h0.history[key], h1.history[key], rtol=1e-14)


@pytest.mark.parametrize("scale", [0.01, 1e-300, 1e300, 2.0 ** 1020])
def test_only_the_weights_ratios_count_at_any_scale(blobs, scale):
    # The logged means are per unit of weight (a total below 1 included), and weights
    # whose sums would overflow, or whose gradient scale would underflow, train as any other.
    X, y = blobs
    w = np.linspace(0.5, 2.0, len(X))
    net0, h0 = _fit(X, y, [6, 8, 3], validation_data=(X[:40], y[:40], w[:40]), sample_weight=w)
    net1, h1 = _fit(X, y, [6, 8, 3], validation_data=(X[:40], y[:40], w[:40] * scale), sample_weight=w * scale)
    for a, b in zip(_params(net0), _params(net1)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(h0.history[key], h1.history[key], rtol=1e-12)
    ev0 = flexnet.evaluate(net0, X, y, sample_weight=w)
    ev1 = flexnet.evaluate(net1, X, y, sample_weight=w * scale)
    for key in ("loss", "accuracy", "macro_f1"):
        assert np.isfinite(ev1[key])
        np.testing.assert_allclose(ev0[key], ev1[key], rtol=1e-9)


def test_a_batch_of_tiny_weights_trains_as_any_other(blobs):
    # The last batch holds only weights near the smallest float64 (2**-1070 .. 8 * 2**-1070):
    # its mean is taken on their ratios, as for the same ratios at 2**-1000.
    X, y = blobs[0][:40], blobs[1][:40]
    runs = []
    for unit in (2.0 ** -1070, 2.0 ** -1000):
        w = np.r_[np.linspace(0.5, 2.0, 32), np.arange(1, 9) * unit]
        runs.append(_fit(X, y, [6, 8, 3], batch_size=8, shuffle=False, sample_weight=w))
    (net0, h0), (net1, h1) = runs
    assert np.isfinite(h0.history["loss"]).all()
    for a, b in zip(_params(net0), _params(net1)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_integer_weights_equal_repeated_rows(blobs):
    # One batch of every row, no shuffling: weighting a row by k is repeating it k times.
    X, y = blobs
    w = np.random.default_rng(0).integers(0, 4, len(X))
    kwargs = dict(epochs=4, optimizer="sgd", lr=0.5, shuffle=False)
    net_w, h_w = _fit(X, y, [6, 8, 3], batch_size=len(X), sample_weight=w, **kwargs)
    Xr, yr = np.repeat(X, w, axis=0), np.repeat(y, w)
    net_r, h_r = _fit(Xr, yr, [6, 8, 3], batch_size=len(Xr), **kwargs)
    for a, b in zip(_params(net_w), _params(net_r)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_w.history["loss"], h_r.history["loss"], rtol=1e-10)
    np.testing.assert_allclose(h_w.history["accuracy"], h_r.history["accuracy"], rtol=1e-12)


_LOSSES = [
    ("ids", SoftmaxCrossEntropy()),
    ("ids", SoftmaxCrossEntropy(class_weights=[1.0, 3.0, 0.5])),
    ("ids", SoftmaxCrossEntropy(label_smoothing=0.1)),
    ("ids", SoftmaxCrossEntropy(class_weights=[1.0, 3.0, 0.5], label_smoothing=0.1)),
    ("onehot", SoftmaxCrossEntropy(class_weights=[1.0, 3.0, 0.5], label_smoothing=0.1)),
    ("onehot", SoftmaxCrossEntropy()),
    ("binary", BCEWithLogits()),
    ("dense", MSE()),
    ("dense", L1()),
    ("dense", Huber(delta=0.5)),
]


@pytest.mark.parametrize("kind, loss", _LOSSES, ids=[f"{k}-{loss!r}" for k, loss in _LOSSES])
def test_weighted_loss_and_gradient_equal_those_of_repeated_rows(kind, loss):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(7, 3))
    y = {"ids": rng.integers(0, 3, 7), "onehot": np.eye(3)[rng.integers(0, 3, 7)],
         "binary": rng.integers(0, 2, (7, 3)).astype(float), "dense": rng.normal(size=(7, 3))}[kind]
    w = np.array([0, 1, 2, 3, 1, 0, 2])
    value = loss.forward(z, y)
    weighted, scale, total = weighted_loss(loss, z, y, w.astype(float), value)
    grad = loss.backward() * scale[:, None]
    assert total == w.sum()
    repeated = np.repeat(np.arange(7), w)
    assert weighted == pytest.approx(loss.forward(z[repeated], y[repeated]), rel=1e-12)
    grad_r = loss.backward()
    summed = np.zeros_like(grad)
    np.add.at(summed, repeated, grad_r)  # each row's copies add up
    np.testing.assert_allclose(grad, summed, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("weights, message", [
    (np.ones(5), r"fit\(sample_weight\): expected shape \(240,\).*got shape \(5,\)"),
    (np.ones((240, 2)), r"expected shape \(240,\)"),
    (np.r_[np.ones(239), np.nan], r"fit\(sample_weight\): weights must be finite; row 239 holds nan"),
    (np.r_[np.ones(239), -1.0], r"weights must be >= 0; row 239 holds -1"),
    (np.zeros(240), r"every weight is zero"),
    (np.array(["a"] * 240), r"expected numbers"),
])
def test_bad_sample_weight_is_refused_with_the_argument_named(blobs, weights, message):
    X, y = blobs
    net = flexnet.Network([6, 8, 3], seed=0)
    before = _params(net)
    with pytest.raises((ValueError, TypeError), match=message):
        flexnet.fit(net, X, y, epochs=1, sample_weight=weights)
    assert all(np.array_equal(a, b) for a, b in zip(before, _params(net)))  # nothing trained


def test_a_loss_of_your_own_says_its_rows_losses_or_is_refused(blobs):
    X, y = blobs

    class Plain(SoftmaxCrossEntropy):  # another class: flexnet cannot know its rows' losses
        pass

    net = flexnet.Sequential([flexnet.nn.layers.Linear(6, 3, seed=0)], Plain())
    with pytest.raises(TypeError, match=r"sample_weight: Plain does not say what each row's loss is"):
        flexnet.fit(net, X, y, epochs=1, sample_weight=np.arange(len(X)) % 3)

    class Told(Plain):
        def row_losses(self, z, y):
            return -flexnet.nn.activations.log_softmax(z)[np.arange(len(z)), y], None

    told = flexnet.Sequential([flexnet.nn.layers.Linear(6, 3, seed=0, dtype="float64")], Told(),
                              dtype="float64")
    plain = flexnet.Sequential([flexnet.nn.layers.Linear(6, 3, seed=0, dtype="float64")],
                               SoftmaxCrossEntropy(), dtype="float64")
    for model in (told, plain):
        flexnet.fit(model, X, y, epochs=2, seed=0, sample_weight=np.arange(len(X)) % 3)
    assert np.array_equal(told.layers[0].W, plain.layers[0].W)


def test_zero_weight_rows_do_not_count_even_with_infinite_loss():
    X = np.array([[1.0], [2.0], [3.0], [4.0]])
    y = np.array([0, 1, 0, 1])
    net = flexnet.Network([1, 2], seed=0, dtype="float64")
    net.layers[0].W[...] = [[800.0, -800.0]]  # row 1 (weight 0): its class gets probability 0
    w = np.array([1.0, 0.0, 1.0, 0.0])
    history = flexnet.fit(net, X, y, epochs=1, batch_size=4, lr=1e-6, sample_weight=w, shuffle=False)
    assert np.isfinite(history.history["loss"][0]) and history.history["accuracy"] == [1.0]


def test_validation_rows_keep_their_weights(blobs):
    X, y = blobs
    w = np.random.default_rng(1).uniform(0, 2, len(X))
    net, history = _fit(X, y, [6, 8, 3], validation_data=(X[:50], y[:50], w[:50]), epochs=1)
    result = flexnet.evaluate(net, X[:50], y[:50], sample_weight=w[:50])
    assert history.history["val_loss"] == [pytest.approx(result["loss"], rel=1e-12)]
    assert history.history["val_accuracy"] == [pytest.approx(result["accuracy"], rel=1e-12)]
    # validation_split: the held-out rows take their weights along
    _, split = _fit(X, y, [6, 8, 3], validation_split=0.25, sample_weight=w, epochs=1)
    _, unweighted = _fit(X, y, [6, 8, 3], validation_split=0.25, epochs=1)
    assert split.history["val_loss"] != unweighted.history["val_loss"]
    with pytest.raises(TypeError, match=r"fit\(validation_data\): expected a pair"):
        _fit(X, y, [6, 8, 3], validation_data=(X, y, w, w))
    one_row = np.eye(len(X))[0]  # one row weighs: one of the two parts has no weight at all
    with pytest.raises(ValueError, match=r"every (training|validation) row of validation_split=0.5 "
                                         r"has weight zero"):
        _fit(X, y, [6, 8, 3], validation_split=0.5, sample_weight=one_row)


def test_evaluate_with_sample_weight_matches_scikit_learn(blobs):
    X, y = blobs
    w = np.random.default_rng(2).uniform(0, 3, len(X))
    net, _ = _fit(X, y, [6, 8, 3])
    result = flexnet.evaluate(net, X, y, sample_weight=w)
    proba, pred = net.predict_proba(X), net.predict(X)
    assert result["loss"] == pytest.approx(log_loss(y, proba, sample_weight=w), rel=1e-9)
    assert result["accuracy"] == pytest.approx(accuracy_score(y, pred, sample_weight=w), rel=1e-12)
    np.testing.assert_allclose(result["confusion"], confusion_matrix(y, pred, sample_weight=w))
    assert flexnet.evaluate(net, X, y) == flexnet.evaluate(net, X, y, sample_weight=None)
    Xr, yr = make_regression(100, 4, random_state=0)
    reg = flexnet.Network([4, 1], loss="mse", seed=0, dtype="float64")
    flexnet.fit(reg, Xr, yr, epochs=2, lr=0.01)
    wr = np.arange(100.0)
    result = flexnet.evaluate(reg, Xr, yr, sample_weight=wr)
    assert result["mae"] == pytest.approx(mean_absolute_error(yr, reg.predict(Xr), sample_weight=wr))


def test_a_weighted_run_resumes_exactly_and_needs_the_same_weights(blobs, tmp_path):
    X, y = blobs
    w = np.random.default_rng(4).uniform(0, 2, len(X))
    whole, _ = _fit(X, y, [6, 8, 3], epochs=4, sample_weight=w, validation_split=0.2)
    ckpt = tmp_path / "run.ckpt.npz"
    _fit(X, y, [6, 8, 3], epochs=2, sample_weight=w, validation_split=0.2, checkpoint=ckpt,
         checkpoint_every="3 batches")
    resumed, _ = _fit(X, y, [6, 8, 3], epochs=4, sample_weight=w, validation_split=0.2, resume=ckpt)
    assert all(np.array_equal(a, b) for a, b in zip(_params(whole), _params(resumed)))
    for other in (None, w[::-1].copy()):
        with pytest.raises(flexnet.files.ModelFileError, match=r"training data \(X, y, sample_weight\)"):
            _fit(X, y, [6, 8, 3], epochs=4, sample_weight=other, validation_split=0.2, resume=ckpt)


# -- the estimators with sample_weight ------------------------------------------------------


def test_estimators_equal_weights_equal_none(blobs):
    X, y = blobs
    for est in (FlexNetClassifier((8,), max_iter=5, random_state=0),
                FlexNetClassifier((8,), max_iter=5, random_state=0, early_stopping=True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            a = est.fit(X, y).predict_proba(X)
            b = est.fit(X, y, sample_weight=np.ones(len(X))).predict_proba(X)
        assert np.array_equal(a, b)


def test_weights_tilt_the_classifier(blobs):
    X, y = blobs
    w = np.where(y == 2, 20.0, 1.0)
    kwargs = dict(hidden_layer_sizes=(8,), max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = FlexNetClassifier(**kwargs).fit(X, y)
        tilted = FlexNetClassifier(**kwargs).fit(X, y, sample_weight=w)
    assert np.mean(tilted.predict(X) == 2) > np.mean(plain.predict(X) == 2)
    assert tilted.score(X, y, sample_weight=w) == accuracy_score(y, tilted.predict(X), sample_weight=w)


def test_adaboost_pipeline_and_calibration_take_sample_weight(blobs):
    X, y = blobs
    w = np.random.default_rng(5).uniform(0.5, 2, len(X))
    small = dict(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all: weights used, not ignored
        warnings.simplefilter("ignore", ConvergenceWarning)
        boost = AdaBoostClassifier(FlexNetClassifier(**small), n_estimators=3, random_state=0).fit(X, y)
        assert boost.score(X, y) > 0.5
        pipe = Pipeline([("scale", StandardScaler()), ("net", FlexNetClassifier(**small))])
        pipe.fit(X, y, net__sample_weight=w)
        direct = FlexNetClassifier(**small).fit(StandardScaler().fit_transform(X), y, sample_weight=w)
        np.testing.assert_array_equal(pipe.predict_proba(X), direct.predict_proba(StandardScaler().fit_transform(X)))
        calibrated = CalibratedClassifierCV(FlexNetClassifier(**small), cv=2).fit(X, y, sample_weight=w)
        assert calibrated.predict_proba(X).shape == (len(X), 3)
        Xr, yr = make_regression(120, 4, random_state=0)
        reg = FlexNetRegressor((8,), max_iter=20, random_state=0).fit(Xr, yr, sample_weight=np.arange(120.0))
        assert np.isfinite(reg.score(Xr, yr, sample_weight=np.arange(120.0)))


def test_regressor_validation_score_is_weighted_r2():
    X, y = make_regression(200, 5, noise=5.0, random_state=0)
    w = np.random.default_rng(6).uniform(0, 2, len(X))
    reg = FlexNetRegressor((16,), learning_rate_init=0.01, max_iter=15, early_stopping=True,
                           restore_best_weights=False, random_state=0, n_iter_no_change=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y, sample_weight=w)
    _, Xv, _, yv, _, wv = reg._split(X, y, w, reg._fit_seed)
    assert reg.validation_scores_[-1] == pytest.approx(r2_score(yv, reg.predict(Xv), sample_weight=wv))


# -- scikit-learn's stopping rule ---------------------------------------------------------


def _curves():
    rng = np.random.default_rng(0)
    curves = []
    for _ in range(40):
        n = int(rng.integers(5, 80))
        decay = np.exp(-np.arange(n) / rng.uniform(2, 30))
        curve = decay + rng.normal(0, rng.choice([0, 1e-5, 1e-4, 1e-3, 1e-2]), n)
        if rng.random() < 0.3:
            curve[rng.integers(0, n)] = np.nan
        if rng.random() < 0.3:  # plateaus: equal values, and steps of exactly tol
            curve = np.round(curve, int(rng.integers(1, 4)))
        curves.append(curve.tolist())
    curves.append([1.0, 0.9999, 0.9998, 0.9997] * 3)  # steps of exactly tol=1e-4 (in float)
    curves.append([1.0] * 30)
    return curves


@pytest.mark.parametrize("tol", [0.0, 1e-4, 1e-2])
@pytest.mark.parametrize("patience", [1, 3, 10])
@pytest.mark.parametrize("scores", [False, True], ids=["training loss", "validation score"])
def test_rule_sklearn_stops_where_scikit_learn_does(tol, patience, scores):
    for curve in _curves():
        values = [1 - v for v in curve] if scores else curve
        assert (BENCH.flexnet_stop(values, tol, patience, rule="sklearn", scores=scores)
                == BENCH.sklearn_stop(values, tol, patience, scores=scores)), values


def test_rule_sklearn_moves_the_best_on_any_improvement():
    class Loop:
        stop_training = False

    stop = EarlyStopping("loss", patience=2, min_delta=0.1, rule="sklearn", restore_best_weights=False)
    stop.set_context(None, Loop())
    stop.on_train_begin({})
    for epoch, loss in enumerate([1.0, 0.95, 0.93, 0.92], 1):
        stop.on_epoch_end(epoch, {"loss": loss})
    # keras would keep 1.0 as the best and stop at epoch 3 (patience 2); sklearn counts 3 > 2 at epoch 4
    assert stop.best == 0.92 and stop.best_epoch == 4 and stop.wait == 3 and stop.stopped_epoch == 4
    with pytest.raises(ValueError, match="EarlyStopping\\(rule\\): expected 'keras' or 'sklearn'"):
        EarlyStopping(rule="mlp")


@pytest.mark.parametrize("early_stopping", [False, True])
def test_estimator_n_iter_is_where_scikit_learns_rule_stops_its_curve(blobs, early_stopping):
    X, y = blobs
    kwargs = dict(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=300, tol=1e-3,
                  n_iter_no_change=4, early_stopping=early_stopping, random_state=0)
    clf = FlexNetClassifier(**kwargs).fit(X, y)
    assert clf.n_iter_ < 300
    curve = clf.validation_scores_ if early_stopping else clf.loss_curve_
    assert clf.n_iter_ == BENCH.sklearn_stop(curve, 1e-3, 4, scores=early_stopping) == len(curve)
    # and MLPClassifier stops its own curve by the same rule
    mlp = MLPClassifier(**kwargs).fit(X, y)
    mlp_curve = mlp.validation_scores_ if early_stopping else mlp.loss_curve_
    assert mlp.n_iter_ == BENCH.flexnet_stop(mlp_curve, 1e-3, 4, rule="sklearn", scores=early_stopping)


def test_warm_start_carries_the_count_on():
    X, y = make_classification(150, 5, random_state=0)
    clf = FlexNetClassifier((8,), max_iter=300, n_iter_no_change=3, tol=1e-2, warm_start=True,
                            random_state=0).fit(X, y)
    first = clf.n_iter_
    clf.fit(X, y)  # the count went past n_iter_no_change: one more epoch that does not improve stops it
    assert clf.n_iter_ - first <= 4


# -- random_state=None ------------------------------------------------------------------


def test_random_state_none_follows_numpys_global_seed(blobs):
    X, y = blobs
    kwargs = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=None)
    runs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for seed in (0, 0, 1):
            np.random.seed(seed)
            runs.append(FlexNetClassifier(**kwargs).fit(X, y).predict_proba(X))
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_the_core_never_touches_numpys_global_state(blobs):
    X, y = blobs
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    net = flexnet.Network([6, 8, 3])  # seed None: fresh entropy, not the global state
    flexnet.fit(net, X, y, epochs=1, validation_split=0.2)
    assert np.array_equal(np.random.get_state()[1], before) and np.random.get_state()[2] == 624


# -- multilabel ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def multilabel():
    X, Y = make_multilabel_classification(300, 10, n_classes=4, random_state=0)
    return StandardScaler().fit_transform(X), Y


def test_multilabel_classifier_predicts_indicator_rows(multilabel):
    X, Y = multilabel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = FlexNetClassifier((32,), learning_rate_init=0.01, max_iter=100, random_state=0).fit(X, Y)
        mlp = MLPClassifier((32,), learning_rate_init=0.01, max_iter=100, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 4
    np.testing.assert_array_equal(clf.classes_, np.arange(4))
    assert isinstance(clf.model_.loss_fn, BCEWithLogits)
    pred, proba = clf.predict(X), clf.predict_proba(X)
    assert pred.shape == proba.shape == (300, 4) and set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert clf.score(X, Y) >= mlp.score(X, Y) - 0.1  # subset accuracy, as the MLP's
    assert clf.score(X, Y) == accuracy_score(Y, pred)
    # weights and early stopping work on multilabel rows too
    w = np.random.default_rng(0).uniform(0, 2, 300)
    clf = FlexNetClassifier((16,), max_iter=20, early_stopping=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, Y, sample_weight=w)
    assert len(clf.validation_scores_) == clf.n_iter_
    clf = FlexNetClassifier((16,), random_state=0).partial_fit(X, Y, classes=np.arange(4))
    clf.partial_fit(X, Y)
    assert clf.n_iter_ == 2


def test_multilabel_refusals_say_why(multilabel):
    X, Y = multilabel
    with pytest.raises(ValueError, match="class_weight='balanced' applies to single-label"):
        FlexNetClassifier(class_weight="balanced").fit(X, Y)
    with pytest.raises(ValueError, match="MultiOutputClassifier"):
        FlexNetClassifier().fit(X, np.c_[Y[:, 0], Y[:, 1] * 2])  # multiclass-multioutput
    for other in (Y * 2 - 1, Y * 2):  # two values, which scikit-learn counts as indicators too
        with pytest.raises(ValueError, match=r"FlexNetClassifier: a 2-D y must hold 0/1 indicators.*got the values"):
            FlexNetClassifier().fit(X, other)
    with pytest.raises(ValueError, match=r"classes must be np.arange\(4\)"):
        FlexNetClassifier().partial_fit(X, Y, classes=[0, 1])
    clf = FlexNetClassifier((4,), max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, Y)
        with pytest.raises(ValueError, match="multilabel"):
            clf.partial_fit(X, Y[:, 0])
    assert FlexNetClassifier().__sklearn_tags__().classifier_tags.multi_label
    assert not FlexNetClassifier(class_weight="balanced").__sklearn_tags__().classifier_tags.multi_label
