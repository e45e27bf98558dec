"""In a notebook: the progress bar's choice, the HTML views of networks, summaries,
traces and histories, History.plot; and one real Jupyter kernel running them."""

import io
import re
import sys
import types
import warnings

import numpy as np
import pytest

import flexnet
from flexnet.files import model_file
from flexnet.training import notebook
from flexnet.training.network import Summary


def _ipython(shell_class_name):
    """A stand-in for the IPython module whose get_ipython() returns a shell of that class."""
    shell = type(shell_class_name, (), {})()
    return types.SimpleNamespace(get_ipython=lambda: shell)


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


NOTEBOOK = {"ipykernel": object(), "IPython": _ipython("ZMQInteractiveShell")}


@pytest.mark.parametrize("modules, environ, expected", [
    ({}, {}, False),  # a plain script
    (NOTEBOOK, {}, True),  # Jupyter notebook, JupyterLab, VS Code
    ({"IPython": _ipython("TerminalInteractiveShell")}, {}, False),  # IPython in a terminal
    ({"ipykernel": object(), "IPython": _ipython("TerminalInteractiveShell")}, {}, False),
    ({"ipykernel": object(), "IPython": _ipython("ZMQInteractiveShell")}, {"QT_API": "pyqt5"}, False),  # qtconsole
    ({"ipykernel": object(), "IPython": _ipython("ZMQInteractiveShell")}, {"SPYDER_ARGS": "x"}, False),
    ({"ipykernel": object(), "IPython": types.SimpleNamespace(get_ipython=lambda: None)}, {}, False),
    ({"ipykernel": object(), "IPython": types.SimpleNamespace()}, {}, False),  # no get_ipython at all
])
def test_in_notebook(modules, environ, expected):
    assert notebook.in_notebook(modules, environ) is expected


@pytest.mark.parametrize("progress, tty, modules, expected", [
    (None, True, {}, "text"),  # a terminal
    (None, False, {}, None),  # a pipe or a log file stays clean
    (None, False, NOTEBOOK, "widget"),  # a notebook's stderr is no terminal, but shows a bar
    (True, False, {}, "text"),
    (True, False, NOTEBOOK, "widget"),
    (False, True, {}, None),
    (False, False, NOTEBOOK, None),
])
def test_progress_kind(progress, tty, modules, expected):
    assert notebook.progress_kind(progress, _Stream(tty), modules, {}) == expected


def test_progress_kind_without_stderr():
    class NoStream:
        pass

    assert notebook.progress_kind(None, NoStream(), {}, {}) is None


def test_progress_class_falls_back_to_the_text_bar_without_ipywidgets_and_without_a_warning(monkeypatch):
    from tqdm import std

    fake = types.ModuleType("tqdm.notebook")
    fake.IProgress = None  # what tqdm.notebook holds when ipywidgets is missing
    fake.tqdm = object()
    monkeypatch.setitem(sys.modules, "tqdm.notebook", fake)
    import tqdm

    monkeypatch.setattr(tqdm, "notebook", fake, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert notebook.progress_class("widget") is std.tqdm
        assert notebook.progress_class("text") is std.tqdm
    assert notebook.progress_class(None) is None
    fake.IProgress = object  # ipywidgets present: the widget
    assert notebook.progress_class("widget") is fake.tqdm


def test_progress_class_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.std", None)
    assert notebook.progress_class("text") is None and notebook.progress_class("widget") is None


def test_fit_asks_the_decision_function(monkeypatch):
    """fit(progress=None) in a 'notebook' draws a bar although stderr is no terminal."""
    from flexnet.training import loop

    drawn = []

    class Bar:
        def __init__(self, **kwargs):
            drawn.append(kwargs["desc"])

        def update(self, n=1):
            pass

        def set_postfix(self, *a, **k):
            pass

        def set_description_str(self, desc, refresh=True):
            drawn.append(desc)

        def close(self):
            pass

    monkeypatch.setattr(loop, "progress_kind", lambda progress: "widget" if progress is None else None)
    monkeypatch.setattr(loop, "progress_class", lambda kind: Bar if kind else None)
    x = np.random.default_rng(0).normal(size=(16, 3))
    y = (x[:, 0] > 0).astype(int)
    flexnet.Network([3, 4, 2], seed=0).fit(x, y, epochs=2, batch_size=8, seed=0)
    assert drawn[0] == "epoch 1/2"  # one bar for the run, its text moving on with the epochs
    assert any(d.startswith("epoch 2/2") for d in drawn)


# -- HTML views --------------------------------------------------------------------


def test_summary_is_the_same_text_and_a_table_in_a_notebook():
    net = flexnet.Network([4, 8, 3], batchnorm=True, seed=0)
    s = net.summary()
    assert isinstance(s, str) and isinstance(s, Summary)
    assert s == model_file.summary(net)  # print(net.summary()) is unchanged
    assert repr(s) == str(s)  # not one quoted line with \n in it
    page = s._repr_html_()
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    assert len(rows) == 1 + 4 + 2  # header, 4 layers, loss, total
    assert "<th>layer</th><th>output</th><th>params</th>" in rows[0]
    assert "layers.0: Linear(4 -&gt; 8)" in rows[1] and ">40<" in rows[1]
    assert "total (float32)" in rows[-1] and f">{net.n_params():,}<" in rows[-1]


def test_network_html_shows_its_repr_and_its_layers():
    net = flexnet.Network([3, 16, 1], loss="mse", seed=0)
    page = net._repr_html_()
    assert "Network([3, 16, 1]" in page and "<table>" in page and "Linear(3 -&gt; 16)" in page
    seq = flexnet.Sequential([flexnet.Linear(3, 2)])
    assert "Sequential" in seq._repr_html_()


def _history(epochs=12, val=True):
    x = np.random.default_rng(0).normal(size=(80, 4))
    y = (x[:, 0] > 0).astype(int)
    net = flexnet.Network([4, 8, 2], seed=0)
    return net.fit(x, y, epochs=epochs, batch_size=16, seed=0, progress=False,
                   validation_split=0.25 if val else 0.0)


def test_history_html_has_the_final_numbers_and_a_small_table():
    h = _history(25)
    page = h._repr_html_()
    assert "25 epochs" in page and f"final loss {h['loss'][-1]:.4g}" in page
    assert "best val_accuracy" in page and "10 of 25 epochs" in page
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    assert len(rows) == 1 + 10 and "<th>val_loss</th>" in rows[0]
    assert rows[1].startswith("<td>1</td>") and rows[-1].startswith("<td>25</td>")
    assert "0 epochs" in flexnet.History()._repr_html_()


def test_history_plot_draws_loss_and_metrics_with_validation_beside_training(tmp_path):
    h = _history(5)
    fig = h.plot(path=tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    for ax in fig.axes:
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels == ["training", "validation"]
    np.testing.assert_allclose(fig.axes[0].get_lines()[1].get_ydata(), h["val_loss"])
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), 100 * np.array(h["accuracy"]))
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == h.epoch
    only = _history(3, val=False).plot(metrics="loss")
    assert len(only.axes) == 1 and [line.get_label() for line in only.axes[0].get_lines()] == ["training"]


