"""The records of a sweep: one row per trial, one per configuration, and their files.

A trial's row is a JSON-friendly dict: its settings (:data:`AXES`), ``key``,
``trial_seed``, ``status``, ``error``, final metrics, ``seconds``, ``worker``
and per-epoch ``curves``. :func:`summarise` groups rows by configuration;
:class:`SweepResult` holds both and prints them; :class:`TrialLog` is the
append-only ``trials.jsonl`` a sweep resumes from.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..filesystem import atomic_write, check_writable, open_regular, write_text

#: The settings a grid may vary, and their defaults (``epochs`` defaults to
#: the ``epochs`` argument of :func:`sweep`).
AXES = {
    "arch": None,
    "activation": "relu",
    "lr": 0.01,
    "batch_size": 32,
    "dropout": 0.0,
    "optimizer": "sgd",
    "epochs": None,
    "seed": 0,
}
#: Per-epoch curves kept for each trial (fit's ``time`` is left out: results
#: must not depend on the machine).
CURVES = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")
#: Columns of ``trials.csv``.
TRIAL_COLUMNS = (
    "index", "key", "status", "arch", "activation", "lr", "batch_size", "dropout", "optimizer",
    "epochs", "seed", "trial_seed", "n_params", "loss", "accuracy", "val_loss", "val_accuracy",
    "seconds", "worker", "blas_threads", "error",
)
#: Columns of ``configs.csv``: one row per configuration, over its seeds.
CONFIG_COLUMNS = (
    "rank", "arch", "activation", "lr", "batch_size", "dropout", "optimizer", "epochs", "n_params",
    "seeds", "ok", "val_accuracy_mean", "val_accuracy_std", "val_loss_mean", "val_loss_std",
    "accuracy_mean", "loss_mean", "seconds",
)
LOG_FORMAT = "flexnet-sweep-log"
#: Every file a sweep writes to its output folder.
OUTPUT_FILES = {"log": "trials.jsonl", "trials_csv": "trials.csv", "configs_csv": "configs.csv",
                "trials_json": "trials.json", "best_model": "best_model.npz",
                "accuracy_figure": "accuracy_vs_params.png", "curves_figure": "top_curves.png"}


def canonical_json(config: dict) -> str:
    """The one text of a configuration that its key and seed are hashed from."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def finite_or_none(value):
    """A metric as JSON wants it: a float, or None for NaN/inf/missing."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def config_label(config: dict, axes: Sequence[str]) -> str:
    """``[25, 8, 2] lr=0.1 optimizer=adam``: the architecture and the given settings."""
    parts = ["[" + ", ".join(map(str, config["arch"])) + "]"]
    parts += [f"{a}={config[a]}" for a in axes if a != "arch"]
    return " ".join(parts)


def _mean_std(values: list) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1: a handful of seeds is a sample;
    exactly 0 for a single value or values that are all the same)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    if all(v == values[0] for v in values):  # exactly 0, never a rounding error's 1e-17
        return float(values[0]), 0.0
    return float(np.mean(values)), float(np.std(values, ddof=1))


@dataclass
class SweepResult:
    """What a sweep produced.

    Attributes:
        trials: one row (dict) per trial, in grid order: the configuration,
            ``key``, ``trial_seed``, ``status`` ("ok", "diverged", "failed"),
            ``error``, ``n_params``, final ``loss``/``accuracy``/``val_loss``/
            ``val_accuracy``, ``seconds``, ``worker`` and per-epoch ``curves``.
        configs: one row per configuration (the trials over its seeds), best
            first: mean and spread (standard deviation) of each metric.
        interrupted: True when Ctrl-C stopped the sweep early.
        pending: trials that did not run (interrupted sweeps).
        files: what was written, by kind ("trials_csv", "best_model", ...).
        best_model: the best configuration's network (its best seed), or None.
    """

    trials: list[dict]
    configs: list[dict]
    interrupted: bool = False
    pending: int = 0
    files: dict = field(default_factory=dict)
    best_model: object = None

    @property
    def best(self) -> dict | None:
        """The best configuration's row (highest mean validation accuracy), or None."""
        return self.configs[0] if self.configs and self.configs[0]["ok"] else None

    def varying(self) -> list[str]:
        """The settings that take more than one value among the configurations."""
        return [a for a in AXES if a != "seed" and len({json.dumps(t[a]) for t in self.trials}) > 1]

    def format_table(self, top: int | None = None) -> str:
        """A text table of the configurations, best first (optionally only ``top``,
        with a line saying how many there are in all).

        The accuracy is the mean over seeds ± the sample standard deviation,
        or "identical over N seeds" when every seed scored exactly the same.
        """
        axes = [a for a in self.varying() if a != "arch"]
        has_val = any(c["val_accuracy_mean"] is not None for c in self.configs)
        which, prefix = ("val", "val_") if has_val else ("train", "")
        several = any(c["ok"] > 1 for c in self.configs)
        header = ("rank", "configuration", "params", "seeds", f"{which} accuracy" + (" (mean ± sd)" if several else ""),
                  f"{which} loss", "time (s)")
        rows = [header]
        for c in self.configs[:top]:
            acc, spread, loss = c[f"{prefix}accuracy_mean"], c[f"{prefix}accuracy_std"], c[f"{prefix}loss_mean"]
            acc_text = "-" if acc is None else _accuracy_text(acc, spread, c["ok"])
            loss_text = "-" if loss is None else f"{loss:.4g}"
            seeds = f"{c['ok']}/{c['seeds']}" if c["ok"] < c["seeds"] else str(c["seeds"])
            rows.append((str(c["rank"]), config_label(c, axes), "-" if c["n_params"] is None else f"{c['n_params']:,}",
                         seeds, acc_text, loss_text, f"{c['seconds']:.2f}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(v.ljust(w) if i == 1 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        if len(rows) - 1 < len(self.configs):
            where = f"; every one is in {self.files['configs_csv']}" if self.files.get("configs_csv") else ""
            lines.append(f"top {len(rows) - 1} of {len(self.configs)} configurations{where}")
        failed = [t for t in self.trials if t["status"] != "ok"]
        for t in failed[:5]:
            error = t["error"] if len(t["error"]) <= 160 else t["error"][:157] + "..."
            lines.append(f"trial {t['index']} ({config_label(t, axes)} seed={t['seed']}) {t['status']}: {error}")
        if len(failed) > 5:
            lines.append(f"... and {len(failed) - 5} more failed trials (see the trials table)")
        return "\n".join(lines)


def _accuracy_text(mean: float, sd, seeds: int) -> str:
    """``97.2%``, ``96.7% ± 0.5`` or ``97.2%, identical over 3 seeds``."""
    text = f"{100 * mean:.1f}%"
    if seeds < 2 or sd is None:
        return text
    if sd == 0:
        return f"{text}, identical over {seeds} seeds"
    digits = 1
    while digits < 4 and round(100 * sd, digits) == 0:  # never "± 0.0" for seeds that differ
        digits += 1
    return f"{text} ± {100 * sd:.{digits}f}"


def summarise(trials: list[dict]) -> list[dict]:
    """One row per configuration: mean and spread over its seeds, best first.

    Ranked by mean validation accuracy (training accuracy without validation
    data), then lower validation loss; configurations with no finished trial last.
    """
    groups: dict[str, list[dict]] = {}
    for t in trials:
        config = {a: t[a] for a in AXES if a != "seed"}
        groups.setdefault(canonical_json(config), []).append(t)
    rows = []
    for text, ts in groups.items():
        ok = [t for t in ts if t["status"] == "ok"]
        row = {**json.loads(text), "n_params": next((t["n_params"] for t in ok), None),
               "seeds": len(ts), "ok": len(ok), "seconds": float(sum(t["seconds"] for t in ts))}
        for metric in ("val_accuracy", "val_loss", "accuracy", "loss"):
            row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std([t[metric] for t in ok])
        rows.append(row)
    has_val = any(r["val_accuracy_mean"] is not None for r in rows)
    acc_key, loss_key = ("val_accuracy_mean", "val_loss_mean") if has_val else ("accuracy_mean", "loss_mean")

    def rank_key(r):
        acc, loss = r[acc_key], r[loss_key]
        return (acc is None and loss is None, -(acc if acc is not None else -1.0),
                loss if loss is not None else math.inf)

    rows.sort(key=rank_key)
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def best_trial(result: SweepResult) -> dict | None:
    """The best seed of the best configuration: highest accuracy, then lowest loss, then lowest seed."""
    best = result.best
    if best is None:
        return None
    ts = [t for t in result.trials if t["status"] == "ok" and all(t[a] == best[a] for a in AXES if a != "seed")]
    key = "val_accuracy" if best["val_accuracy_mean"] is not None else "accuracy"
    return min(ts, key=lambda t: (-(t[key] or 0.0), t["val_loss"] if t["val_loss"] is not None else math.inf,
                                  t["seed"]))


def _csv_value(value):
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else value


def _write_csv(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    with atomic_write(path, "w", newline="", encoding="utf-8") as f:  # whole or not at all
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_csv_value(r.get(c)) for c in columns])


def _write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, allow_nan=False))


