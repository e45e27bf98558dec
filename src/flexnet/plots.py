"""Figures, drawn with matplotlib (an optional extra: ``pip install "flexnet[plot]"``)."""

from __future__ import annotations

import os

import numpy as np

from .data.extras import optional
from .filesystem import atomic_write


def _pyplot(show: bool = False):
    """Import pyplot, on a file-only backend unless a window is wanted."""
    matplotlib = optional("matplotlib", "drawing figures")
    if not show:
        matplotlib.use("Agg")
    return optional("matplotlib.pyplot", "drawing figures")


def _matplotlib(module: str):
    """A matplotlib module (``"ticker"``, ``"patches"``...), through the optional-package helper."""
    return optional(f"matplotlib.{module}", "drawing figures")


def _finish(fig, plt, path, show: bool):
    """Save (whole or not at all: a full disk leaves the previous figure), show, close."""
    try:
        if hasattr(path, "write"):  # an open file or buffer of the caller's
            fig.savefig(path, dpi=120, bbox_inches="tight")
        elif path is not None:
            suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
            with atomic_write(path) as f:  # the format from the name, as savefig(path) would take it
                fig.savefig(f, dpi=120, bbox_inches="tight", format=suffix or None)
    except BaseException:
        plt.close(fig)
        raise
    if show:
        plt.show()
    plt.close(fig)
    return path


def seed_spread(values, digits: int = 1, unit: str = "") -> str:
    """How a result varies over seeds, as a table or a figure says it.

    ``""`` for one value; ``"identical over 3 seeds"`` when every seed gave
    exactly the same number (a standard deviation of 0.0 reads like a bug);
    else ``"± 0.4 (sd)"``, the sample standard deviation, with a digit more
    when ``digits`` would round it to 0.

    Args:
        values: one number per seed (missing ones as None are left out).
        digits: decimals of the standard deviation.
        unit: written after the number, such as ``"%"``... ``"± 0.4% (sd)"``.
    """
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    if len(vals) < 2:
        return ""
    if np.all(vals == vals[0]):
        return f"identical over {len(vals)} seeds"
    sd = float(np.std(vals, ddof=1))
    while digits < 6 and round(sd, digits) == 0:
        digits += 1
    if round(sd, digits) == 0:  # seeds that differ in the last bits: never "± 0.000000"
        return f"± {sd:.1e}{unit} (sd)"
    return f"± {sd:.{digits}f}{unit} (sd)"


def _with_spread(text: str, spread: str) -> str:
    """``96.0% ± 1.2% (sd)``, ``100.0%, identical over 3 seeds``, or the text alone."""
    return f"{text}, {spread}" if spread.startswith("identical") else f"{text} {spread}" if spread else text


def format_loss(value) -> str:
    """A loss with three significant digits: 0.00521, 0.000123, 1.2e-07 (never 0.0000)."""
    if value is None or not np.isfinite(value):
        return str(value)
    value = float(value)
    if value == 0 or 1e-4 <= abs(value) < 1e4:
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.4g}"
    return f"{value:.2e}"


def _by_arch(results) -> dict:
    groups: dict[tuple, list] = {}
    for r in results:
        groups.setdefault(tuple(r.arch), []).append(r)
    return groups


def _band_note(n_seeds: int) -> str:
    return f"shaded: lowest to highest over {n_seeds} seeds"


