"""Every guide in docs/guides runs from top to bottom, and draws its figures.

The guides are notebooks kept as text (jupytext's MyST markdown). Each one runs
here in a fresh Jupyter kernel (nbclient), in a temporary folder, with
``FLEXNET_GUIDE_FAST=1`` (the guides' small settings) and its figures written
to a temporary folder; a cell that raises fails the test with its traceback.
docs/build.py runs them the same way to build the site.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("flexnet_docs_build", ROOT / "docs" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

GUIDES = build.guide_paths()
#: seconds one cell of a guide may take before the run fails (a whole guide takes 3-30 s)
TIMEOUT = 150


def test_the_six_guides_are_there():
    names = [p.name for p in GUIDES]
    assert len(names) == 6, names
    assert [n.split("-")[0] for n in names] == ["1", "2", "3", "4", "5", "6"]


@pytest.mark.parametrize("path", GUIDES, ids=[p.stem for p in GUIDES])
def test_guide_runs(path, tmp_path):
    figures = tmp_path / "figures"
    nb = build.execute(path, tmp_path, fast=True, figures=figures, timeout=TIMEOUT)
    drawn = sorted(f.name for f in figures.glob("*.png"))
    assert drawn, f"{path.name} drew no figure"
    page = build.to_markdown(nb, path.stem, tmp_path / "page")
    assert page.count("![figure") >= len(drawn), f"{path.name}: a figure was drawn but not shown"
    assert "Traceback" not in page


def test_pages_show_what_cells_printed_drew_and_displayed(tmp_path):
    import base64

    import nbformat.v4 as v4

    png = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
    setup = v4.new_code_cell("import os", metadata={"tags": ["hide-input"]})
    code = v4.new_code_cell("print(1)", outputs=[
        v4.new_output("stream", name="stdout", text="a\n"), v4.new_output("stream", name="stdout", text="b\n"),
        v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
        v4.new_output("display_data", data={"text/html": "<table><tr><td>1</td></tr></table>", "text/plain": "T"}),
    ])
    hidden = v4.new_code_cell("secret()", metadata={"tags": ["remove-cell"]})
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("# Title\n\ntext"), setup, code, hidden])
    page = build.to_markdown(nb, "g", tmp_path)
    assert page.startswith("# Title\n\ntext")
    assert '??? note "Setup' in page and "    import os" in page
    assert "```text\na\nb\n```" in page  # two pieces of printed text, one block
    assert "![figure 1](g_files/figure-1.png)" in page
    assert (tmp_path / "g_files" / "figure-1.png").read_bytes().startswith(b"\x89PNG")
    assert "<table><tr><td>1</td></tr></table>" in page
    assert "secret" not in page
    failed = v4.new_notebook(cells=[v4.new_code_cell("1/0", outputs=[
        v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])])])
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        build.to_markdown(failed, "f", tmp_path)


def test_readme_links_point_inside_the_site():
    text = "[a](docs/files.md#x) [b](src/flexnet/nn/layers.py) [c](https://e.org/docs/x.md) [d](#own)"
    assert build._rewrite_links(text) == ("[a](files.md#x) [b](api/layers.md#flexnet.nn.layers) "
                                          "[c](https://e.org/docs/x.md) [d](#own)")
    assert build._rewrite_links("[g](docs/guides/index.md)", "../") == "[g](../guides/index.md)"
