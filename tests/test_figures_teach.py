"""The figures say what they show: scales, units, spreads, rankings and the best marker."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from flexnet import plots  # noqa: E402
from flexnet.experiments.compare import CompareResult, format_table  # noqa: E402
from flexnet.experiments.results import AXES, SweepResult, summarise  # noqa: E402


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def labelled_ticks(ax, which="y") -> list[float]:
    """The major ticks inside the view that carry a label."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if which == "y" else ax.get_xlim())
    ax.figure.canvas.draw()
    return [t.get_loc() for t in axis.get_major_ticks()
            if lo <= t.get_loc() <= hi and t.label1.get_text()]


def curve(final: float, epochs: int = 30) -> list[float]:
    """A loss falling from 0.6 to ``final`` geometrically."""
    return list(np.geomspace(0.6, final, epochs))


def results(seeds=1, same_accuracy=True):
    out = []
    for arch, final in (([25, 2], 0.0052), ([25, 8, 2], 0.0004), ([25, 16, 8, 2], 0.0001)):
        for s in range(seeds):
            acc = 1.0 if same_accuracy else 0.9 + 0.02 * s
            out.append(CompareResult(arch, s, 10, curve(final * (1 + 0.1 * s)), acc, 0.1))
    return out


# -- the comparison ------------------------------------------------------------------------


def test_compare_figure_puts_every_curve_on_one_log_axis_beside_the_accuracies(tmp_path):
    fig = plots.compare_figure(results(), tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 5_000
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_yscale() == "log"
    assert len(loss_ax.lines) == 3
    finals = [line.get_ydata()[-1] for line in loss_ax.lines]
    assert finals == pytest.approx([0.0052, 0.0004, 0.0001])
    texts = legend_texts(loss_ax)
    assert texts == ["[25, 2]: final loss 0.0052", "[25, 8, 2]: final loss 0.0004",
                     "[25, 16, 8, 2]: final loss 0.0001"]
    assert len(labelled_ticks(loss_ax)) >= 3  # enough to read a value off
    bars = [p.get_width() for p in acc_ax.patches]
    assert bars == pytest.approx([100, 100, 100])
    ticks = sorted(zip(acc_ax.get_yticks(), (t.get_text() for t in acc_ax.get_yticklabels())), reverse=True)
    assert [name for _, name in ticks] == ["[25, 2]", "[25, 8, 2]", "[25, 16, 8, 2]"]  # top to bottom
    assert acc_ax.get_xlabel() == "test accuracy (%)"


def test_compare_figure_with_seeds_labels_the_bands_and_says_when_seeds_agree(tmp_path):
    fig = plots.compare_figure(results(seeds=3), tmp_path / "c.png")
    loss_ax, acc_ax = fig.axes
    texts = legend_texts(loss_ax)
    assert texts[-1] == "shaded: lowest to highest over 3 seeds" and len(texts) == 4
    assert len(set(texts)) == len(texts)
    assert len(loss_ax.collections) == 3  # one band per architecture
    shown = [t.get_text() for t in acc_ax.texts]
    assert all("identical over 3 seeds" in t for t in shown) and not any("± 0.0" in t for t in shown)
    fig = plots.compare_figure(results(seeds=3, same_accuracy=False))
    shown = [t.get_text() for t in fig.axes[1].texts]
    assert all("± 2.0% (sd)" in t for t in shown)


def test_compare_figure_panels_are_kept_as_an_option():
    fig = plots.compare_figure(results(seeds=2), panels=True)
    assert len(fig.axes) == 3
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert fig.axes[0].get_title() == "[25, 2]\ntest accuracy 100.0%, identical over 2 seeds"
    assert legend_texts(fig.axes[1])[0] == "final loss 0.00042 (mean)"
    with pytest.raises(ValueError, match="no results"):
        plots.compare_figure([])


def test_compare_table_keeps_the_digits_of_small_losses_and_says_when_seeds_agree():
    table = format_table(results())
    assert "0.0052 " in table and "0.0004 " in table and "0.0001 " in table
    assert "0.0000" not in table
    rows = format_table([CompareResult([25, 2], 0, 52, [0.5, 0.00521234], 1.0, 0.1)])
    assert "0.00521" in rows
    table = format_table(results(seeds=3))
    assert table.count("100.0%, identical over 3 seeds") == 3 and "± 0.0" not in table
    assert "test accuracy (mean ± sd)" in table
    table = format_table(results(seeds=3, same_accuracy=False))
    assert "92.0% ± 2.0%" in table


@pytest.mark.parametrize("value, text", [(0.0052, "0.0052"), (0.00521234, "0.00521"), (0.000123456, "0.000123"),
                                         (0.3124, "0.312"), (2.3456, "2.346"), (1.2e-7, "1.20e-07"), (0.0, "0")])
def test_format_loss(value, text):
    assert plots.format_loss(value) == text


def test_seed_spread():
    assert plots.seed_spread([0.5]) == ""
    assert plots.seed_spread([97.2, 97.2, 97.2], unit="%") == "identical over 3 seeds"
    assert plots.seed_spread([1.0, 2.0, 3.0]) == "± 1.0 (sd)"
    assert plots.seed_spread([1.0, 1.0001]) == "± 0.0001 (sd)"  # never "± 0.0" for seeds that differ
    assert plots.seed_spread([1.0, None, 1.0]) == "identical over 2 seeds"


# -- first-layer weights --------------------------------------------------------------------


def weights_with_norms(norms, shape=(8, 8), seed=0):
    W = np.random.default_rng(seed).normal(size=(shape[0] * shape[1], len(norms)))
    return (W / np.linalg.norm(W, axis=0) * np.asarray(norms)).astype(np.float32)


def test_weights_figure_shows_the_units_with_the_largest_norm_and_says_so(tmp_path):
    norms = np.arange(1, 41, dtype=float)  # unit k has norm k + 1
    W = weights_with_norms(norms)
    fig = plots.weights_figure(W, (8, 8), tmp_path / "w.png", max_units=6)
    assert (tmp_path / "w.png").is_file()
    images = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title().split("\n")[0] for ax in images] == [f"unit {k}" for k in (39, 38, 37, 36, 35, 34)]
    assert images[0].get_title() == "unit 39\nnorm 40"
    title = fig._suptitle.get_text()
    assert "the 6 of 40 units with the largest weight norm" in title
    assert "one colour scale shared by all units" in title
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 1 and colorbars[0].get_ylabel() == "weight (shared scale)"
    assert len({ax.images[0].get_clim() for ax in images}) == 1  # one scale
    fig = plots.weights_figure(W, (8, 8), max_units=4, shared_scale=False)
    images = [ax for ax in fig.axes if ax.images]
    assert {ax.images[0].get_clim() for ax in images} == {(-1.0, 1.0)}
    assert "each unit scaled to its own largest weight" in fig._suptitle.get_text()
    fig = plots.weights_figure(W[:, :3], (8, 8))
    assert "all 3 units, largest weight norm first" in fig._suptitle.get_text()