def compare_figure(results, path=None, *, show: bool = False, title: str = "Comparing architectures",
                   panels: bool = False):
    """The architectures side by side: training loss per epoch, and test accuracy.

    By default one log-scale axis holds every architecture's loss curve, so
    final losses of 0.005 and 0.0001 sit far apart instead of all on the
    floor, and a second panel shows each one's test accuracy as a bar. The
    legend gives each final loss. ``panels=True`` draws one panel per
    architecture instead, with the test accuracy in its title (the loss axes
    shared and logarithmic too).

    With several seeds a line is the mean over seeds and the shaded band spans
    the lowest and highest loss; the accuracy is the mean, with its standard
    deviation over seeds (or "identical over N seeds").

    Returns:
        The matplotlib Figure (already closed; its axes can still be read).
    """
    groups = _by_arch(results)
    if not groups:
        raise ValueError("compare_figure: no results to draw")
    plt = _pyplot(show)
    n_seeds = max(len(rs) for rs in groups.values())
    if panels:
        n = len(groups)
        fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.8), squeeze=False, sharey=True)
        loss_axes = list(axes[0])
    else:
        fig, (ax, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
        loss_axes = [ax] * len(groups)
    for i, (ax, (arch, rs)) in enumerate(zip(loss_axes, groups.items())):
        curves = np.array([r.losses for r in rs], dtype=float)  # (seeds, epochs)
        epochs = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(axis=0)
        color = "C0" if panels else f"C{i}"
        label = f"final loss {format_loss(mean[-1])}" if panels else \
            f"{_arch_label(arch)}: final loss {format_loss(mean[-1])}"
        ax.plot(epochs, mean, color=color, label=label + (" (mean)" if len(rs) > 1 else ""))
        if len(rs) > 1:
            ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.2, linewidth=0)
        acc = np.array([r.accuracy for r in rs]) * 100
        if panels:
            spread = seed_spread(acc, unit="%")
            ax.set_title(f"{_arch_label(arch)}\ntest accuracy {_with_spread(f'{acc.mean():.1f}%', spread)}")
    for ax in dict.fromkeys(loss_axes):  # each axis once
        ax.set_yscale("log")
        _readable_log_axis(ax)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.grid(alpha=0.1, which="minor")
        _legend(ax, _band_note(n_seeds) if n_seeds > 1 else None, loc="upper right", fontsize=8)
    loss_axes[0].set_ylabel("training loss (log scale)")
    if not panels:
        loss_axes[0].set_title("Training loss")
        names = [_arch_label(a) for a in groups]
        accs = [np.array([r.accuracy for r in rs]) * 100 for rs in groups.values()]
        ypos = np.arange(len(names))[::-1]
        ax_acc.barh(ypos, [a.mean() for a in accs], color=[f"C{i}" for i in range(len(names))], alpha=0.8)
        for y, a in zip(ypos, accs):
            spread = seed_spread(a, unit="%")
            text = f"{a.mean():.1f}%" + (f"\n{spread}" if spread else "")
            inside = a.mean() >= 45  # on the bar, else just after its end
            ax_acc.text(1 if inside else a.mean() + 1, y, text, ha="left", va="center", fontsize=8,
                        color="white" if inside else "black", fontweight="bold")
        ax_acc.set_yticks(ypos, names)
        ax_acc.set_xlim(0, 100)
        ax_acc.set_xlabel("test accuracy (%)")
        ax_acc.set_title("Test accuracy" + (f" (mean over {n_seeds} seeds)" if n_seeds > 1 else ""))
        ax_acc.grid(alpha=0.3, axis="x")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    _finish(fig, plt, path, show)
    return fig


def _readable_log_axis(ax, which: str = "y") -> None:
    """Label enough ticks on a log axis to read values from: the powers of ten,
    and 2 and 5 times them (or 3 times them) when the axis spans few decades."""
    ticker = _matplotlib("ticker")
    FuncFormatter, LogLocator, NullFormatter = ticker.FuncFormatter, ticker.LogLocator, ticker.NullFormatter
    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    subs = (1.0, 2.0, 5.0) if decades <= 2.5 else (1.0, 3.0) if decades <= 5 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=30))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.4g}" if 1e-4 <= v < 1e5 else f"{v:.0e}"))
    axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10), numticks=30))
    axis.set_minor_formatter(NullFormatter())


def _legend(ax, band_note: str | None = None, **kwargs):
    """The axis's legend, once, with an entry saying what the shaded bands are."""
    Patch = _matplotlib("patches").Patch
    handles, labels = ax.get_legend_handles_labels()
    if band_note:
        handles.append(Patch(facecolor="grey", alpha=0.25))
        labels.append(band_note)
    return ax.legend(handles, labels, **kwargs)


