"""Where FlexNetClassifier and MLPClassifier stop on scaled digits, with the same tol and n_iter_no_change.

    python benchmarks/early_stopping.py [--tol 1e-4] [--n-iter-no-change 10] [--max-iter 200]

Both train on the 1,797 digits, standardised, from ``random_state=0`` (their
weights and batches differ, so do their loss curves). The table gives each
estimator's ``n_iter_``, then trains it again for all ``max_iter`` epochs
(``n_iter_no_change=max_iter``) and replays that whole loss curve through
the stopping rules: scikit-learn's own ``_update_no_improvement_count`` (on a
stand-in object), and flexnet's ``EarlyStopping`` with ``rule="sklearn"`` and
with its default ``rule="keras"`` (the estimators' rule before). The same curve
stops at the same epoch under scikit-learn's rule and ``rule="sklearn"``, and
that epoch is the estimator's ``n_iter_``. ``--early-stopping`` does the same on the
validation score.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np


def sklearn_stop(values, tol: float, n_iter_no_change: int, *, scores: bool = False) -> int:
    """The epoch (from 1) at which scikit-learn's MLP stops on ``values`` (its
    training losses, or with ``scores`` its validation scores), or ``len(values)``."""
    from sklearn.neural_network import MLPClassifier

    stub = MLPClassifier(tol=tol, n_iter_no_change=n_iter_no_change)
    stub.loss_curve_, stub.validation_scores_ = [], []
    stub.best_loss_, stub.best_validation_score_ = np.inf, -np.inf
    stub._no_improvement_count = 0
    stub.coefs_, stub.intercepts_ = [], []
    feed = iter(values)
    stub._score = lambda X, y, sample_weight=None: next(feed)  # the validation score of this epoch
    for epoch, value in enumerate(values, 1):
        if not scores:
            stub.loss_curve_.append(value)
        stub._update_no_improvement_count(scores, None, None, None)
        if stub._no_improvement_count > n_iter_no_change:
            return epoch
    return len(values)


def flexnet_stop(values, tol: float, patience: int, *, rule: str, scores: bool = False) -> int:
    """The epoch (from 1) at which ``EarlyStopping(rule=rule)`` stops on ``values``, or ``len(values)``."""
    from flexnet.training.callbacks import EarlyStopping

    class Loop:
        stop_training = False

    stop = EarlyStopping("val_score" if scores else "loss", patience=patience, min_delta=tol,
                         restore_best_weights=False, mode="max" if scores else "min", rule=rule)
    loop = Loop()
    stop.set_context(None, loop)
    stop.on_train_begin({})
    for epoch, value in enumerate(values, 1):
        stop.on_epoch_end(epoch, {"val_score" if scores else "loss": value})
        if loop.stop_training:
            return epoch
    return len(values)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--n-iter-no-change", type=int, default=10)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--early-stopping", action="store_true")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    from flexnet.bridges.estimators import FlexNetClassifier

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    kwargs = dict(tol=args.tol, n_iter_no_change=args.n_iter_no_change, max_iter=args.max_iter,
                  early_stopping=args.early_stopping, random_state=0)
    scores = args.early_stopping
    print(f"scaled digits, tol={args.tol}, n_iter_no_change={args.n_iter_no_change}, "
          f"max_iter={args.max_iter}, early_stopping={args.early_stopping}")
    print(f"{'estimator':<18} {'n_iter_':>7} | its whole curve replayed: {'sklearn rule':>12} "
          f"{'rule=sklearn':>12} {'rule=keras':>10}")
    for make in (MLPClassifier, FlexNetClassifier):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = make(**kwargs).fit(X, y)
            # the same run without stopping: its curve begins as the stopped one's
            whole = make(**{**kwargs, "n_iter_no_change": args.max_iter}).fit(X, y)
        curve = whole.validation_scores_ if scores else whole.loss_curve_
        stops = (sklearn_stop(curve, args.tol, args.n_iter_no_change, scores=scores),
                 flexnet_stop(curve, args.tol, args.n_iter_no_change, rule="sklearn", scores=scores),
                 flexnet_stop(curve, args.tol, args.n_iter_no_change, rule="keras", scores=scores))
        print(f"{make.__name__:<18} {est.n_iter_:>7} | {'':>25} {stops[0]:>12} {stops[1]:>12} "
              f"{stops[2]:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
