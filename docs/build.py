"""Build the documentation site: run the guides, write their pages, then ``mkdocs build --strict``.

    python docs/build.py            # the site in site/ (open site/index.html)
    python docs/build.py --fast     # the guides' small settings (FLEXNET_GUIDE_FAST=1)
    python docs/build.py --no-site  # only the pages, in build/docs/
    python docs/build.py --reuse    # the guides' last runs where a guide has not changed

The guides in ``docs/guides/`` are notebooks kept as text (jupytext's MyST
markdown): each is executed here with nbclient in a fresh kernel, and written
to ``build/docs/guides/`` as a markdown page with its code, its printed output
and its figures (PNG files beside the page). The README becomes the home page,
``ARCHITECTURE.md`` and ``docs/*.md`` the reference pages, and ``docs/api/``
the API reference that mkdocstrings builds from the docstrings. mkdocs.yml
reads ``build/docs``; strict mode fails on a broken link or reference.

tests/test_guides.py runs the guides through :func:`execute` too.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GUIDES = DOCS / "guides"
BUILD = ROOT / "build" / "docs"
#: seconds one cell of a guide may take before the run fails
GUIDE_TIMEOUT = 300

#: README and reference links that point outside the site, and where they go inside it.
SOURCE_LINKS = {
    "src/flexnet/nn/layers.py": "api/layers.md#flexnet.nn.layers",
    "src/flexnet/nn/losses.py": "api/layers.md#flexnet.nn.losses",
    "src/flexnet/nn/network.py": "api/network.md#flexnet.nn.network",
    "src/flexnet/optim/optimizers.py": "api/optim.md#flexnet.optim.optimizers",
    "ARCHITECTURE.md": "architecture.md",
}


def guide_paths() -> list[Path]:
    """The guides in reading order (their names start with their number)."""
    return sorted(GUIDES.glob("[0-9]*.md"))


def execute(path: Path, cwd: Path, *, fast: bool, figures: Path | None = None, timeout: int = GUIDE_TIMEOUT):
    """Run one guide in a fresh kernel with ``cwd`` as its folder; returns the executed notebook.

    ``FLEXNET_GUIDE_FAST=1`` asks the guide for its small settings;
    ``FLEXNET_GUIDE_FIGURES`` is where it writes its figures. A cell that
    raises stops the run with ``nbclient``'s CellExecutionError (the cell and
    the traceback).
    """
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    env_before = {k: os.environ.get(k) for k in ("FLEXNET_GUIDE_FAST", "FLEXNET_GUIDE_FIGURES", "MPLBACKEND")}
    os.environ["FLEXNET_GUIDE_FAST"] = "1" if fast else "0"
    os.environ["FLEXNET_GUIDE_FIGURES"] = str(figures or (cwd / "figures"))
    os.environ.pop("MPLBACKEND", None)  # each guide chooses its own (it saves figures, then shows the files)
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}})
        client.execute()
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _output(text: str) -> str:
    """What a cell printed, as a block the site's style sets apart from code."""
    return f'<div class="guide-output" markdown>\n\n```text\n{text.rstrip()}\n```\n\n</div>'


def to_markdown(nb, stem: str, out_dir: Path) -> str:
    """An executed notebook as a markdown page; its images go to ``out_dir/<stem>_files/``."""
    files = out_dir / f"{stem}_files"
    parts, n_images = [], 0
    for cell in nb.cells:
        tags = _tags(cell)
        if "remove-cell" in tags:
            continue
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        if "hide-input" in tags:  # shown folded: the setup a reader may skip
            code = textwrap.indent(f"```python\n{cell.source.rstrip()}\n```", "    ")
            parts.append(f'??? note "Setup: imports, settings, where figures go"\n\n{code}')
        elif "remove-input" not in tags and cell.source.strip():
            parts.append(f"```python\n{cell.source.rstrip()}\n```")
        if "remove-output" in tags:
            continue
        printed = ""  # consecutive printed text is one block, however the kernel sent it
        for out in cell.get("outputs", []) + [{"output_type": "end"}]:
            kind = out.get("output_type")
            if kind == "stream":
                printed += out.get("text", "")
                continue
            if printed.strip():
                parts.append(_output(printed))
            printed = ""
            if kind in ("execute_result", "display_data"):
                data = out.get("data", {})
                if "image/png" in data:
                    files.mkdir(parents=True, exist_ok=True)
                    n_images += 1
                    name = f"{stem}_files/figure-{n_images}.png"
                    (out_dir / name).write_bytes(base64.b64decode(data["image/png"]))
                    parts.append(f"![figure {n_images}]({name})")
                elif "text/html" in data:
                    parts.append('<div class="guide-output" markdown="0">\n' + data["text/html"].strip() + "\n</div>")
                elif "text/markdown" in data:
                    parts.append(data["text/markdown"])
                elif "text/plain" in data:
                    parts.append(_output(data["text/plain"]))
            elif kind == "error":
                raise RuntimeError(f"{stem}: a cell failed: {out.get('ename')}: {out.get('evalue')}")
    return "\n\n".join(parts) + "\n"


