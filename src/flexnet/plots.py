"""Figures, drawn with matplotlib (an optional extra: ``pip install flexnet[plot]``)."""

from __future__ import annotations

import numpy as np


def _pyplot(show: bool = False):
    """Import pyplot, on a file-only backend unless a window is wanted."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            "figures need matplotlib: pip install 'flexnet[plot]' (or pip install matplotlib)"
        ) from exc
    if not show:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, plt, path, show: bool):
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
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
        spread = f" ± {acc.std():.1f}" if len(rs) > 1 else ""
        ax.set_title(f"{list(arch)}\ntest accuracy {acc.mean():.1f}%{spread}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training loss")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return _finish(fig, plt, path, show)