def test_weights_figure_with_initial_weights_draws_the_change_of_the_units_that_changed_most():
    rng = np.random.default_rng(1)
    initial = rng.normal(size=(25, 10))
    learned = np.zeros((25, 10))
    learned[:, 7] = 3.0  # unit 7 changed most, though unit 2 has the largest weights
    initial[:, 2] *= 10
    fig = plots.weights_figure(initial + learned, (5, 5), initial=initial, max_units=2)
    assert "largest change in training" in fig._suptitle.get_text()
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 4  # the weights, then the change, of the same two units
    assert images[0].get_title().startswith("unit 7") and images[2].get_title().startswith("unit 7")
    np.testing.assert_allclose(images[2].images[0].get_array(), np.full((5, 5), 3.0))
    labels = sorted(ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>")
    assert labels == ["change (shared scale)", "weight (shared scale)"]
    with pytest.raises(ValueError, match="initial"):
        plots.weights_figure(initial, (5, 5), initial=initial[:, :3])
    with pytest.raises(ValueError, match="max_units"):
        plots.weights_figure(initial, (5, 5), max_units=0)


# -- mistakes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("p, text", [(0.5, "50.0%"), (0.973, "97.3%"), (0.995, "99.50%"), (0.9997, "99.970%"),
                                     (0.99996, "1 - 4.0e-05"), (1 - 3.2e-7, "1 - 3.2e-07"),
                                     (1.0, "100% (rounded)")])
def test_confidence_text(p, text):
    assert plots.confidence_text(p) == text


def test_confidences_near_one_read_in_order():
    ps = [0.999, 0.9995, 0.99991, 1 - 2e-5, 1 - 3e-6, 1 - 4e-8]
    texts = [plots.confidence_text(p) for p in ps]
    assert len(set(texts)) == len(ps)
    assert not any(t == "100%" or t.startswith("100.0") for t in texts)


def test_mistakes_figure_ranks_confident_mistakes_with_enough_digits():
    images = np.zeros((4, 8, 8))
    conf = np.array([1 - 3e-6, 1 - 2.5e-8, 0.9997, 1 - 4e-5])
    fig = plots.mistakes_figure(images, [0, 1, 2, 3], [1, 2, 3, 0], conf)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert [t.split("(")[-1].rstrip(")") for t in titles] == ["1 - 2.5e-08", "1 - 3.0e-06", "1 - 4.0e-05",
                                                              "99.970%"]
    assert "most confident first" in fig._suptitle.get_text()


# -- sweeps -------------------------------------------------------------------------------------


def trial(arch, lr, optimizer, seed, acc, loss=0.3, n_params=None):
    row = {a: AXES[a] for a in AXES}
    row.update({"arch": arch, "lr": lr, "optimizer": optimizer, "epochs": 3, "seed": seed, "status": "ok",
                "error": "", "n_params": n_params or 10 * sum(arch), "loss": loss, "accuracy": acc,
                "val_loss": loss, "val_accuracy": acc, "seconds": 0.01, "index": 0, "key": f"{arch}{lr}{seed}",
                "curves": {"val_loss": [0.9, 0.5, loss], "val_accuracy": [0.5, 0.7, acc],
                           "loss": [0.9, 0.5, loss], "accuracy": [0.5, 0.7, acc]}})
    return row