class TrialLog:
    """``trials.jsonl``: a header line, then one line per finished trial, flushed at once."""

    def __init__(self, path: Path, header: dict, resume: bool):
        self.path = path
        self.done: dict[str, dict] = {}
        check_writable(path)  # a pipe or a folder in its place is refused, never waited on
        if resume and path.exists():
            self.done = self._read(header)
            self.file = open(path, "a", encoding="utf-8")
        elif path.exists() and not resume:
            raise ValueError(
                f"sweep: {path} already holds results; pass resume=True (--resume) to continue that "
                "sweep, or choose another output folder (or delete the file) to start over"
            )
        else:
            self.file = open(path, "w", encoding="utf-8")
            self.write(header)

    def _read(self, header: dict) -> dict[str, dict]:
        with open_regular(self.path) as f:
            raw = f.read()
        cut = raw.rfind(b"\n") + 1
        if cut < len(raw):  # a line cut short when the sweep was killed while writing it
            with open(self.path, "r+b") as f:
                f.truncate(cut)
        lines = raw[:cut].decode("utf-8").splitlines()
        if not lines:
            write_text(self.path, json.dumps(header) + "\n")
            return {}
        done = {}
        for n, line in enumerate(lines, 1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"sweep(resume): {self.path} line {n} is not valid JSON") from None
            if n > 1:
                if not isinstance(obj, dict) or "key" not in obj:
                    raise ValueError(f"sweep(resume): {self.path} line {n} is not a trial's row")
                done[obj["key"]] = obj
            elif obj.get("format") != LOG_FORMAT:
                raise ValueError(f"sweep(resume): {self.path} is not a flexnet sweep log")
            else:
                changed = [k for k in header if k != "format" and obj.get(k) != header[k]]
                if changed:
                    raise ValueError(
                        f"sweep(resume): {self.path} was written with other {', '.join(changed)} "
                        f"({', '.join(f'{k}={obj.get(k)!r}' for k in changed)}, now "
                        f"{', '.join(f'{k}={header[k]!r}' for k in changed)}); resume with the same data "
                        "and settings, or use another output folder"
                    )
        return done

    def write(self, obj: dict) -> None:
        self.file.write(json.dumps(obj, allow_nan=False) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def write_outputs(result: SweepResult, out: Path, *, figures: bool, top: int) -> dict:
    files = {kind: out / OUTPUT_FILES[kind] for kind in ("log", "trials_csv", "configs_csv", "trials_json")}
    _write_csv(files["trials_csv"], result.trials, TRIAL_COLUMNS)
    _write_csv(files["configs_csv"], result.configs, CONFIG_COLUMNS)
    _write_json(files["trials_json"], {"trials": result.trials, "configs": result.configs,
                                        "interrupted": result.interrupted, "pending": result.pending})
    if result.best_model is not None:
        from ..files.model_file import save

        files["best_model"] = out / OUTPUT_FILES["best_model"]
        save(result.best_model, files["best_model"])
    if figures and result.best is not None:
        try:
            from ..plots import sweep_accuracy_figure, sweep_curves_figure

            sweep_accuracy_figure(result.configs, out / OUTPUT_FILES["accuracy_figure"])
            sweep_curves_figure(result.trials, result.configs, out / OUTPUT_FILES["curves_figure"], top=top)
        except ImportError as exc:  # matplotlib missing: the tables are still there
            warnings.warn(f"sweep: no figures written: {exc}", RuntimeWarning, stacklevel=3)
        else:
            files["accuracy_figure"] = out / OUTPUT_FILES["accuracy_figure"]
            files["curves_figure"] = out / OUTPUT_FILES["curves_figure"]
    return files
