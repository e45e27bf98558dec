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


def compare_figure(results, path=None, *, show: bool = False, title: str = "Comparing architectures"):
    """One panel per architecture: training loss per epoch, test accuracy in the title.

    With several seeds the line is the mean and the band spans the lowest and
    highest loss across seeds.
    """
    plt = _pyplot(show)
    groups: dict[tuple, list] = {}
    for r in results:
        groups.setdefault(tuple(r.arch), []).append(r)
    n = len(groups)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.8), squeeze=False, sharey=True)
    for ax, (arch, rs) in zip(axes[0], groups.items()):
        curves = np.array([r.losses for r in rs])  # (seeds, epochs)
        epochs = np.arange(1, curves.shape[1] + 1)
        ax.plot(epochs, curves.mean(axis=0), color="C0", label="mean" if len(rs) > 1 else "training loss")
        if len(rs) > 1:
            ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), color="C0", alpha=0.25,
                            label=f"min-max over {len(rs)} seeds")
            ax.legend(loc="upper right", fontsize=8)
        acc = np.array([r.accuracy for r in rs]) * 100
        spread = f" ± {acc.std(ddof=1):.1f} (sd)" if len(rs) > 1 else ""
        ax.set_title(f"{list(arch)}\ntest accuracy {acc.mean():.1f}%{spread}")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training loss")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return _finish(fig, plt, path, show)


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