def _history_dict(history) -> dict:
    """Accept a History object (``.history``) or a plain dict of lists."""
    h = getattr(history, "history", history)
    if not isinstance(h, dict):
        raise TypeError(f"training_curves: expected a History or a dict of lists, got {type(history).__name__}")
    return h


def training_curves(history, path=None, *, show: bool = False, title: str = "Training"):
    """Loss (left) and accuracy (right) per epoch, training and validation.

    Args:
        history: ``flexnet.fit``'s History, or a dict with lists ``loss``,
            ``val_loss``, ``accuracy``, ``val_accuracy`` (any may be missing).
        path: image file to write, or None.

    Returns:
        The matplotlib Figure (already closed; its axes can still be read).
    """
    h = _history_dict(history)
    if not h.get("loss"):
        raise ValueError("training_curves: the history has no 'loss' values; train for at least one epoch")
    plt = _pyplot(show)
    has_acc = bool(h.get("accuracy") or h.get("val_accuracy"))
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5.5, 3.8), squeeze=False)
    panels = [("loss", "loss", 1.0)] + ([("accuracy", "accuracy (%)", 100.0)] if has_acc else [])
    for ax, (key, label, factor) in zip(axes[0], panels):
        for prefix, name, style in (("", "training", "-"), ("val_", "validation", "--")):
            values = h.get(prefix + key)
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, np.asarray(values, dtype=float) * factor, style, marker="o" if len(values) < 20 else None,
                        markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(label)
        ax.set_title(label.split(" ")[0].capitalize())
        ax.grid(alpha=0.3)
        if key == "accuracy" and h.get("val_accuracy"):
            best = int(np.argmax(h["val_accuracy"]))
            ax.plot(best + 1, 100 * h["val_accuracy"][best], "o", color="C1", markersize=5,
                    label=f"best validation {100 * h['val_accuracy'][best]:.2f}% (epoch {best + 1})")
        ax.legend(fontsize=9)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    _finish(fig, plt, path, show)
    return fig


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts ``cm[true, predicted]``, shape (n_classes, n_classes)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def confusion_figure(cm, class_names=None, path=None, *, show: bool = False, title: str = "Confusion matrix"):
    """The confusion matrix, coloured by the share of each true class.

    Each cell shows the count; colour is the row-normalised share, so a class
    with few examples is as readable as a large one.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion_figure: expected a square matrix, got shape {cm.shape}")
    n = cm.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(n))]
    if len(names) != n:
        raise ValueError(f"confusion_figure: {len(names)} class names for a {n}x{n} matrix")
    plt = _pyplot(show)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.5, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fontsize = 8 if n <= 12 else 6
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=fontsize,
                        color="white" if share[i, j] > 0.5 else "black")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title}\naccuracy {100 * acc:.2f}% on {int(cm.sum()):,} examples")
    fig.tight_layout()
    _finish(fig, plt, path, show)
    return fig


def _grid(n: int, max_cols: int = 8) -> tuple[int, int]:
    cols = min(n, max_cols)
    return int(np.ceil(n / cols)), cols


def strongest_units(W, n: int) -> np.ndarray:
    """The ``n`` columns of ``W`` (one per unit) with the largest norm, strongest first."""
    norms = np.linalg.norm(np.asarray(W, dtype=np.float64), axis=0)
    return np.argsort(-norms, kind="stable")[:n]


def weights_figure(W, image_shape, path=None, *, show: bool = False, max_units: int = 16,
                   shared_scale: bool = True, initial=None, title: str = "First-layer weights"):
    """Each hidden unit's incoming weights drawn as an image.

    The units shown are the ``max_units`` with the largest weight norm (the
    strongest first); the title says so, and each image is labelled with its
    unit's index and norm.

    A wide first layer often looks like noise even when it has learned well:
    its weights are the random values it started from plus what training
    added, and the random start can be the larger part. Give ``initial`` (the
    weights before training) and a second row of panels shows the change
    training made, ``W - initial``, for the same units, which shows the
    shapes the units learned. The units are then the ones training changed
    most (the largest norm of the change).

    Args:
        W: the first Linear layer's weights, shape (H*W, units).
        image_shape: (H, W): (5, 5) for edge patches, (28, 28) for MNIST, (8, 8) for digits.
        max_units: draw at most this many units.
        shared_scale: one colour scale for every unit (default), so a weak
            unit looks weak; False scales each unit to its own largest
            weight, which shows the pattern of the weak units too. The colour
            bar and the title say which.
        initial: the same layer's weights before training, or None.

    Blue is negative, red positive, white zero. A shared scale ends at the
    99.5th percentile of the weights' magnitude (a few larger weights show in
    the darkest colour), so one outlier cannot wash out every pattern.

    Returns:
        The matplotlib Figure (already closed; its axes can still be read).
    """
    W = np.asarray(W)
    h, w = (int(d) for d in image_shape)
    if W.ndim != 2 or W.shape[0] != h * w:
        raise ValueError(
            f"weights_figure: weights of shape {W.shape} do not match images of {h}x{w} = {h * w} inputs"
        )
    if isinstance(max_units, bool) or not isinstance(max_units, (int, np.integer)) or max_units < 1:
        raise ValueError(f"weights_figure(max_units): expected a positive integer, got {max_units!r}")
    change = None
    if initial is not None:
        initial = np.asarray(initial)
        if initial.shape != W.shape:
            raise ValueError(f"weights_figure(initial): shape {initial.shape} is not the weights' {W.shape}")
        change = W.astype(np.float64) - initial
    units = strongest_units(W if change is None else change, int(max_units))
    n_all = W.shape[1]
    how = "one colour scale shared by all units" if shared_scale else "each unit scaled to its own largest weight"
    by = "largest weight norm" if change is None else "largest change in training (norm of W - initial W)"
    chosen = (f"the {len(units)} of {n_all} units with the {by}" if len(units) < n_all
              else f"all {n_all} units, {by} first")
    plt = _pyplot(show)
    rows, cols = _grid(len(units))
    panels = [("weight", "The weights after training", W)]
    if change is not None:
        panels.append(("change", "The change training made: W - initial W (the random start taken away)", change))
    fig = plt.figure(figsize=(1.45 * cols + 1.3, (1.6 * rows + 0.4) * len(panels) + 0.7), layout="constrained")
    subfigs = fig.subfigures(len(panels), 1, squeeze=False)[:, 0] if len(panels) > 1 else [fig]
    for sub, (what, name, M) in zip(subfigs, panels):
        axes = sub.subplots(rows, cols, squeeze=False)
        _draw_units(sub, axes, M, units, (h, w), shared_scale, what)
        if len(panels) > 1:
            sub.suptitle(name, fontsize=9)
    fig.suptitle(f"{title}: {chosen}\nred positive, blue negative; {how}", fontweight="bold", fontsize=10)
    _finish(fig, plt, path, show)
    return fig


def _draw_units(fig, axes, M, units, shape, shared_scale: bool, what: str) -> None:
    """One image per unit of ``M`` (its columns ``units``) on ``axes``, and a colour bar."""
    M = np.asarray(M, dtype=np.float64)
    norms = np.linalg.norm(M[:, units], axis=0)
    lim = (float(np.percentile(np.abs(M[:, units]), 99.5)) or 1.0) if shared_scale else 1.0
    im = None
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(units):
            img = M[:, units[k]].reshape(shape)
            if not shared_scale:
                img = img / (float(np.abs(img).max()) or 1.0)
            im = ax.imshow(img, cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(f"unit {units[k]}\nnorm {norms[k]:.3g}", fontsize=7)
    label = f"{what} (shared scale)" if shared_scale else f"{what} / the unit's largest"
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.025, pad=0.02, shrink=0.9,
                 extend="both" if shared_scale else "neither", label=label)


def confidence_text(p) -> str:
    """A probability with the digits that tell it from its neighbours near 100%.

    ``97.3%``, ``99.97%``, ``99.9969%``; past 99.99% the distance to 1 in
    scientific form: ``1 - 3.2e-07``. So a list of confident mistakes reads
    in order instead of as a row of "100%".
    """
    p = float(p)
    if not np.isfinite(p):
        return str(p)
    if not -1e-6 <= p <= 1 + 1e-6:  # a float32 softmax may pass 1 by a rounding step
        raise ValueError(f"confidence_text: expected a probability in [0, 1], got {p!r}")
    p = min(max(p, 0.0), 1.0)
    q = 1.0 - p
    if q >= 0.01 or p <= 0:
        return f"{100 * p:.1f}%"
    if q >= 1e-4:
        decimals = int(-np.floor(np.log10(100 * q))) + 1  # two significant digits of 1 - p
        return f"{100 * p:.{decimals}f}%"
    if q <= 0:
        return "100% (rounded)"
    return f"1 - {q:.1e}"


def mistakes_figure(images, y_true, y_pred, confidence, class_names=None, image_shape=None, path=None, *,
                    show: bool = False, max_images: int = 24, title: str = "Most confident mistakes"):
    """A grid of misclassified examples, most confident first.

    Args:
        images: the raw inputs of the mistakes, (N, H*W) or (N, H, W).
        y_true, y_pred: class ids, shape (N,).
        confidence: the predicted class's probability, shape (N,), shown with
            the digits that rank it (:func:`confidence_text`): 99.97%, 1 - 3e-07.
        image_shape: (H, W) when ``images`` are flat rows.
    """
    images = np.asarray(images)
    y_true, y_pred, confidence = (np.asarray(a) for a in (y_true, y_pred, confidence))
    if images.ndim == 2:
        if image_shape is None:
            raise ValueError("mistakes_figure: flat inputs need image_shape=(H, W)")
        images = images.reshape(len(images), *image_shape)
    if not len(images) == len(y_true) == len(y_pred) == len(confidence):
        raise ValueError("mistakes_figure: images, y_true, y_pred and confidence must have the same length")
    names = [str(c) for c in class_names] if class_names is not None else None
    label = (lambda c: names[c]) if names else str
    order = np.argsort(-np.asarray(confidence, dtype=np.float64), kind="stable")[:max_images]
    plt = _pyplot(show)
    if len(order) == 0:
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=12)
        ax.set_title(title)
    else:
        rows, cols = _grid(len(order), 6)
        fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows + 0.5), squeeze=False)
        for ax, k in zip(axes.flat, list(order) + [None] * (rows * cols - len(order))):
            ax.axis("off")
            if k is None:
                continue
            ax.imshow(images[k], cmap="gray", interpolation="nearest")
            ax.set_title(f"true: {label(int(y_true[k]))}\npred: {label(int(y_pred[k]))} ({confidence_text(confidence[k])})",
                         fontsize=8, color="darkred")
        fig.suptitle(f"{title}, most confident first\n(in brackets: the probability given to the predicted class)",
                     fontweight="bold", fontsize=10)
    fig.tight_layout()
    _finish(fig, plt, path, show)
    return fig


#: Settings a sweep varies besides the architecture (and the seed).
_SWEPT = ("activation", "lr", "batch_size", "dropout", "optimizer", "epochs")


def _arch_label(arch) -> str:
    return "[" + ", ".join(map(str, arch)) + "]"


def _seeds_of(rows) -> int:
    return max((int(c.get("ok") or 0) for c in rows), default=0)


def sweep_accuracy_figure(configs, path=None, *, show: bool = False, title: str = "Sweep: accuracy against size"):
    """Mean validation accuracy of each configuration against its parameter count.

    ``configs`` are the rows of :func:`flexnet.experiments.results.summarise` (best first).
    The colour is the optimizer, the marker the learning rate; each group sits
    a little to the side so equal sizes stay apart. The error bars span one
    standard deviation over seeds (cut at 100%) and the legend says so; the
    best configuration's marker is ringed and labelled.
    """
    rows = [c for c in configs if c["ok"] and c["n_params"]]
    use_val = any(c["val_accuracy_mean"] is not None for c in rows)
    key = "val_accuracy" if use_val else "accuracy"
    plt = _pyplot(show)
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    optimizers = sorted({c["optimizer"] for c in rows})
    lrs = sorted({c["lr"] for c in rows})
    markers = "osD^vP*Xh<>p"
    groups = [(opt, lr) for opt in optimizers for lr in lrs]
    where = {}  # id(config row) -> (x, y) of its marker
    for k, (opt, lr) in enumerate(groups):
        rs = [c for c in rows if c["optimizer"] == opt and c["lr"] == lr]
        if not rs:
            continue
        mean = np.array([100 * c[f"{key}_mean"] for c in rs])
        sd = np.array([100 * (c[f"{key}_std"] or 0.0) for c in rs])
        shift = 1 + 0.025 * (k - (len(groups) - 1) / 2)
        xs = np.array([c["n_params"] * shift for c in rs], dtype=float)
        where.update({id(c): (x, y) for c, x, y in zip(rs, xs, mean)})
        label = opt if len(lrs) == 1 else f"{opt}, lr={lr:g}"
        ax.errorbar(xs, mean, yerr=[sd, np.minimum(sd, 100 - mean)],
                    fmt=markers[lrs.index(lr) % len(markers)], color=f"C{optimizers.index(opt)}",
                    alpha=0.75, capsize=3, label=label)
    if rows:
        best = rows[0]
        bx, by = where[id(best)]
        ax.scatter([bx], [by], s=200, facecolors="none", edgecolors="black", linewidths=1.5, zorder=3,
                   label="best (ringed)")
        ax.annotate(f"best: {_arch_label(best['arch'])}", (bx, by),
                    xytext=(9, -15), textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    sizes = sorted({c["n_params"] for c in rows})
    ax.margins(x=0.15)
    ax.set_ylim(top=min(ax.get_ylim()[1], 100.5))
    _size_ticks(ax, sizes)
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel(f"{'validation' if use_val else 'training'} accuracy (%)")
    ax.grid(alpha=0.3)
    n_seeds = _seeds_of(rows)
    if n_seeds > 1:
        identical = all(c[f"{key}_std"] == 0 for c in rows)
        note = (f"error bars: none, the {n_seeds} seeds agree exactly" if identical
                else f"error bars: ± 1 sd over {n_seeds} seeds")
    else:
        note = "one seed: no error bars"
    handles, labels = ax.get_legend_handles_labels()
    handles.append(_matplotlib("lines").Line2D([], [], color="grey", marker="|", markersize=10, linestyle="none"))
    labels.append(note)
    ax.legend(handles, labels, fontsize=8, loc="best")
    ax.set_title(title, fontweight="bold")
    fig.tight_layout()
    _finish(fig, plt, path, show)
    return fig


def _size_ticks(ax, sizes) -> None:
    """Parameter counts on a log axis: each size swept labelled, and the 1-2-5
    ticks between them when the sizes are too few to read the axis by."""
    ticker = _matplotlib("ticker")
    ticks = list(sizes)
    lo, hi = ax.get_xlim()
    if len(ticks) < 3:
        nice = ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)).tick_values(lo, hi)
        nice = [t for t in nice if lo <= t <= hi and all(abs(np.log10(t / s)) > 0.08 for s in ticks)]
        ticks = sorted(ticks + nice)
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlim(lo, hi)


def sweep_curves_figure(trials, configs, path=None, *, top: int = 5, show: bool = False,
                        title: str = "Sweep: the top configurations"):
    """Per-epoch curves of the ``top`` configurations: loss and accuracy.

    Each line is the mean over the configuration's seeds; the shaded band
    spans the lowest and highest value over them (the legend says so).
    Validation curves when the sweep had them. The loss axis is logarithmic,
    with labelled ticks between the powers of ten; one legend names the lines.
    """
    best = [c for c in configs if c["ok"]][:top]
    use_val = any(t["curves"].get("val_accuracy") for t in trials)
    loss_key, acc_key = ("val_loss", "val_accuracy") if use_val else ("loss", "accuracy")
    settings = [a for a in _SWEPT if len({str(c[a]) for c in configs}) > 1]
    plt = _pyplot(show)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.4))
    bands = 0
    for i, c in enumerate(best):
        ts = [t for t in trials if t["status"] == "ok" and all(t[a] == c[a] for a in ("arch", *_SWEPT))]
        label = " ".join([f"#{c['rank']} {_arch_label(c['arch'])}"] + [f"{a}={c[a]}" for a in settings])
        for ax, key, scale in ((ax_loss, loss_key, 1.0), (ax_acc, acc_key, 100.0)):
            curves = [t["curves"].get(key) for t in ts]
            curves = [cv for cv in curves if cv and None not in cv]
            if not curves:
                continue
            n = min(len(cv) for cv in curves)
            arr = scale * np.array([cv[:n] for cv in curves], dtype=float)  # (seeds, epochs)
            epochs = np.arange(1, n + 1)
            ax.plot(epochs, arr.mean(axis=0), color=f"C{i}", label=label if ax is ax_acc else None)
            if len(arr) > 1:
                bands = max(bands, len(arr))
                ax.fill_between(epochs, arr.min(axis=0), arr.max(axis=0), color=f"C{i}", alpha=0.2, linewidth=0)
    which = "validation" if use_val else "training"
    ax_loss.set_ylabel(f"{which} loss (log scale)")
    ax_acc.set_ylabel(f"{which} accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    ax_loss.set_yscale("log")
    _readable_log_axis(ax_loss)
    ax_loss.grid(alpha=0.1, which="minor")
    note = f"lines: mean over seeds; shaded: lowest to highest over {bands} seeds" if bands else None
    _legend(ax_acc, note, fontsize=7, loc="lower right")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    _finish(fig, plt, path, show)
    return fig


def _pyplot_as_is(show: bool = False):
    """pyplot on the backend already chosen when there is one (a notebook's inline
    backend, a script's own pyplot); else as :func:`_pyplot`."""
    import sys

    from .training.notebook import in_notebook

    if "matplotlib.pyplot" in sys.modules or in_notebook():
        return optional("matplotlib.pyplot", "drawing figures")
    return _pyplot(show)


def history_figure(history, path=None, *, metrics=None, show: bool = False, title: str = "Training"):
    """``History.plot``: one panel per metric, per epoch, validation beside training.

    The loss panel turns logarithmic when the loss spans more than two powers of
    ten, so that 0.005 and 0.0001 stay apart.

    Args:
        history: a History, or a dict of per-epoch lists.
        path: image file to write, or None.
        metrics: the keys to draw (default ``loss`` and ``accuracy``, or whatever
            non-validation metrics the run recorded besides ``lr`` and ``time``).

    Returns:
        The matplotlib Figure, closed (a notebook shows it inline once); its
        panels are ``fig.axes``.
    """
    h = _history_dict(history)
    if metrics is None:
        metrics = [k for k in h if "/" not in k and not k.startswith("val_") and k not in ("lr", "time")
                   and h.get(k)]
        metrics.sort(key=lambda k: k != "loss")
    elif isinstance(metrics, str):
        metrics = [metrics]
    metrics = list(metrics)
    unknown = [k for k in metrics if not h.get(k) and not h.get("val_" + k)]
    if unknown or not metrics:
        raise ValueError(f"History.plot: no values recorded for {unknown or metrics}; the history has "
                         f"{sorted(h)}")
    plt = _pyplot_as_is(show)
    epochs_of = getattr(history, "epoch", None)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.6), squeeze=False)
    for ax, key in zip(axes[0], metrics):
        percent = "accuracy" in key
        for prefix, name, style in (("", "training", "-"), ("val_", "validation", "--")):
            values = h.get(prefix + key)
            if not values:
                continue
            y = np.asarray(values, dtype=float) * (100.0 if percent else 1.0)
            x = (np.asarray(epochs_of) if epochs_of is not None and len(epochs_of) == len(y)
                 else np.arange(1, len(y) + 1))
            ax.plot(x, y, style, marker="o" if len(y) < 20 else None, markersize=3, label=name)
        values = np.asarray(h.get(key) or h.get("val_" + key), dtype=float)
        finite = values[np.isfinite(values)]
        if key == "loss" and finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(key + (" (%)" if percent else ""))
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    _finish(fig, plt, path, show)
    return fig


def _attach():
    from .training.callbacks import History

    History.figure = staticmethod(history_figure)


_attach()
