"""scikit-learn estimators backed by a flexnet network.

:class:`FlexNetClassifier` and :class:`FlexNetRegressor` take the constructor
arguments of scikit-learn's ``MLPClassifier``/``MLPRegressor`` where they mean
the same thing (``hidden_layer_sizes``, ``activation``, ``batch_size``,
``learning_rate_init``, ``max_iter``, ``tol``, ``early_stopping``,
``validation_fraction``, ``n_iter_no_change``, ``random_state``,
``warm_start``...) and add what the MLP lacks: dropout, batch or layer
normalisation, one activation per hidden layer, every :mod:`flexnet.optim`
optimizer (Adam, AdamW, RMSprop...), validation-loss curves, class weights
and label smoothing.

They follow scikit-learn's conventions where its users rely on them:
``fit(X, y, sample_weight=None)`` weights each row's loss as the MLP does;
training stops by the MLP's rule (on the training loss, or on the validation
score with ``early_stopping=True``), so ``n_iter_`` matches it on the same loss
curve; ``random_state=None`` draws its seed from NumPy's global random state,
so ``np.random.seed`` makes runs repeatable; and a 2-D 0/1 ``y`` trains a
multilabel classifier (one sigmoid output per label).

Training runs :func:`flexnet.fit`; the network itself is ``model_``, a plain
:class:`flexnet.Sequential` that can be saved, exported to ONNX or PyTorch.

This module imports scikit-learn; ``import flexnet`` does not import it.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ..nn import activations as _activations
from ..nn.checks import as_float_dtype
from ..nn.dropout import Dropout
from ..nn.init import default_for
from ..nn.layers import Linear
from ..nn.losses import L1, MSE, BCEWithLogits, Huber, SoftmaxCrossEntropy
from ..nn.normalization import BatchNorm1d, LayerNorm
from ..optim import make_optimizer
from ..training.callbacks import Callback, EarlyStopping
from ..training.loop import fit as _fit
from ..training.network import Sequential
from ..training.weights import check_sample_weight

__all__ = ["FlexNetClassifier", "FlexNetRegressor"]

#: scikit-learn's MLP names for activations, next to flexnet's own.
_ACTIVATION_ALIASES = {"logistic": "sigmoid", "identity": None}


class _ValidationScore(Callback):
    """Records the estimator's score (accuracy or R^2, weighted by the held-out
    rows' sample weights) each epoch, and puts it in the epoch's logs as
    ``val_score`` for early stopping to watch."""

    def __init__(self, score):
        self.score = score
        self.weights = None  # the held-out rows' sample weights
        self.scores: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        loop = self.loop
        score = float(self.score(self.net, loop.Xv, loop.yv, self.weights))
        self.scores.append(score)
        if logs is not None:
            logs["val_score"] = score


class _MLPStopping(EarlyStopping):
    """scikit-learn's stopping rule, carrying on the count of an earlier fit
    when ``warm_start`` continues it (as the MLP does)."""

    def __init__(self, monitor, patience, tol, restore, best, wait):
        super().__init__(monitor, patience=patience, min_delta=tol, restore_best_weights=restore,
                         mode="max" if monitor == "val_score" else "min", rule="sklearn")
        self._start = (best, wait)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        best, wait = self._start
        self.best = None if best is None or not np.isfinite(best) else float(best)
        self.wait = wait


class _FlexNetBase(BaseEstimator):
    """What the classifier and the regressor share: building and training the network."""

    def _check_params(self) -> tuple[list[int], list, list[float]]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, Integral) and not isinstance(sizes, bool):
            sizes = [sizes]
        sizes = list(sizes)
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, Integral) or s <= 0:
                raise ValueError(f"hidden_layer_sizes: expected positive integers such as (100,) "
                                 f"or (64, 32), got {self.hidden_layer_sizes!r}")
        acts = self._per_layer(self.activation, "activation", len(sizes), (str, type))
        acts = [_ACTIVATION_ALIASES.get(a, a) if isinstance(a, str) else a for a in acts]
        acts = [None if a is None else _activations.get(a) for a in acts]
        drops = self._per_layer(self.dropout, "dropout", len(sizes), Real)
        for p in drops:
            Dropout(p)  # validates with its own message
        if self.batchnorm and self.layernorm:
            raise ValueError("choose batchnorm=True or layernorm=True, not both")
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if not (isinstance(self.tol, Real) and self.tol >= 0):
            raise ValueError(f"tol: expected a number >= 0, got {self.tol!r}")
        if self.early_stopping and not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction: expected a fraction in (0, 1), got {self.validation_fraction!r}")
        return sizes, acts, drops

    @staticmethod
    def _per_layer(value, name: str, n: int, kind) -> list:
        """One value per hidden layer, from a single value or a list of ``n``."""
        if value is None or isinstance(value, kind) and not isinstance(value, bool):
            return [value] * n
        values = list(value)
        if len(values) != n:
            raise ValueError(f"{name}: expected one value or a list of {n} (one per hidden layer), "
                             f"got {len(values)}: {value!r}")
        return values

    def _random_source(self) -> np.random.Generator:
        """The generator behind every seed of a training run, from ``random_state``.

        An int seeds it directly. None follows scikit-learn's convention: a seed
        is drawn from NumPy's global random state (``np.random.seed`` makes the
        run repeatable), as from a RandomState given here. Only the estimators
        do this; the rest of flexnet never touches the global state.
        """
        rs = self.random_state
        if rs is not None and not isinstance(rs, np.random.RandomState) and (
                isinstance(rs, bool) or not isinstance(rs, Integral)):
            raise ValueError(f"random_state: expected an int, a RandomState or None, got {rs!r}")
        if rs is None or isinstance(rs, np.random.RandomState):
            return np.random.default_rng(check_random_state(rs).randint(0, 2**31 - 1))
        return np.random.default_rng(rs)

    def _build(self, n_in: int, n_out: int, loss, seed: int, dtype) -> Sequential:
        sizes, acts, drops = self._check_params()
        rng = np.random.default_rng(seed)
        layers = []
        widths = [n_in, *sizes]
        for width_in, width, act, p in zip(widths[:-1], widths[1:], acts, drops):
            init = "glorot_normal" if act is None else default_for(act)
            layers.append(Linear(width_in, width, dtype=dtype, seed=rng, init=init))
            if self.batchnorm:
                layers.append(BatchNorm1d(width, dtype=dtype))
            elif self.layernorm:
                layers.append(LayerNorm(width, dtype=dtype))
            if act is not None:
                layers.append(act())
            if p:
                layers.append(Dropout(p))
        last_act = acts[-1] if acts else None
        layers.append(Linear(widths[-1], n_out, dtype=dtype, seed=rng,
                             init="glorot_normal" if last_act is None else default_for(last_act)))
        return Sequential(layers, loss, dtype=dtype, seed=rng)

    def _batch_size(self, n: int) -> int:
        bs = min(200, n) if self.batch_size == "auto" else self.batch_size
        if isinstance(bs, bool) or not isinstance(bs, Integral) or bs <= 0:
            raise ValueError(f"batch_size: expected 'auto' or a positive integer, got {self.batch_size!r}")
        bs = min(int(bs), n)
        if self.batchnorm:
            if n < 2:
                raise ValueError("batchnorm=True needs at least 2 samples to train on, got 1 sample")
            while n % bs == 1:  # batch norm cannot train on a last batch of one row
                bs += 1
        return bs

    def _train(self, X, y, sample_weight, *, epochs: int, incremental: bool, loss_factory, n_out: int):
        """Build (if needed) and train ``model_`` for ``epochs`` epochs on ``(X, y)``."""
        hidden = self._check_params()[0]
        where = f"{type(self).__name__}.{'partial_fit' if incremental else 'fit'}(sample_weight)"
        sample_weight = check_sample_weight(sample_weight, len(X), where)
        fresh = self._fresh(incremental)
        if fresh:
            self._rng = self._random_source()
            net_seed = int(self._rng.integers(2**31 - 1))
            self.model_ = self._build(X.shape[1], n_out, loss_factory(), net_seed, X.dtype)
            opt_kwargs = {"lr": self.learning_rate_init}
            if self.weight_decay:
                opt_kwargs["weight_decay"] = self.weight_decay
            self._optimizer = make_optimizer(self.solver, **opt_kwargs)
            self.loss_curve_, self.val_loss_curve_, self.validation_scores_ = [], [], []
            self.n_iter_, self.t_ = 0, 0
            self.best_loss_ = None if self.early_stopping else np.inf
            self.best_validation_score_ = -np.inf if self.early_stopping else None
            self._no_improvement_count = 0
        # A new seed per call, so each partial_fit shuffles in a new order.
        fit_seed = self._fit_seed = int(self._rng.integers(2**31 - 1))
        callbacks = []
        scorer = _ValidationScore(self._net_score)
        use_validation = self.early_stopping and not incremental
        stopper = None
        if not incremental:
            # scikit-learn's rule: on the validation score with early stopping,
            # else on the training loss, continuing the count of a warm start.
            count = getattr(self, "_no_improvement_count", 0)
            if use_validation:
                best = self.best_validation_score_ if self.best_validation_score_ is not None else -np.inf
                stopper = _MLPStopping("val_score", self.n_iter_no_change, self.tol,
                                       self.restore_best_weights, best, count)
                callbacks = [scorer, stopper]
            else:
                best = self.best_loss_ if self.best_loss_ is not None else np.inf
                stopper = _MLPStopping("loss", self.n_iter_no_change, self.tol, False, best, count)
                callbacks = [stopper]
        validation = None
        if use_validation:
            X, Xv, y, yv, sample_weight, wv = self._split(X, y, sample_weight, fit_seed)
            # (rows all of weight 0 give no weighted val_loss: it is then unweighted)
            validation = (Xv, yv) if wv is None or not wv.any() else (Xv, yv, wv)
            scorer.weights = wv
        result = _fit(
            self.model_, X, y, epochs=epochs, batch_size=self._batch_size(len(X)),
            optimizer=self._optimizer, validation_data=validation, shuffle=self.shuffle,
            callbacks=callbacks, seed=fit_seed, progress=bool(self.verbose),
            sample_weight=sample_weight,
        )
        history = result.history
        done = len(history["loss"])
        self.n_iter_ += done
        self.t_ += done * int(result.params.get("n_train", len(X)))
        self.loss_curve_ += list(history["loss"])
        self.val_loss_curve_ += list(history.get("val_loss", []))
        if stopper is not None:
            self._no_improvement_count = stopper.wait
        if use_validation:  # the rule's best: a NaN score is never the best, as in the MLP
            self.validation_scores_ += scorer.scores
            self.best_validation_score_ = -np.inf if stopper.best is None else stopper.best
        elif stopper is not None:
            self.best_loss_ = np.inf if stopper.best is None else stopper.best
        else:
            before = np.inf if self.best_loss_ is None else self.best_loss_
            self.best_loss_ = float(np.nanmin([before, *history["loss"]]))
        self.history_ = history
        # The fitted attributes MLPClassifier / MLPRegressor also have.
        self.loss_ = self.loss_curve_[-1]
        self.n_layers_ = len(hidden) + 2  # input, hidden layers, output, counted as they do
        self.n_outputs_ = n_out
        self.out_activation_ = self._out_activation()
        if stopper is not None and not stopper.stopped_epoch:
            warnings.warn(f"{type(self).__name__}: max_iter={self.max_iter} reached and the "
                          "optimization has not converged yet; raise max_iter or learning_rate_init",
                          ConvergenceWarning, stacklevel=3)

    def _out_activation(self) -> str:
        return "identity"

    def _split(self, X, y, sample_weight, seed: int):
        """Hold out ``validation_fraction`` of the rows (at least one), stratified
        by class for a single-label classifier when every class has two rows or
        more; each row keeps its sample weight. Returns
        ``X, X_val, y, y_val, w, w_val`` (the weights None when there are none)."""
        if len(X) < 2:
            raise ValueError("early_stopping=True needs at least 2 samples (one to validate on), "
                             "got 1 sample")
        stratify = None
        if isinstance(self, ClassifierMixin) and y.ndim == 1 and np.unique(y, return_counts=True)[1].min() >= 2:
            stratify = y
        arrays = (X, y) if sample_weight is None else (X, y, sample_weight)
        try:
            parts = train_test_split(*arrays, test_size=self.validation_fraction, random_state=seed,
                                     stratify=stratify)
        except ValueError:  # too few rows to give every class a validation row
            parts = train_test_split(*arrays, test_size=self.validation_fraction, random_state=seed)
        if sample_weight is None:
            parts += [None, None]
        X, Xv, y, yv, w, wv = parts
        if w is not None and not w.any():
            raise ValueError(f"{type(self).__name__}.fit(sample_weight): every row left for training "
                             "after holding out validation_fraction has weight zero; give more rows "
                             "a weight > 0 or lower validation_fraction")
        if wv is not None and not wv.any():
            warnings.warn(f"{type(self).__name__}.fit: every validation row held out by early_stopping "
                          "has sample weight zero, so the validation score is undefined (NaN) and "
                          "cannot stop training; raise validation_fraction or give more rows a weight > 0",
                          UserWarning, stacklevel=4)
        return X, Xv, y, yv, w, wv

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weights of each Linear layer, (in, out), as in ``MLPClassifier.coefs_``."""
        return [layer.W for layer in self.model_.layers if isinstance(layer, Linear)]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Biases of each Linear layer, (out,), as in ``MLPClassifier.intercepts_``."""
        return [layer.b.reshape(-1) for layer in self.model_.layers if isinstance(layer, Linear)]

    def _fresh(self, incremental: bool) -> bool:
        """Whether this fit starts a new network (else it continues ``model_``)."""
        return not hasattr(self, "model_") or not (incremental or self.warm_start)

    def _fit_dtype(self, incremental: bool):
        """The dtype X is converted to: the network's once it exists, else
        ``dtype``, else X's own when float32 and float64 otherwise (as the MLP)."""
        if not self._fresh(incremental):
            return self.model_.dtype
        if self.dtype is None:
            return (np.float64, np.float32)
        return as_float_dtype(self.dtype, f"{type(self).__name__}(dtype)")

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=self.model_.dtype)
        return self.model_.forward(X)


