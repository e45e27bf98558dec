"""scikit-learn's estimator checks: how many pass, fail or are skipped, per estimator.

    python benchmarks/sklearn_checks.py [--failed]

Runs ``sklearn.utils.estimator_checks.check_estimator`` (``on_fail=None``, so
every check runs and reports) on FlexNetClassifier and FlexNetRegressor with
their defaults, and on scikit-learn's MLPClassifier and MLPRegressor with
theirs, and prints a table of the counts. ``--failed`` also lists the checks
that failed or were skipped, with the first line of the reason. Point
``PYTHONPATH`` at another checkout's ``src`` to count an older flexnet.
Estimators that do not take ``sample_weight`` skip the sample-weight checks;
``check_array_api_input`` is skipped unless ``SCIPY_ARRAY_API=1`` was set.
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter


def results(estimator) -> list[dict]:
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return check_estimator(estimator, on_fail=None, on_skip=None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failed", action="store_true", help="list the failed and skipped checks")
    args = parser.parse_args(argv)

    from sklearn.neural_network import MLPClassifier, MLPRegressor

    from flexnet.bridges.estimators import FlexNetClassifier, FlexNetRegressor

    rows = []
    for est in (FlexNetClassifier(random_state=0), MLPClassifier(random_state=0),
                FlexNetRegressor(random_state=0), MLPRegressor(random_state=0)):
        found = results(est)
        counts = Counter(r["status"] for r in found)
        rows.append((type(est).__name__, counts, found))
    print(f"{'estimator':<20} {'passed':>7} {'failed':>7} {'skipped':>8} {'xfail':>6} {'total':>6}")
    for name, counts, _ in rows:
        print(f"{name:<20} {counts['passed']:>7} {counts['failed']:>7} {counts['skipped']:>8} "
              f"{counts['xfail']:>6} {sum(counts.values()):>6}")
    if args.failed:
        for name, _, found in rows:
            for r in found:
                if r["status"] in ("failed", "skipped"):
                    reason = str(r.get("exception") or r.get("reason") or "").strip().splitlines()
                    print(f"{name}: {r['status']} {r['check_name']}: {reason[0][:150] if reason else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
