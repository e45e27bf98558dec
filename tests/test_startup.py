"""Start-up: what ``import flexnet`` and the quick commands load.

``python -c "import flexnet"`` should cost little more than importing NumPy,
and ``flexnet --help``, ``flexnet datasets`` and ``flexnet info`` should answer
at once: optional packages, Python's HTTP stack and threadpoolctl are
imported only where they are used. benchmarks/startup.py measures the times;
these tests guard the import lists, which is what the times follow.
"""

import json
import subprocess
import sys

import pytest

import flexnet

#: Never loaded by ``import flexnet`` or by the quick commands.
HEAVY = ("torch", "onnx", "onnxruntime", "sklearn", "scipy", "matplotlib", "pandas", "pyarrow", "joblib",
         "dask", "distributed", "PIL", "tqdm", "threadpoolctl", "urllib.request", "http.client", "ssl",
         "email", "multiprocessing", "concurrent")


def _loaded_after(code: str) -> list[str]:
    script = (f"import sys\n{code}\n"
              "import json\n"
              f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_flexnet_loads_nothing_heavy():
    assert _loaded_after("import flexnet") == []


@pytest.mark.parametrize("argv", [["--help"], ["datasets"], ["info", "MODEL"], ["--version"]])
def test_the_quick_commands_load_nothing_heavy(argv, tmp_path):
    model = tmp_path / "m.npz"
    flexnet.save(flexnet.Network([4, 3, 2], seed=0), model)
    argv = [str(model) if a == "MODEL" else a for a in argv]
    code = ("from flexnet.cli import main\n"
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        code = main({argv!r})\n"
            "    except SystemExit as exc:\n"
            "        code = exc.code\n"
            "assert code == 0, code\n")
    assert _loaded_after(code) == []


def test_the_downloader_still_loads_when_used():
    assert _loaded_after("import flexnet.data\nflexnet.data.download") == ["email", "http.client", "ssl",
                                                                           "urllib.request"]


def test_data_reexports_the_downloader_lazily():
    from flexnet import data
    from flexnet.data import fetch

    assert data.download is fetch.download and data.DownloadError is fetch.DownloadError
    assert data.sha256_of is fetch.sha256_of
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        data.nope  # noqa: B018


def test_datasets_finds_the_digits_without_importing_scikit_learn(monkeypatch):
    from flexnet.data import datasets

    info = datasets.REGISTRY["digits"]
    assert info.where() == "bundled with sklearn"
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    assert info.where() == 'needs sklearn: pip install "flexnet[sklearn]"'