_COMMON_DOC = """
    Args:
        hidden_layer_sizes: width of each hidden layer, e.g. ``(64, 32)``.
        activation: one name for every hidden layer, or a list with one per
            layer: "relu", "leaky_relu", "tanh", "sigmoid" (or "logistic"),
            "gelu", "identity"; a flexnet activation class works too.
        dropout: dropout probability after each hidden activation (one value
            or one per layer; 0 adds none).
        batchnorm: a BatchNorm1d after each hidden Linear.
        layernorm: a LayerNorm there instead.
        solver: the optimizer's name: "adam", "adamw", "sgd", "rmsprop", "adagrad".
        learning_rate_init: its learning rate.
        weight_decay: its ``weight_decay`` (PyTorch's convention: L2 added to
            the gradient, decoupled for "adamw").
        batch_size: rows per step, or "auto" for ``min(200, n_samples)``.
        max_iter: the most epochs ``fit`` runs.
        shuffle: new order of the rows every epoch.
        random_state: int, RandomState or None; fixes weights, dropout, order
            and the validation split. None follows scikit-learn: the seed is
            drawn from NumPy's global random state at each ``fit``, so
            ``np.random.seed(0)`` before it makes the run repeatable.
        tol, n_iter_no_change: scikit-learn's MLP rule. Each epoch that does
            not beat the best value so far by more than ``tol`` counts one,
            any epoch that does resets the count; training stops once the count
            exceeds ``n_iter_no_change``. The value is the training loss, or
            with ``early_stopping`` the validation score (accuracy, or R^2).
            On the same loss curve ``n_iter_`` is the MLP's.
        early_stopping: hold out ``validation_fraction`` of the rows (stratified
            for single-label classifiers; with their sample weights) and stop
            on their score.
        restore_best_weights: with early stopping, end with the weights of the
            epoch of best validation score (as the MLP always does).
        warm_start: ``fit`` continues from the current weights and optimizer.
        dtype: "float32" or "float64" for the network; None (default) follows
            X as scikit-learn's MLP does: float32 stays float32, anything
            else becomes float64.
        verbose: show a progress bar.

    Fitted attributes:
        model_: the trained :class:`flexnet.Sequential`.
        n_features_in_, feature_names_in_ (when X has column names), n_iter_,
        t_ (training samples seen), loss_curve_, val_loss_curve_ (early
        stopping), validation_scores_ and best_validation_score_ (early
        stopping) or best_loss_, history_ (the last fit's History
        dictionary), coefs_ and intercepts_ (as in the MLP).
"""