def weights_figure(W, image_shape, path=None, *, show: bool = False, max_units: int = 32,
                   title: str = "First-layer weights"):
    """Each hidden unit's incoming weights drawn as an image.

    Args:
        W: the first Linear layer's weights, shape (H*W, units).
        image_shape: (H, W): (5, 5) for edge patches, (28, 28) for MNIST, (8, 8) for digits.
        max_units: draw at most this many units (the first ones).

    Blue is negative, red positive, white zero; each image has its own
    symmetric colour range so weak units are still visible.
    """
    W = np.asarray(W)
    h, w = (int(d) for d in image_shape)
    if W.ndim != 2 or W.shape[0] != h * w:
        raise ValueError(
            f"weights_figure: weights of shape {W.shape} do not match images of {h}x{w} = {h * w} inputs"
        )
    units = min(W.shape[1], max_units)
    plt = _pyplot(show)
    rows, cols = _grid(units)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows + 0.6), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < units:
            img = W[:, k].reshape(h, w)
            lim = float(np.abs(img).max()) or 1.0
            ax.imshow(img, cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(f"unit {k}", fontsize=8)
    shown = f"{units} of {W.shape[1]} units" if units < W.shape[1] else f"{units} units"
    fig.suptitle(f"{title} ({shown}; red positive, blue negative)", fontweight="bold", fontsize=10)
    fig.tight_layout()
    _finish(fig, plt, path, show)
    return fig


def mistakes_figure(images, y_true, y_pred, confidence, class_names=None, image_shape=None, path=None, *,
                    show: bool = False, max_images: int = 24, title: str = "Most confident mistakes"):
    """A grid of misclassified examples, most confident first.

    Args:
        images: the raw inputs of the mistakes, (N, H*W) or (N, H, W).
        y_true, y_pred: class ids, shape (N,).
        confidence: the predicted class's probability, shape (N,).
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
    order = np.argsort(-confidence)[:max_images]
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
            ax.set_title(f"true: {label(int(y_true[k]))}\npred: {label(int(y_pred[k]))} ({100 * confidence[k]:.0f}%)",
                         fontsize=8, color="darkred")
        fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    _finish(fig, plt, path, show)
    return fig


#: Settings a sweep varies besides the architecture (and the seed).
_SWEPT = ("activation", "lr", "batch_size", "dropout", "optimizer", "epochs")


def _arch_label(arch) -> str:
    return "[" + ", ".join(map(str, arch)) + "]"


def sweep_accuracy_figure(configs, path=None, *, show: bool = False, title: str = "Sweep: accuracy against size"):
    """Mean validation accuracy of each configuration against its parameter count.

    ``configs`` are the rows of :func:`flexnet.experiments.results.summarise` (best first);
    the error bars span one standard deviation over seeds, the best
    configuration is ringed and labelled.
    """
    rows = [c for c in configs if c["ok"] and c["n_params"]]
    use_val = any(c["val_accuracy_mean"] is not None for c in rows)
    key = "val_accuracy" if use_val else "accuracy"
    plt = _pyplot(show)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    optimizers = sorted({c["optimizer"] for c in rows})
    # Colour: the optimizer; marker: the learning rate, so configurations of
    # the same size stay apart. Bars span one standard deviation, cut at 100%.
    lrs = sorted({c["lr"] for c in rows})
    markers = "osD^vP*Xh<>p"
    groups = [(opt, lr) for opt in optimizers for lr in lrs]
    for k, (opt, lr) in enumerate(groups):
        rs = [c for c in rows if c["optimizer"] == opt and c["lr"] == lr]
        if not rs:
            continue
        mean = np.array([100 * c[f"{key}_mean"] for c in rs])
        sd = np.array([100 * (c[f"{key}_std"] or 0.0) for c in rs])
        # Each group a little to the side, so equal sizes and scores stay visible.
        shift = 1 + 0.025 * (k - (len(groups) - 1) / 2)
        label = opt if len(lrs) == 1 else f"{opt}, lr={lr:g}"
        ax.errorbar([c["n_params"] * shift for c in rs], mean, yerr=[sd, np.minimum(sd, 100 - mean)],
                    fmt=markers[lrs.index(lr) % len(markers)], color=f"C{optimizers.index(opt)}",
                    alpha=0.75, capsize=3, label=label)
    if rows:
        best = rows[0]
        ax.scatter([best["n_params"]], [100 * best[f"{key}_mean"]], s=180, facecolors="none",
                   edgecolors="black", linewidths=1.5, zorder=3)
        ax.annotate(f"best: {_arch_label(best['arch'])}", (best["n_params"], 100 * best[f"{key}_mean"]),
                    xytext=(8, -14), textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    sizes = sorted({c["n_params"] for c in rows})
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes], minor=False)
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.margins(x=0.15)
    ax.set_ylim(top=min(ax.get_ylim()[1], 100.5))
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"{'validation' if use_val else 'training'} accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    if len(optimizers) > 1 or len(lrs) > 1:
        ax.legend(fontsize=8)
    ax.set_title(title, fontweight="bold")
    fig.tight_layout()
    _finish(fig, plt, path, show)
    return fig


def sweep_curves_figure(trials, configs, path=None, *, top: int = 5, show: bool = False,
                        title: str = "Sweep: the top configurations"):
    """Per-epoch curves of the ``top`` configurations: loss and accuracy.

    Each line is the mean over the configuration's seeds; the band spans the
    lowest and highest value. Validation curves when the sweep had them.
    """
    best = [c for c in configs if c["ok"]][:top]
    use_val = any(t["curves"].get("val_accuracy") for t in trials)
    loss_key, acc_key = ("val_loss", "val_accuracy") if use_val else ("loss", "accuracy")
    settings = [a for a in _SWEPT if len({str(c[a]) for c in configs}) > 1]
    plt = _pyplot(show)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, c in enumerate(best):
        ts = [t for t in trials if t["status"] == "ok" and all(t[a] == c[a] for a in ("arch", *_SWEPT))]
        label = " ".join([f"#{c['rank']} {_arch_label(c['arch'])}"] + [f"{a}={c[a]}" for a in settings])
        for ax, key, scale in ((ax_loss, loss_key, 1.0), (ax_acc, acc_key, 100.0)):
            curves = [t["curves"].get(key) for t in ts]
            curves = [cv for cv in curves if cv and None not in cv]
            if not curves:
                continue
            n = min(len(cv) for cv in curves)
            arr = scale * np.array([cv[:n] for cv in curves])  # (seeds, epochs)
            epochs = np.arange(1, n + 1)
            ax.plot(epochs, arr.mean(axis=0), color=f"C{i}", label=label)
            if len(arr) > 1:
                ax.fill_between(epochs, arr.min(axis=0), arr.max(axis=0), color=f"C{i}", alpha=0.2)
    which = "validation" if use_val else "training"
    ax_loss.set_ylabel(f"{which} loss")
    ax_acc.set_ylabel(f"{which} accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    ax_loss.set_yscale("log")
    ax_acc.legend(fontsize=7, loc="lower right")
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
