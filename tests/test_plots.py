"""Every figure is drawn, written, and labelled."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from flexnet import plots  # noqa: E402
from flexnet.experiments.compare import compare  # noqa: E402


def written(path) -> bool:
    return path.is_file() and path.stat().st_size > 5_000


def test_training_curves_from_history_dict(tmp_path):
    h = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.45],
         "accuracy": [0.5, 0.8, 0.9], "val_accuracy": [0.45, 0.75, 0.85]}
    fig = plots.training_curves(h, tmp_path / "c.png", title="run 1")
    assert written(tmp_path / "c.png")
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xlabel() == "epoch" and loss_ax.get_ylabel() == "loss"
    assert acc_ax.get_ylabel() == "accuracy (%)"
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["training", "validation"]
    np.testing.assert_allclose(acc_ax.lines[1].get_ydata(), [45, 75, 85])
    assert fig._suptitle.get_text() == "run 1"


def test_training_curves_loss_only_and_history_object(tmp_path):
    from flexnet import History

    fig = plots.training_curves(History({"loss": [0.9, 0.4]}), tmp_path / "c.png")
    assert len(fig.axes) == 1 and written(tmp_path / "c.png")
    with pytest.raises(ValueError, match="no 'loss'"):
        plots.training_curves({"loss": []})
    with pytest.raises(TypeError):
        plots.training_curves([0.1, 0.2])


def test_confusion_matrix_and_figure(tmp_path):
    cm = plots.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    fig = plots.confusion_figure(cm, ["cat", "dog", "owl"], tmp_path / "cm.png")
    assert written(tmp_path / "cm.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "owl"]
    assert "accuracy 66.67% on 6 examples" in ax.get_title()
    with pytest.raises(ValueError, match="square"):
        plots.confusion_figure(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2 class names for a 3x3"):
        plots.confusion_figure(cm, ["a", "b"])


@pytest.mark.parametrize("shape", [(5, 5), (8, 8), (28, 28)])
def test_weights_figure_for_each_image_size(tmp_path, shape):
    W = np.random.default_rng(0).normal(size=(shape[0] * shape[1], 40)).astype(np.float32)
    fig = plots.weights_figure(W, shape, tmp_path / "w.png", max_units=16)
    assert written(tmp_path / "w.png")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 16 and images[0].images[0].get_array().shape == shape
    assert "16 of 40 units" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="do not match images"):
        plots.weights_figure(W, (4, 4))


def test_mistakes_figure_orders_by_confidence(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28 * 28)).astype(np.float32)
    conf = np.array([0.5, 0.99, 0.7, 0.6, 0.8])
    fig = plots.mistakes_figure(images, [0, 1, 2, 3, 4], [1, 2, 3, 4, 0], conf,
                                [f"class {i}" for i in range(5)], (28, 28), tmp_path / "m.png")
    assert written(tmp_path / "m.png")
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles[0] == "true: class 1\npred: class 2 (99.0%)" and len(titles) == 5
    fig = plots.mistakes_figure(images[:0], [], [], [], None, (28, 28), tmp_path / "none.png")
    assert (tmp_path / "none.png").is_file()
    with pytest.raises(ValueError, match="image_shape"):
        plots.mistakes_figure(images, [0] * 5, [1] * 5, conf)


def test_compare_figure_still_draws_bands(tmp_path):
    results = compare([[25, 2], [25, 8, 2]], seeds=[0, 1], epochs=3)
    plots.compare_figure(results, tmp_path / "cmp.png")
    assert written(tmp_path / "cmp.png")
