"""Optional packages: a missing one gives exit code 2 and the `pip install "flexnet[...]"` that
brings it, on every command that needs it, before any work; a package that only makes
things faster (SciPy) or draws a progress bar (tqdm) is not missed at all.

Each case runs the command in a fresh interpreter in which the packages named cannot be
imported: a finder placed first on ``sys.meta_path`` answers as Python does for a package
that is not installed."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from flexnet.cli import main
from flexnet.data.extras import EXTRAS, MissingExtra, as_missing_extra, optional

SRC = Path(__file__).resolve().parent.parent / "src" / "flexnet"

HIDE = """
import importlib.abc, json, sys
hidden, argv, how = json.loads(sys.argv[1])
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
if how == "finder":
    sys.meta_path.insert(0, NotInstalled())
else:  # what `sys.modules[name] = None` does: import raises at once
    sys.modules.update(dict.fromkeys(hidden))
from flexnet.cli import main
sys.exit(main(argv))
"""


def without(packages, argv, cwd, how="finder"):
    """Run ``flexnet ARGV`` where ``packages`` cannot be imported; (code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-c", HIDE, json.dumps([list(packages), [str(a) for a in argv], how])],
                          capture_output=True, text=True, timeout=120, cwd=cwd, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("extras")
    out = d / "edges.npz"
    assert main(["train", "--data", "edges", "--arch", "25,8,2", "--epochs", "1", "--quiet", "--figure", "-",
                 "--out", str(out)]) == 0
    return out


TRAIN = ["train", "--data", "edges", "--arch", "25,8,2", "--epochs", "1", "--quiet"]


def cases(model, tmp):
    """(hidden packages, argv, the extra named, what must not be written)."""
    sweep = ["sweep", "--arch", "25,2", "--epochs", "1", "--quiet", "--out", tmp / "sweep"]
    return [
        (["sklearn"], [*TRAIN[:2], "digits", *TRAIN[3:], "--figure", "-", "--out", tmp / "m.npz"], "sklearn",
         tmp / "m.npz"),
        (["sklearn"], ["evaluate", model, "--data", "digits", "--figures", "-"], "sklearn", None),
        (["sklearn"], ["compare", "--data", "digits", "--epochs", "1", "--out", "-"], "sklearn", None),
        (["sklearn"], ["sweep", "--data", "digits", "--arch", "64,10", "--epochs", "1", "--out", tmp / "sk"],
         "sklearn", None),
        (["PIL"], ["predict", model, tmp / "digit.png"], "images", None),
        (["matplotlib"], [*TRAIN, "--figure", tmp / "curves.png", "--out", tmp / "m.npz"], "plot", tmp / "m.npz"),
        (["matplotlib"], [*TRAIN, "--show", "--out", tmp / "m.npz"], "plot", tmp / "m.npz"),
        (["matplotlib"], ["evaluate", model, "--figures", tmp / "fig"], "plot", None),
        (["matplotlib"], ["compare", "--epochs", "1", "--out", tmp / "c.png"], "plot", None),
        (["torch"], ["export", model, "--format", "torch", "--out", tmp / "m.pt"], "torch", tmp / "m.pt"),
        (["onnx"], ["export", model, "--format", "onnx", "--out", tmp / "m.onnx"], "onnx", tmp / "m.onnx"),
        (["joblib"], [*sweep, "--jobs", "2"], "sweep", tmp / "sweep"),
        (["joblib"], ["compare", "--epochs", "1", "--jobs", "2", "--out", "-"], "sweep", None),
        (["dask", "distributed"], [*sweep, "--scheduler", "tcp://127.0.0.1:9"], "sweep", tmp / "sweep"),
    ]


def test_a_missing_package_is_exit_2_with_the_extra_on_every_command(model, tmp_path):
    (tmp_path / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # never opened: Pillow is missing
    failures = []
    for hidden, argv, extra, unwritten in cases(model, tmp_path):
        code, _, err = without(hidden, argv, tmp_path)
        line = f'pip install "flexnet[{extra}]"'
        ok = (code == 2 and line in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
              and (unwritten is None or not Path(unwritten).exists()))
        if not ok:
            failures.append(f"{hidden} {argv[0]}: exit {code}: {err.strip()[-300:]}")
    assert not failures, "\n".join(failures)


def test_sys_modules_none_is_a_missing_package_too(tmp_path):
    code, _, err = without(["sklearn"], [*TRAIN[:2], "digits", *TRAIN[3:], "--figure", "-",
                                         "--out", tmp_path / "m.npz"], tmp_path, how="none")
    assert code == 2 and 'pip install "flexnet[sklearn]"' in err and "Traceback" not in err


def test_figures_written_only_by_default_are_skipped_with_a_note(model, tmp_path):
    code, out, err = without(["matplotlib"], [*TRAIN, "--out", tmp_path / "m.npz"], tmp_path)
    assert code == 0 and (tmp_path / "m.npz").is_file() and not (tmp_path / "m-curves.png").exists()
    assert "no figure written" in err and 'flexnet[plot]' in err
    code, out, err = without(["matplotlib"], ["evaluate", model], tmp_path)
    assert code == 0 and "accuracy" in out and "no figure written" in err
    code, out, err = without(["matplotlib"], ["compare", "--epochs", "1"], tmp_path)
    assert code == 0 and not (tmp_path / "compare.png").exists() and "no figure written" in err


@pytest.mark.parametrize("hidden, argv", [
    (["scipy"], [*TRAIN, "--figure", "-", "--out", "m.npz"]),
    (["scipy"], ["gradcheck", "--activation", "gelu"]),  # erf without SciPy
    (["tqdm"], [*TRAIN[:-1], "--figure", "-", "--out", "m.npz"]),  # a progress bar asked for
    (["sklearn"], ["datasets"]),  # the listing says what digits needs
])
def test_packages_that_only_help_are_not_missed(tmp_path, hidden, argv):
    code, out, err = without(hidden, argv, tmp_path)
    assert code == 0, err
    assert "Traceback" not in err
    if argv == ["datasets"]:
        assert "flexnet[sklearn]" in out


def test_the_error_names_the_package_the_extra_and_the_purpose():
    with pytest.raises(MissingExtra) as info:
        optional("sklearn_not_a_package_at_all", "a test")
    assert isinstance(info.value, ImportError)
    err = MissingExtra("PIL.Image", "reading images", ModuleNotFoundError("No module named 'PIL'", name="PIL"))
    assert (err.package, err.extra, err.purpose) == ("Pillow", "images", "reading images")
    assert str(err) == 'reading images needs Pillow; install it with: pip install "flexnet[images]"'
    broken = MissingExtra("torch", "the PyTorch bridge", ImportError("libtorch.so: cannot open"))
    assert "importing it failed: libtorch.so: cannot open" in str(broken)
    import pickle

    assert str(pickle.loads(pickle.dumps(err))).startswith("reading images needs Pillow")
    assert as_missing_extra(ModuleNotFoundError("No module named 'dask'", name="dask"), "x").extra == "sweep"
    assert as_missing_extra(ImportError("cannot import name 'foo' from 'flexnet'", name="flexnet"), "x") is None


def test_a_failing_import_of_flexnet_itself_is_a_failure_not_a_missing_extra(tmp_path):
    code, _, err = without(["flexnet.files"], ["info", "x.npz"], tmp_path)  # hides nothing optional
    assert code != 2 or "pip install" not in err


# Where an optional package may be imported directly, and why: everywhere else it goes
# through flexnet.data.extras.optional, so its absence is the one error with the hint.
QUIET_FALLBACK = {
    "flexnet/ops/__init__.py": {"scipy"},  # BLAS axpy when SciPy is there, NumPy otherwise
    "flexnet/ops/threads.py": {"threadpoolctl"},  # a required dependency: the thread limits
    "flexnet/nn/activations.py": {"scipy"},  # erf: SciPy's, or math.erf
    "flexnet/training/loop.py": {"tqdm"},  # a progress bar, or none
    "flexnet/training/notebook.py": {"tqdm"},  # a widget in a notebook, a text bar, or none
    "flexnet/data/fetch.py": {"tqdm"},
    "flexnet/data/tables.py": {"pyarrow"},  # pyarrow's CSV reader, or NumPy's
    "flexnet/bridges/estimators.py": {"sklearn"},  # the scikit-learn bridge itself, never imported by the CLI
}


def test_every_optional_import_goes_through_the_helper():
    direct = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in EXTRAS and top not in QUIET_FALLBACK.get(rel, set()):
                    direct.append(f"{rel}:{node.lineno}: import {name}")
    assert not direct, "optional packages imported without flexnet.data.extras.optional:\n" + "\n".join(direct)