class FlexNetClassifier(ClassifierMixin, _FlexNetBase):
    __doc__ = """A neural-network classifier: softmax cross-entropy on a flexnet network.

With a 2-D ``y`` of 0/1 indicators (one column per label, as
``MultiLabelBinarizer`` gives) it is a multilabel classifier, as
MLPClassifier is: one sigmoid output per label trained with binary
cross-entropy (:class:`flexnet.nn.losses.BCEWithLogits`); ``predict`` gives
the indicator matrix, ``predict_proba`` each label's probability, and
``classes_`` is ``np.arange(n_labels)``.
""" + _COMMON_DOC + """        classes_: the class labels, sorted (``np.arange(n_labels)`` for multilabel y).
        class_weight: None, "balanced", or a dict {label: weight}; weights the
            loss per class (a weighted mean, as PyTorch's CrossEntropyLoss).
        label_smoothing: in [0, 1), softens the targets.
"""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, dropout=0.0, batchnorm=False,
                 layernorm=False, solver="adam", learning_rate_init=0.001, weight_decay=0.0,
                 batch_size="auto", max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 restore_best_weights=True, class_weight=None, label_smoothing=0.0,
                 warm_start=False, dtype=None, verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.batchnorm = batchnorm
        self.layernorm = layernorm
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.restore_best_weights = restore_best_weights
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.warm_start = warm_start
        self.dtype = dtype
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # multilabel y trains one sigmoid per label, which class weights and
        # label smoothing do not apply to
        tags.classifier_tags.multi_label = self.class_weight is None and not self.label_smoothing
        return tags

    def fit(self, X, y, sample_weight=None):
        """Train on ``(X, y)`` for up to ``max_iter`` epochs; returns self.

        ``sample_weight`` (one weight >= 0 per row, or None) weights each row's
        loss as MLPClassifier does: every batch minimises the weighted mean of
        its rows' losses, and with ``early_stopping`` the held-out rows keep
        their weights in the validation score. Weights all equal train exactly
        as None does.

        Shapes:
            X: (n_samples, n_features); y: (n_samples,) labels of any type, or
            (n_samples, n_labels) 0/1 indicators for multilabel data.
        """
        return self._fit(X, y, sample_weight, incremental=False, classes=None)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``(X, y)``, keeping weights and optimizer state; returns self.

        The first call needs ``classes``: every label that will ever be seen
        (for multilabel data, ``np.arange(n_labels)``).
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _fit(self, X, y, sample_weight, *, incremental: bool, classes):
        first = not (incremental and hasattr(self, "model_"))
        X, y = validate_data(self, X, y, reset=first, dtype=self._fit_dtype(incremental),
                             multi_output=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        multilabel = y.ndim == 2
        if multilabel and type_of_target(y) != "multilabel-indicator":
            raise ValueError(f"{type(self).__name__}: a 2-D y must hold 0/1 indicators, one column per "
                             f"label (multilabel); got {type_of_target(y)} targets. For several "
                             "multi-class outputs use sklearn.multioutput.MultiOutputClassifier")
        if multilabel and not np.isin(y, (0, 1)).all():  # scikit-learn calls any two values indicators
            raise ValueError(f"{type(self).__name__}: a 2-D y must hold 0/1 indicators, one column per "
                             f"label (multilabel); got the values {np.unique(y).tolist()}")
        if not self._fresh(incremental) and multilabel != getattr(self, "_multilabel", False):
            now, then = ("multilabel", "single-label") if multilabel else ("single-label", "multilabel")
            raise ValueError(f"{type(self).__name__}: y is {now} now, but the network was built for "
                             f"{then} y; fit a new estimator")
        if first:
            if incremental and classes is None:
                raise ValueError("partial_fit: the first call needs classes=, every label that "
                                 "will be seen, e.g. classes=np.unique(y_all)")
            if multilabel:
                self.classes_ = np.arange(y.shape[1])
                if classes is not None and not np.array_equal(np.asarray(classes), self.classes_):
                    raise ValueError(f"partial_fit: for multilabel y with {y.shape[1]} columns, "
                                     f"classes must be np.arange({y.shape[1]}), got {classes!r}")
            else:
                self.classes_ = np.unique(classes if classes is not None else y)
                if len(self.classes_) < 2:
                    raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes, "
                                     f"got 1 class: {self.classes_[0]!r}")
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"partial_fit: classes={classes!r} differ from the first call's "
                             f"{self.classes_!r}")
        if multilabel:
            if y.shape[1] != len(self.classes_):
                raise ValueError(f"y has {y.shape[1]} label columns, the network was built for "
                                 f"{len(self.classes_)}")
            target = y.astype(X.dtype)
        else:
            unseen = np.setdiff1d(y, self.classes_)
            if len(unseen):
                raise ValueError(f"y holds labels {unseen[:5]!r} that are not in classes_ {self.classes_!r}")
            target = np.searchsorted(self.classes_, y)
        if self._fresh(incremental):
            self._multilabel = multilabel
        self._train(X, target, sample_weight, epochs=1 if incremental else self.max_iter,
                    incremental=incremental, loss_factory=lambda: self._loss(y),
                    n_out=len(self.classes_))
        return self

    def _loss(self, y):
        if getattr(self, "_multilabel", False):
            for name in ("class_weight", "label_smoothing"):
                if getattr(self, name):
                    raise ValueError(f"{name}={getattr(self, name)!r} applies to single-label classes; "
                                     "multilabel y (one sigmoid output per label) takes neither")
            return BCEWithLogits()
        weights = None
        if self.class_weight is not None:
            if isinstance(self.class_weight, str) and self.class_weight != "balanced":
                raise ValueError(f"class_weight: expected None, 'balanced' or a dict, got {self.class_weight!r}")
            present = np.isin(self.classes_, y)
            if self.class_weight == "balanced" and not present.all():
                raise ValueError("class_weight='balanced' needs every class in the first batch; "
                                 "pass a dict {label: weight} for partial_fit")
            weights = compute_class_weight(self.class_weight, classes=self.classes_, y=y).tolist()
        return SoftmaxCrossEntropy(label_smoothing=self.label_smoothing, class_weights=weights)

    def _out_activation(self) -> str:
        return "logistic" if getattr(self, "_multilabel", False) else "softmax"

    def _net_score(self, net, X, y, sample_weight=None) -> float:
        """Accuracy (for multilabel y, the share of rows with every label right),
        weighted by the rows' sample weights times their class weights, as
        scikit-learn weights a row by both."""
        hit = net.predict(X) == y
        if hit.ndim == 2:
            hit = hit.all(axis=1)
        class_weights = getattr(net.loss_fn, "class_weights", None)
        if class_weights is not None:
            sample_weight = class_weights[y] * (1.0 if sample_weight is None else sample_weight)
        if sample_weight is not None and not np.any(sample_weight):
            return float("nan")  # no row counts: no score (scikit-learn's rule then resets its count)
        return float(np.average(hit, weights=sample_weight))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``; for
        multilabel data each label's own probability (the rows need not sum to 1).

        Shapes:
            X: (n_samples, n_features) -> (n_samples, n_classes) or (n_samples, n_labels).
        """
        z = self._outputs(X)
        return self.model_.loss_fn.proba(z)

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class label for each row; for multilabel data the
        0/1 indicator matrix (a label is on when its probability is above 0.5)."""
        z = self._outputs(X)
        if getattr(self, "_multilabel", False):
            return (z > 0).astype(np.int64)
        return self.classes_[z.argmax(axis=1)]


