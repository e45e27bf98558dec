"""FlexNetClassifier and FlexNetRegressor: scikit-learn's own checks, and what the MLP lacks."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import flexnet
from flexnet.bridges.estimators import FlexNetClassifier, FlexNetRegressor

#: Checks that cannot pass, with the reason; keep this short (docs/bridges.md lists it too).
EXPECTED_FAILURES = {
    "check_regressor_multioutput": "dtype='float32' keeps predictions in float32; scikit-learn "
    "expects float64 from a regressor (dtype=None, the default, passes)",
}
#: Weighting a row by k equals repeating it k times for the plain network (checked);
#: not where a row's weight cannot reach everything the row changes.
NOT_REPEATS = {
    "batchnorm": "a row of weight 0 still moves the batch statistics of BatchNorm1d",
    "dropout": "dropout draws one mask per row, so k repeated rows get k masks",
    "early_stopping": "the held-out validation rows of the weighted and the repeated data differ "
                      "(as for MLPClassifier)",
}

ESTIMATORS = [
    FlexNetClassifier(),
    FlexNetRegressor(),
    # Everything the MLP lacks, through the same checks:
    FlexNetClassifier(hidden_layer_sizes=(16, 8), activation=["tanh", "gelu"], dropout=[0.1, 0.0],
                      batchnorm=True, solver="adamw", class_weight="balanced", label_smoothing=0.05),
    FlexNetRegressor(hidden_layer_sizes=(32,), activation="leaky_relu", layernorm=True,
                     solver="rmsprop", learning_rate_init=0.003, loss="huber", early_stopping=True,
                     dtype="float32"),
    # scikit-learn's stopping rule on the validation score:
    FlexNetClassifier(early_stopping=True),
]


def expected_failures(estimator):
    failures = {}
    if isinstance(estimator, FlexNetRegressor) and estimator.dtype == "float32":
        failures.update(EXPECTED_FAILURES)
    if isinstance(estimator, FlexNetClassifier) and estimator.early_stopping:
        failures["check_class_weight_classifiers"] = (
            "its 50 training rows leave 5 to validate on: their score stops rising within a few "
            "epochs, and the rule stops the network undertrained (MLPClassifier, without "
            "class_weight, does not run this check)")
    reasons = [why for name, why in NOT_REPEATS.items() if estimator.get_params()[name]]
    if reasons:
        failures["check_sample_weight_equivalence_on_dense_data"] = "; ".join(reasons)
    return failures


#: Checks scikit-learn itself skips for these estimators, so they are left out rather than
#: run as skips: ``check_array_api_input`` needs SCIPY_ARRAY_API=1 set before SciPy is
#: imported (it runs in a subprocess below); the multilabel ``decision_function`` check
#: applies only to estimators with that method (MLPClassifier skips it too).
NOT_RUN_HERE = ("check_array_api_input", "check_classifiers_multilabel_output_format_decision_function")


def _without_array_api(decorator):
    """The checks minus :data:`NOT_RUN_HERE`."""
    names, params = decorator.args
    kept = [p for p in params  # (estimator, check) pairs; pytest.param for expected failures
            if not any(name in str(getattr(p, "values", p)[1]) for name in NOT_RUN_HERE)]
    assert len(kept) < len(params)
    return pytest.mark.parametrize(names, kept, **decorator.kwargs)


@_without_array_api(parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures))
def test_scikit_learn_check_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_array_api_dispatch_check_in_a_fresh_interpreter():
    # As check_estimator runs it for an estimator without Array API support:
    # NumPy inputs with array API dispatch on must give the same results.
    code = (
        "from sklearn.utils.estimator_checks import check_array_api_input\n"
        "from flexnet.bridges.estimators import FlexNetClassifier, FlexNetRegressor\n"
        "for est in (FlexNetClassifier(random_state=0), FlexNetRegressor(random_state=0)):\n"
        "    check_array_api_input(type(est).__name__, est, array_namespace='numpy',\n"
        "                          expect_only_array_outputs=False)\n"
        "print('passed')\n"
    )
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "passed"


# -- in scikit-learn's tools ---------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


def test_pipeline_learns_digits(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), FlexNetClassifier((32,), batch_size=32, learning_rate_init=0.01,
                                                           max_iter=20, random_state=0))
    pipe.fit(X[:450], y[:450])
    assert pipe.score(X[450:], y[450:]) > 0.85  # MLPClassifier, same settings: 0.86
    assert pipe.predict_proba(X[450:460]).shape == (10, 10)


def test_cross_val_score(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), FlexNetClassifier((32,), batch_size=32, learning_rate_init=0.01,
                                                           max_iter=20, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8  # MLPClassifier: 0.84 to 0.895


def test_grid_search_over_flexnet_options(digits):
    X, y = digits
    grid = GridSearchCV(
        FlexNetClassifier(batch_size=32, learning_rate_init=0.01, max_iter=15, random_state=0),
        {"hidden_layer_sizes": [(16,), (32,)], "dropout": [0.0, 0.2]}, cv=2)
    grid.fit(X / 16, y)
    assert set(grid.best_params_) == {"hidden_layer_sizes", "dropout"}
    assert grid.best_score_ > 0.8
    assert grid.best_estimator_.score(X / 16, y) > 0.9


def test_regressor_in_a_pipeline_and_cross_validation():
    X, y = make_regression(200, 5, noise=1.0, random_state=0)
    y = y / y.std()
    pipe = make_pipeline(StandardScaler(), FlexNetRegressor((32,), max_iter=150, learning_rate_init=0.01,
                                                            random_state=0))
    assert cross_val_score(pipe, X, y, cv=3).min() > 0.9


# -- what the MLP lacks ----------------------------------------------------------------


def test_layers_follow_the_per_layer_options():
    X, y = make_classification(60, 6, random_state=0)
    clf = FlexNetClassifier((8, 4), activation=["tanh", "gelu"], dropout=[0.2, 0.0], batchnorm=True,
                            max_iter=3, random_state=0).fit(X, y)
    assert [type(l).__name__ for l in clf.model_.layers] == [
        "Linear", "BatchNorm1d", "Tanh", "Dropout", "Linear", "BatchNorm1d", "GELU", "Linear"]
    assert [w.shape for w in clf.coefs_] == [(6, 8), (8, 4), (4, 2)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (4,), (2,)]


def test_early_stopping_restores_the_best_weights():
    X, y = make_classification(300, 10, n_informative=4, flip_y=0.3, random_state=1)
    kwargs = dict(hidden_layer_sizes=(64,), learning_rate_init=0.03, max_iter=200, early_stopping=True,
                  n_iter_no_change=5, random_state=0)
    clf = FlexNetClassifier(**kwargs).fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ == len(clf.val_loss_curve_) == len(clf.loss_curve_)
    assert clf.n_iter_ < 200  # stopped early
    assert np.argmax(scores) < len(scores) - 1  # ... after the validation score stopped rising
    # The held-out rows, as the estimator drew them:
    _, Xv, _, yv, _, _ = clf._split(X, y, None, clf._fit_seed)
    assert clf.score(Xv, yv) == clf.best_validation_score_ == max(scores)
    last = FlexNetClassifier(**kwargs, restore_best_weights=False).fit(X, y)
    assert last.score(Xv, yv) == scores[-1]
    assert clf.best_loss_ is None


def test_class_weight_balanced_lifts_the_rare_class():
    X, y = make_classification(400, 5, weights=[0.9, 0.1], class_sep=0.5, random_state=3)
    plain = FlexNetClassifier((16,), max_iter=60, random_state=0).fit(X, y)
    balanced = FlexNetClassifier((16,), max_iter=60, random_state=0, class_weight="balanced").fit(X, y)
    recall = [np.mean(m.predict(X)[y == 1] == 1) for m in (plain, balanced)]
    assert recall[1] > recall[0]
    weights = balanced.model_.loss_fn.class_weights
    np.testing.assert_allclose(weights, len(y) / (2 * np.bincount(y)))
    d = FlexNetClassifier(class_weight={1: 5.0}, max_iter=1).fit(X, y)
    np.testing.assert_allclose(d.model_.loss_fn.class_weights, [1.0, 5.0])


@pytest.mark.parametrize("solver", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_every_solver_learns(solver):
    X, y = make_classification(200, 6, random_state=0)
    clf = FlexNetClassifier((16,), solver=solver, learning_rate_init=0.01, batch_size=20, max_iter=30,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X, y) > 0.8


def test_fitted_attributes_match_mlps(capsys):
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    X, y = make_classification(120, 5, n_classes=3, n_informative=3, random_state=0)
    Xr, yr = make_regression(120, 5, n_targets=2, random_state=0)
    pairs = [(FlexNetClassifier((8, 4), max_iter=5, random_state=0), MLPClassifier(hidden_layer_sizes=(8, 4), max_iter=5), X, y),
             (FlexNetRegressor((8,), max_iter=5, random_state=0), MLPRegressor(hidden_layer_sizes=(8,), max_iter=5), Xr, yr)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for ours, theirs, X_, y_ in pairs:
            ours.fit(X_, y_)
            theirs.fit(X_, y_)
            assert (ours.n_layers_, ours.n_outputs_) == (theirs.n_layers_, theirs.n_outputs_)
            assert ours.loss_ == ours.loss_curve_[-1]
    assert pairs[0][0].out_activation_ == "softmax" == pairs[0][1].out_activation_
    assert pairs[1][0].out_activation_ == "identity" == pairs[1][1].out_activation_


def test_partial_fit_continues_training():
    X, y = make_classification(200, 6, n_classes=3, n_informative=4, random_state=0)
    labels = np.array(["a", "b", "c"])[y]
    clf = FlexNetClassifier((16,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="first call needs classes="):
        clf.partial_fit(X, labels)
    for i in range(15):
        clf.partial_fit(X[:100], labels[:100], classes=["a", "b", "c"])
    assert clf.n_iter_ == 15 and clf.t_ == 1500
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert list(clf.classes_) == ["a", "b", "c"] and set(clf.predict(X)) <= {"a", "b", "c"}
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:5], ["d"] * 5)


def test_warm_start_keeps_weights_and_curves():
    X, y = make_regression(100, 4, random_state=0)
    reg = FlexNetRegressor((8,), max_iter=5, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
        net = reg.model_
        reg.fit(X, y)
    assert reg.model_ is net and reg.n_iter_ == 10 and len(reg.loss_curve_) == 10


def test_dtype_follows_x_unless_given():
    X, y = make_classification(50, 4, random_state=0)
    assert FlexNetClassifier(max_iter=1).fit(X, y).model_.dtype == np.float64
    assert FlexNetClassifier(max_iter=1).fit(X.astype(np.float32), y).model_.dtype == np.float32
    assert FlexNetClassifier(max_iter=1).fit(X.astype(np.int64), y).model_.dtype == np.float64
    clf = FlexNetClassifier(max_iter=1, dtype="float32").fit(X, y)
    assert clf.model_.dtype == np.float32 and clf.predict_proba(X).dtype == np.float32


def test_feature_names_from_a_dataframe():
    X, y = make_classification(50, 3, n_informative=2, n_redundant=0, random_state=0)
    df = pd.DataFrame(X, columns=["height", "width", "depth"])
    clf = FlexNetClassifier(max_iter=2).fit(df, y)
    assert list(clf.feature_names_in_) == ["height", "width", "depth"]
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


def test_regressor_keeps_the_shape_of_y():
    X, y = make_regression(60, 3, n_targets=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert FlexNetRegressor(max_iter=2).fit(X, y).predict(X).shape == (60, 2)
        assert FlexNetRegressor(max_iter=2).fit(X, y[:, :1]).predict(X).shape == (60, 1)
        assert FlexNetRegressor(max_iter=2).fit(X, y[:, 0]).predict(X).shape == (60,)


def test_fitted_network_exports_to_onnx(tmp_path):
    import onnxruntime as ort

    X, y = make_classification(80, 5, random_state=0)
    clf = FlexNetClassifier((8,), batchnorm=True, dropout=0.2, max_iter=5, random_state=0).fit(X, y)
    flexnet.to_onnx(clf.model_, tmp_path / "clf.onnx", probabilities=True)
    sess = ort.InferenceSession(str(tmp_path / "clf.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input": X})[0], clf.predict_proba(X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("params, message", [
    ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes: expected positive integers"),
    ({"hidden_layer_sizes": (4, 4), "activation": ["relu"]}, "activation: expected one value or a list of 2"),
    ({"activation": "swish"}, "unknown name 'swish'"),
    ({"dropout": 1.0}, r"Dropout\(p\)"),
    ({"batchnorm": True, "layernorm": True}, "not both"),
    ({"solver": "lbfgs"}, "unknown name 'lbfgs'"),
    ({"class_weight": "even"}, "class_weight: expected None, 'balanced' or a dict"),
    ({"dtype": "float16"}, r"FlexNetClassifier\(dtype\)"),
])
def test_bad_settings_are_named(params, message):
    X, y = make_classification(30, 4, random_state=0)
    with pytest.raises((ValueError, TypeError), match=message):
        FlexNetClassifier(max_iter=1, **params).fit(X, y)