def test_history_plot_turns_the_loss_axis_logarithmic_over_decades():
    h = flexnet.History({"loss": [1.0, 0.1, 0.005, 0.0001]}, [1, 2, 3, 4])
    assert h.plot().axes[0].get_yscale() == "log"
    assert flexnet.History({"loss": [1.0, 0.5]}, [1, 2]).plot().axes[0].get_yscale() == "linear"


def test_history_plot_refuses_a_metric_it_does_not_have():
    with pytest.raises(ValueError, match=r"no values recorded for \['f1'\]"):
        _history(2).plot(metrics=["loss", "f1"])
    with pytest.raises(ValueError, match="no values"):
        flexnet.History().plot()


# -- a real kernel -----------------------------------------------------------------


def test_in_a_jupyter_kernel(monkeypatch):
    """fit draws its bar (a text bar: no ipywidgets here) without a warning; summary,
    trace, History and the network show as HTML; summary's plain text is the table."""
    # A notebook's own backend draws inline; MPLBACKEND=Agg (as CI sets for the other
    # tests) would be inherited by the kernel and turn inline figures into text.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    import nbclient  # the test extra installs it, and ipykernel
    import nbformat
    cells = [
        "import warnings\nwarnings.simplefilter('error')\nimport numpy as np, flexnet\n"
        "from flexnet.training.notebook import in_notebook\nprint(in_notebook())",
        "net = flexnet.Network([4, 8, 3], seed=0)\nx = np.random.default_rng(0).normal(size=(64, 4))\n"
        "y = (x[:, 0] > 0).astype(int)\nh = net.fit(x, y, epochs=2, batch_size=16, seed=0)\n"
        "warnings.resetwarnings()",
        "net.summary()", "net.trace(x[:8], y[:8], lr=0.1)", "h", "net",
        "fig = h.plot()\nfig",  # shown once, inline: not again as a figure left open
        "import matplotlib.pyplot as plt\nplt.plot([1, 2]);",  # the notebook's backend is still inline
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    out = [cell.outputs for cell in nb.cells]
    assert out[0][0]["text"].strip() == "True"
    stderr = "".join(o.get("text", "") for o in out[1] if o.get("name") == "stderr")
    assert "epoch 2/2" in stderr and "100%" in stderr and "Warning" not in stderr
    for outputs in out[2:6]:
        assert "text/html" in outputs[-1]["data"] and "<table>" in outputs[-1]["data"]["text/html"]
    assert [o["output_type"] for o in out[6]] == ["execute_result"] and "image/png" in out[6][0]["data"]
    assert [o["output_type"] for o in out[7]] == ["display_data"] and "image/png" in out[7][0]["data"]
    assert out[2][-1]["data"]["text/plain"].startswith("layer ")  # the table, not "'layer ...\\n...'"