def sweep_trials(seeds=(0, 1, 2)):
    rows = []
    for arch in ([4, 2], [4, 8, 2], [4, 32, 2]):
        for lr in (0.01, 0.1):
            for opt in ("sgd", "adam"):
                for s in seeds:
                    base = 0.5 + 0.1 * len(arch) + (0.05 if opt == "adam" else 0) + (0.02 if lr == 0.1 else 0)
                    acc = base if arch == [4, 32, 2] and opt == "adam" and lr == 0.1 else base - 0.01 * s
                    rows.append(trial(arch, lr, opt, s, min(acc, 0.99), loss=0.5 - 0.1 * s * lr))
    return rows


def test_sweep_accuracy_figure_rings_the_best_marker_and_labels_the_error_bars():
    trials = sweep_trials()
    configs = summarise(trials)
    best = configs[0]
    assert best["arch"] == [4, 32, 2] and best["val_accuracy_std"] == 0.0  # its seeds agree exactly
    fig = plots.sweep_accuracy_figure(configs)
    ax = fig.axes[0]
    ring = next(c for c in ax.collections if c.get_label() == "best (ringed)")
    (rx, ry), = ring.get_offsets()
    group = next(c for c in ax.containers if c.get_label() == "adam, lr=0.1")  # the best's errorbar group
    marker_line = group.lines[0]
    points = set(zip(marker_line.get_xdata(), marker_line.get_ydata()))
    assert (rx, ry) in points and ry == pytest.approx(100 * best["val_accuracy_mean"])
    assert len([a for a in fig.axes if a.get_legend() is not None]) == 1
    texts = legend_texts(ax)
    assert len(texts) == len(set(texts))
    assert texts[-1] == "error bars: ± 1 sd over 3 seeds" and "best (ringed)" in texts
    assert ax.get_xscale() == "log" and len(labelled_ticks(ax, "x")) >= 3


def test_sweep_accuracy_figure_with_two_sizes_still_has_ticks_to_read():
    trials = [trial([4, 2], 0.1, "sgd", 0, 0.8, n_params=10), trial([4, 64, 2], 0.1, "sgd", 0, 0.9, n_params=450)]
    fig = plots.sweep_accuracy_figure(summarise(trials))
    ax = fig.axes[0]
    assert len(labelled_ticks(ax, "x")) >= 3
    assert legend_texts(ax)[-1] == "one seed: no error bars"


def test_sweep_curves_figure_labels_the_bands_once_and_reads_its_log_axis():
    trials = sweep_trials()
    fig = plots.sweep_curves_figure(trials, summarise(trials), top=3)
    ax_loss, ax_acc = fig.axes
    assert ax_loss.get_yscale() == "log" and len(labelled_ticks(ax_loss)) >= 3
    assert ax_loss.get_legend() is None and ax_acc.get_legend() is not None
    texts = legend_texts(ax_acc)
    assert len(texts) == 4 and len(set(texts)) == 4
    assert texts[-1] == "lines: mean over seeds; shaded: lowest to highest over 3 seeds"


def test_sweep_table_says_when_seeds_agree_and_when_it_is_cut():
    trials = sweep_trials()
    result = SweepResult(trials, summarise(trials))
    table = result.format_table(top=10)
    assert "identical over 3 seeds" in table and "± 0.0 " not in table
    assert table.splitlines()[-1] == "top 10 of 12 configurations"
    assert "val accuracy (mean ± sd)" in table
    result.files["configs_csv"] = "out/configs.csv"
    assert result.format_table(top=3).splitlines()[-1] == ("top 3 of 12 configurations; every one is in "
                                                           "out/configs.csv")
    assert "configurations" not in result.format_table().splitlines()[-1]


def test_seeds_that_agree_have_a_spread_of_exactly_zero():
    # 0.1 three times: a mean computed as (0.1 + 0.1 + 0.1) / 3 differs from 0.1 in the last bit
    trials = [trial([4, 2], 0.1, "sgd", s, 0.1) for s in range(3)]
    config, = summarise(trials)
    assert config["val_accuracy_std"] == 0.0 and config["val_accuracy_mean"] == 0.1


def test_confidence_text_refuses_what_is_no_probability():
    for p in (-0.1, 1.5, 2):
        with pytest.raises(ValueError, match=r"confidence_text: expected a probability in \[0, 1\]"):
            plots.confidence_text(p)
    assert plots.confidence_text(np.float32(1) + np.float32(1e-7)) == "100% (rounded)"  # a float32 softmax's 1


def test_seed_spread_never_reads_as_zero_when_seeds_differ():
    assert plots.seed_spread([0.1, 0.1 + 1e-15]) == "± 7.1e-16 (sd)"
    assert plots.seed_spread([1e-9, 2e-9], unit="%") == "± 7.1e-10% (sd)"
