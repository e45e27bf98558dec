"""Test-run settings shared by every test file.

CI installs every optional package (torch, onnx, onnxruntime, scikit-learn,
joblib, dask, matplotlib, ...), so there a skipped test can only mean a broken
install that would otherwise pass unnoticed: with ``CI`` set, any skip fails
the run. The one exception: tests marked ``gpu``, which need a GPU that CI
lacks. Elsewhere a missing extra skips the tests that need it.
"""

import os


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    skipped = [r for r in skipped if "gpu" not in getattr(r, "keywords", {})]  # CI has no GPU
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; every optional package should be "
                            "installed here, so this run fails", red=True)
        session.exitstatus = 1
