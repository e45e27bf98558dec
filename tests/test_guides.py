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
#: seconds one guide may take in the fast settings before it fails (they take 10-30 s)
TIMEOUT = 150


def test_the_six_guides_are_there():
    names = [p.name for p in GUIDES]
    assert len(names) == 6, names
    assert [n.split("-")[0] for n in names] == ["1", "2", "3", "4", "5", "6"]


@pytest.mark.parametrize("path", GUIDES, ids=[p.stem for p in GUIDES])
def test_guide_runs(path, tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("jupytext")
    figures = tmp_path / "figures"
    nb = build.execute(path, tmp_path, fast=True, figures=figures, timeout=TIMEOUT)
    drawn = sorted(f.name for f in figures.glob("*.png"))
    assert drawn, f"{path.name} drew no figure"
    page = build.to_markdown(nb, path.stem, tmp_path / "page")
    assert page.count("![figure") >= len(drawn), f"{path.name}: a figure was drawn but not shown"
    assert "Traceback" not in page