def _rewrite_links(text: str, prefix: str = "") -> str:
    """Point README links at pages of the site: docs/x.md -> x.md, source files -> the API reference."""
    def fix(m):
        target = m.group(2)
        anchor = ""
        if "#" in target and not target.startswith("#"):
            target, anchor = target.split("#", 1)
            anchor = "#" + anchor
        if target in SOURCE_LINKS:
            return f"]({prefix}{SOURCE_LINKS[target]}{anchor})"
        if target.startswith("docs/"):
            return f"]({prefix}{target[len('docs/'):]}{anchor})"
        return m.group(0)
    return re.sub(r"\]\(((?!https?:)([^)\s]+))\)", fix, text)


def pages(*, fast: bool, reuse: bool = False) -> None:
    """Write every page of the site into ``build/docs``.

    ``reuse``: take a guide's outputs from its last run (``build/guide-runs/``)
    when the guide has not changed since, instead of running it again.
    """
    import nbformat

    if BUILD.exists():
        shutil.rmtree(BUILD)
    BUILD.mkdir(parents=True)
    (BUILD / "index.md").write_text(_rewrite_links(ROOT.joinpath("README.md").read_text(encoding="utf-8")),
                                    encoding="utf-8")
    (BUILD / "architecture.md").write_text(_rewrite_links((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")),
                                           encoding="utf-8")
    for page in DOCS.glob("*.md"):
        shutil.copy(page, BUILD / page.name)
    shutil.copytree(DOCS / "api", BUILD / "api")
    if (DOCS / "assets").exists():
        shutil.copytree(DOCS / "assets", BUILD / "assets")
    out_dir = BUILD / "guides"
    out_dir.mkdir()
    shutil.copy(GUIDES / "index.md", out_dir / "index.md")
    for path in guide_paths():
        start = time.perf_counter()
        work = ROOT / "build" / "guide-runs" / path.stem
        saved = work.parent / f"{path.stem}.ipynb"
        nb = nbformat.read(saved, as_version=4) if reuse and saved.exists() else None
        if nb is not None and (saved.stat().st_mtime < path.stat().st_mtime
                               or nb.metadata.get("flexnet_guide_fast") != fast):
            nb = None  # the guide changed since, or ran with the other settings
        if nb is None:
            if work.exists():
                shutil.rmtree(work)
            work.mkdir(parents=True)
            nb = execute(path, work, fast=fast)
            nb.metadata["flexnet_guide_fast"] = fast
            nbformat.write(nb, saved)
        text = to_markdown(nb, path.stem, out_dir)
        note = (f'!!! note "This page is a notebook"\n    It was run to build this page: '
                f"`docs/guides/{path.name}` (jupytext MyST markdown). Open it in Jupyter with jupytext "
                f"installed, or run every guide with `python -m pytest tests/test_guides.py`.\n\n")
        title, _, rest = text.partition("\n")
        (out_dir / path.name).write_text(_rewrite_links(title + "\n\n" + note + rest.lstrip("\n"), "../"),
                                         encoding="utf-8")
        print(f"ran {path.name} in {time.perf_counter() - start:.1f} s", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="the guides' small settings")
    parser.add_argument("--no-site", action="store_true", help="write the pages only, no mkdocs build")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a guide's last run when the guide has not changed since")
    args = parser.parse_args(argv)
    pages(fast=args.fast, reuse=args.reuse)
    if args.no_site:
        return 0
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml")],
                          cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
