"""The README's examples run, in order, as a reader pastes them.

Every ```python block of README.md runs, one after the other, in one namespace
(a reader's interpreter session), and every ```bash block runs in a shell, with
``flexnet`` meaning this interpreter's ``python -m flexnet``. They run in a
fresh temporary folder, with ``MPLBACKEND=Agg``, in a child process with a
time limit.

A block opts out with an HTML comment on the line before it, which the
rendered README does not show::

    <!-- readme-test: skip (the reason) -->

An opt-out needs a reason; few blocks have one (installing packages, the test
command itself, servers in the background, minutes of training).

A plain ``` block preceded by ``<!-- readme-test: output -->`` is what the
python block before it prints: the test compares the two (``...`` stands for
any text, as in doctests; runs of spaces compare equal).

Run ``python tests/test_readme.py`` to run the examples by hand: each block's
README line is printed before it runs.
"""

from __future__ import annotations

import doctest
import io
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import redirect_stdout
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
OUTPUT = re.compile(r"<!--\s*readme-test:\s*output\s*-->")
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\s*$")
TIMEOUT = 300  # seconds for every block together


def blocks(text: str) -> list[dict]:
    """Every fenced block: its language, first line number, code, and the marker before it."""
    found, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, start = len(m["indent"]), i + 1
        j = start
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        code = textwrap.dedent("\n".join(line[indent:] for line in lines[start:j])) + "\n"
        before = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        skip = SKIP.search(before)
        found.append({"lang": m["lang"], "line": start, "code": code,
                      "skip": skip["reason"] if skip else None, "output": bool(OUTPUT.search(before))})
        i = j + 1
    return found


def runnable(text: str) -> list[dict]:
    """The blocks the test runs, each python block with the output it must print (or None)."""
    found, out = blocks(text), []
    for k, b in enumerate(found):
        if b["lang"] not in ("python", "bash") or b["skip"]:
            continue
        after = found[k + 1] if k + 1 < len(found) else None
        b["expect"] = after["code"] if after is not None and after["output"] and b["lang"] == "python" else None
        out.append(b)
    return out


def run_all(text: str, folder: Path) -> None:
    """Run the README's blocks in ``folder``; raise AssertionError naming the block that failed."""
    from flexnet.data.datasets import idx_files

    try:  # the README loads Fashion-MNIST, which would download it; a test never downloads
        idx_files("fashion-mnist", download=False)
    except FileNotFoundError as exc:
        raise AssertionError(f"the README's examples need Fashion-MNIST's files here (Debian package "
                             f"dataset-fashion-mnist, or $FLEXNET_DATA): {exc}") from exc
    bin_dir = folder / ".bin"
    bin_dir.mkdir(parents=True)
    shim = bin_dir / "flexnet"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m flexnet "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", MPLBACKEND="Agg")
    namespace: dict = {"__name__": "__main__"}
    os.chdir(folder)
    for b in runnable(text):
        start = time.perf_counter()
        print(f"--- README.md line {b['line']} ({b['lang']})", flush=True)
        if b["lang"] == "bash":
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", b["code"]], env=env, timeout=TIMEOUT,
                                  capture_output=True, text=True)
            sys.stdout.write(proc.stdout)
            if proc.returncode != 0:
                raise AssertionError(f"README.md line {b['line']}: the bash block exited with {proc.returncode}\n"
                                     f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
            print(f"--- ({time.perf_counter() - start:.1f} s)")
            continue
        captured = io.StringIO()
        try:
            with redirect_stdout(captured):
                exec(compile(b["code"], f"README.md line {b['line']}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"README.md line {b['line']}: {type(exc).__name__}: {exc}") from exc
        printed = captured.getvalue()
        sys.stdout.write(printed)
        print(f"--- ({time.perf_counter() - start:.1f} s)")
        if b["expect"] is not None:
            checker = doctest.OutputChecker()
            flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
            if not checker.check_output(b["expect"], printed, flags):
                raise AssertionError(f"README.md line {b['line']} printed\n{printed}\nwhere the README shows\n"
                                     f"{b['expect']}")


def test_readme_markers_have_reasons_and_are_few():
    text = README.read_text(encoding="utf-8")
    found = blocks(text)
    skipped = [b for b in found if b["skip"]]
    assert len(skipped) <= 6, [b["line"] for b in skipped]
    assert all(b["skip"].strip() for b in skipped)
    # a marker that names no known action is a typo, not a silent opt-out
    for m in re.finditer(r"<!--\s*readme-test:(?P<rest>.*?)-->", text):
        assert SKIP.match(m[0]) or OUTPUT.match(m[0]), m[0]
    assert sum(b["lang"] == "python" for b in runnable(text)) >= 8


def test_blocks_parser_reads_markers():
    text = ("x\n<!-- readme-test: skip (slow) -->\n```bash\nsleep 100\n```\n\n```python\nprint(1)\n```\n"
            "<!-- readme-test: output -->\n```\n1\n```\n")
    found = runnable(text)
    assert [(b["lang"], b["line"], b["expect"]) for b in found] == [("python", 7, "1\n")]


def test_readme_examples_run():
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, __file__, tmp], capture_output=True, text=True, timeout=TIMEOUT,
                              env=dict(os.environ, MPLBACKEND="Agg"))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="readme-"))
    run_all(README.read_text(encoding="utf-8"), target.resolve())
    print("all README blocks ran")