class FlexNetRegressor(RegressorMixin, _FlexNetBase):
    __doc__ = """A neural-network regressor on a flexnet network (one or several targets).
""" + _COMMON_DOC + """        loss: "squared_error" (mean squared error), "absolute_error" or "huber".
"""

    _LOSSES = {"squared_error": MSE, "absolute_error": L1, "huber": Huber}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, dropout=0.0, batchnorm=False,
                 layernorm=False, solver="adam", learning_rate_init=0.001, weight_decay=0.0,
                 batch_size="auto", max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 restore_best_weights=True, loss="squared_error", warm_start=False, dtype=None,
                 verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.batchnorm = batchnorm
        self.layernorm = layernorm
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.restore_best_weights = restore_best_weights
        self.loss = loss
        self.warm_start = warm_start
        self.dtype = dtype
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y, sample_weight=None):
        """Train on ``(X, y)`` for up to ``max_iter`` epochs; returns self.

        ``sample_weight`` (one weight >= 0 per row, or None) weights each row's
        loss as MLPRegressor does: every batch minimises the weighted mean of
        its rows' losses, and with ``early_stopping`` the held-out rows keep
        their weights in the validation R^2.

        Shapes:
            X: (n_samples, n_features); y: (n_samples,) or (n_samples, n_targets).
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, keeping weights and optimizer state; returns self."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _fit(self, X, y, sample_weight, *, incremental: bool):
        if self.loss not in self._LOSSES:
            raise ValueError(f"loss: expected one of {sorted(self._LOSSES)}, got {self.loss!r}")
        first = not (incremental and hasattr(self, "model_"))
        X, y = validate_data(self, X, y, reset=first, dtype=self._fit_dtype(incremental),
                             multi_output=True, y_numeric=True)
        y = np.asarray(y, dtype=X.dtype)
        if first:
            self._y_shape = y.shape[1:]
        elif y.shape[1:] != self._y_shape:
            raise ValueError(f"partial_fit: y has shape {y.shape[1:]} per row, the first call had {self._y_shape}")
        n_out = 1 if y.ndim == 1 else y.shape[1]
        self._train(X, y.reshape(len(y), n_out), sample_weight, epochs=1 if incremental else self.max_iter,
                    incremental=incremental, loss_factory=self._LOSSES[self.loss], n_out=n_out)
        return self

    def _net_score(self, net, X, y, sample_weight=None) -> float:
        return float(r2_score(y, net.forward(X), sample_weight=sample_weight))

    def predict(self, X) -> np.ndarray:
        """Predicted targets, shaped like the ``y`` given to ``fit``.

        Shapes:
            X: (n_samples, n_features) -> (n_samples,) or (n_samples, n_targets).
        """
        out = self._outputs(X)
        return out.reshape((len(out),) + self._y_shape)
