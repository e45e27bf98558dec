"""The ``flexnet`` command line.

Every command is a function ``cmd_<name>(args) -> int``; ``main`` turns a
user's mistake into one line on stderr and exit code 2, a failure while
running into exit code 1, and shows a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import numpy as np

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in what the user asked for (exit code 2)."""


def parse_arch(text: str) -> list[int]:
    """``"25,8,2"`` -> ``[25, 8, 2]``."""
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 25,8,2, got {text!r}"
        ) from None
    if len(sizes) < 2 or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected at least two positive layer sizes such as 25,8,2, got {text!r}"
        )
    return sizes


def parse_seeds(text: str) -> list[int]:
    """``"42"`` -> ``[42]``; ``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"1,5,9"`` -> ``[1, 5, 9]``."""
    try:
        if "-" in text.strip("-"):
            lo, hi = text.split("-", 1)
            seeds = list(range(int(lo), int(hi) + 1))
        else:
            seeds = [int(s) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds such as 42, 0-4 or 1,5,9, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected at least one seed, got {text!r}")
    return seeds


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


# -- commands ----------------------------------------------------------------


def cmd_compare(args) -> int:
    from ..experiments.compare import TUTORIAL_ARCHITECTURES, compare, format_table

    _check_output(args.out, "--out")
    data, where = None, "the edge patches"
    archs = args.arch or [list(a) for a in TUTORIAL_ARCHITECTURES]
    if args.data != "edges":
        data, n_features, n_classes = _compare_data(args)
        where = args.data
        archs = args.arch or [[n_features, n_classes], [n_features, 64, n_classes],
                              [n_features, 128, 64, n_classes]]
        for arch in archs:
            _check_arch(arch, n_features, n_classes, args.data)
    print(f"Training {len(archs)} architecture(s) x {len(args.seeds)} seed(s) on {where} "
          f"({args.epochs} epochs, batch {args.batch_size}, lr {args.lr})")
    results = compare(archs, data=data, seeds=args.seeds, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, jobs=args.jobs, scheduler=args.scheduler)
    print(format_table(results))
    if args.out != "-":
        try:
            from ..plots import compare_figure
        except ImportError as exc:  # pragma: no cover - plots imports lazily
            raise UsageError(str(exc)) from exc
        try:
            seeds = f", {len(args.seeds)} seeds" if len(args.seeds) > 1 else ""
            compare_figure(results, args.out, show=args.show,
                           title=f"Comparing architectures on {where} ({args.epochs} epochs{seeds})")
        except ImportError as exc:
            print(f"flexnet: no figure written: {exc}", file=sys.stderr)
            return EXIT_OK
        print(f"Figure written to {args.out}")
    return EXIT_OK


def _compare_data(args):
    """``(X_train, y_train, X_test, y_test)`` scaled for ``compare``, the widths of input and output."""
    from .. import data as fdata

    ds = _load_data(args)
    if ds.y_train is None or ds.n_classes is None:
        raise UsageError(f"--data {args.data}: compare needs class labels")
    X, y = fdata.flatten(ds.X_train), ds.y_train
    if ds.X_test is not None:
        X_test, y_test = fdata.flatten(ds.X_test), ds.y_test
    else:  # a user's file: hold out a fifth for testing
        X, X_test, y, y_test = fdata.train_test_split(X, y, 0.2, seed=0)
    scaler = fdata.Scaler(ds.default_scaler, per_feature=ds.per_feature).fit(X)
    return (scaler.transform(X), y, scaler.transform(X_test), y_test), X.shape[1], ds.n_classes


def cmd_info(args) -> int:
    from ..files.model_file import describe

    for i, path in enumerate(args.paths):
        print(("\n" if i else "") + describe(path))
    return EXIT_OK


def _load_data(args):
    from ..data import datasets

    return datasets.load(args.data, label=_label_arg(getattr(args, "label", None)),
                         progress=not getattr(args, "quiet", False))


def _label_arg(text):
    """``--label 3`` is a column index, ``--label species`` a column name."""
    if text is None:
        return -1
    return int(text) if text.lstrip("-").isdigit() else text


def _figure(path, draw, *args, **kwargs):
    """Draw one figure; a missing matplotlib costs the figure, not the run."""
    if path in (None, "-"):
        return None
    try:
        draw(*args, path=path, **kwargs)
    except ImportError as exc:
        print(f"flexnet: no figure written: {exc}", file=sys.stderr)
        return None
    return path


def _check_output(path, option: str) -> None:
    """Refuse, before any work, an output path that cannot be written."""
    if path in (None, "-"):
        return
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name, such as {p / 'model.npz'}")
    if not p.parent.is_dir():
        raise UsageError(f"{option} {path}: the folder {p.parent} does not exist")


def _with_suffix(path: str, tail: str) -> str:
    """``model.npz`` + ``-curves.png`` -> ``model-curves.png``."""
    root, _ = os.path.splitext(path)
    return root + tail


def _table(rows, header, left: int = 1) -> str:
    """Rows of strings as aligned columns: the first ``left`` to the left, the rest right."""
    rows = [tuple(header)] + [tuple(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "-" * max(map(len, lines)))
    return "\n".join(lines)


def _resume_command(args, checkpoint) -> str:
    """The command line that continues an interrupted ``flexnet train``."""
    q = shlex.quote
    parts = ["flexnet train", f"--data {q(args.data)}", f"--arch {','.join(map(str, args.arch))}",
             f"--epochs {args.epochs}", f"--optimizer {args.optimizer}", f"--lr {args.lr}",
             f"--batch-size {args.batch_size}", f"--seed {args.seed}", f"--val-split {args.val_split}",
             f"--out {q(args.out)}", f"--resume {q(str(checkpoint))}"]
    if args.checkpoint:
        parts.append(f"--checkpoint {q(args.checkpoint)}")
    if args.warmup:
        parts.append(f"--warmup {args.warmup}")
    if args.dropout:
        parts.append(f"--dropout {args.dropout}")
    if args.batchnorm:
        parts.append("--batchnorm")
    if args.activation != "relu":
        parts.append(f"--activation {args.activation}")
    if args.scale:
        parts.append(f"--scale {args.scale}")
    if args.schedule != "none":
        parts.append(f"--schedule {args.schedule}")
    if args.weight_decay:
        parts.append(f"--weight-decay {args.weight_decay}")
    if args.label is not None:
        parts.append(f"--label {q(str(args.label))}")
    return " ".join(parts)


def _check_arch(arch, n_features: int, n_classes, data_name: str) -> list[int]:
    if arch is None:
        if n_classes is None:
            raise UsageError(f"--data {data_name}: labels are not class ids; give --arch explicitly")
        return [n_features, 128, 64, n_classes]
    if arch[0] != n_features:
        raise UsageError(
            f"--arch {','.join(map(str, arch))}: the first size must be the number of input features, "
            f"{n_features} for {data_name}; try --arch {n_features},{','.join(map(str, arch[1:]))}"
        )
    if n_classes is not None and arch[-1] < n_classes:
        raise UsageError(
            f"--arch {','.join(map(str, arch))}: the last size must be the number of classes, "
            f"{n_classes} for {data_name}"
        )
    return arch


class _SigtermAsInterrupt:
    """SIGTERM raises KeyboardInterrupt (as Ctrl-C does), so a stopped run
    leaves a checkpoint, and the signals that arrived are remembered for the
    exit code (130 for Ctrl-C, 143 for SIGTERM).

    ``fit`` installs its own handlers while it trains, so the signal numbers
    are collected through ``signal.set_wakeup_fd``, which sees every signal
    whatever Python handler runs.
    """

    def __init__(self):
        self.received: set[int] = set()
        self.checkpoint = None  # set once training starts
        self.previous = None
        self._pipe = None
        self._old_fd = -1

    def _handler(self, signum, frame):
        self.received.add(signum)
        raise KeyboardInterrupt

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handler)
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._pipe = (r, w)
            self._old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        return self

    def __exit__(self, *exc):
        import signal

        if self._pipe is not None:
            signal.set_wakeup_fd(self._old_fd)
            self._drain()
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False

    def _drain(self) -> None:
        if self._pipe is not None:
            try:
                self.received.update(os.read(self._pipe[0], 256))
            except BlockingIOError:
                pass

    def exit_code(self) -> int:
        import signal

        self._drain()
        return 143 if signal.SIGTERM in self.received else 130


def cmd_train(args) -> int:
    guard = _SigtermAsInterrupt()
    try:
        with guard:
            return _train(args, guard)
    except KeyboardInterrupt:
        # A second Ctrl-C, or one outside fit (the final evaluation, saving).
        ckpt = guard.checkpoint
        if ckpt is None:
            print("flexnet train: interrupted before training started; nothing written", file=sys.stderr)
        elif Path(ckpt).is_file():
            print(f"flexnet train: interrupted; the last checkpoint written is {ckpt}\n"
                  f"resume with: {_resume_command(args, ckpt)}", file=sys.stderr)
        else:
            print("flexnet train: interrupted before the first checkpoint; nothing to resume",
                  file=sys.stderr)
        return guard.exit_code()


def _train(args, guard) -> int:
    import time

    from .. import data as fdata
    from ..files.model_file import save
    from ..training.network import Network
    from ..optim import make_optimizer, make_scheduler
    from ..plots import training_curves
    from ..training.loop import TrainingInterrupted, evaluate, fit

    if not 0 <= args.val_split < 1:
        raise UsageError(f"--val-split: expected a fraction in [0, 1), got {args.val_split}")
    checkpoint = args.checkpoint or _with_suffix(args.out, ".ckpt.npz")
    figure = args.figure or _with_suffix(args.out, "-curves.png")
    for path, option in ((args.out, "--out"), (checkpoint, "--checkpoint"), (figure, "--figure")):
        _check_output(path, option)
    ds = _load_data(args)
    if ds.y_train is None:
        raise UsageError(f"--data {args.data}: the data has no labels (an .npz needs an array 'y')")
    X = fdata.flatten(ds.X_train)
    y = ds.y_train
    arch = _check_arch(args.arch, X.shape[1], ds.n_classes, args.data)
    args.arch = arch
    if args.val_split > 0:
        X, X_val, y, y_val = fdata.train_test_split(X, y, args.val_split, seed=args.seed)
    scale = args.scale or ds.default_scaler
    scaler = fdata.Scaler(scale, per_feature=ds.per_feature or scale == "standard").fit(X)
    X = scaler.transform(X)
    validation = (scaler.transform(X_val), y_val) if args.val_split > 0 else None

    net = Network(arch, activation=args.activation, dropout=args.dropout, batchnorm=args.batchnorm,
                  seed=args.seed)
    net.metadata = fdata.make_metadata(scaler, input_shape=ds.input_shape, class_names=ds.class_names,
                                       dataset=args.data, pixel_max=ds.pixel_max)
    optimizer = make_optimizer(args.optimizer, lr=args.lr, weight_decay=args.weight_decay)
    scheduler = None
    if args.schedule == "cosine":
        scheduler = make_scheduler("cosine", optimizer, total_epochs=args.epochs, warmup_epochs=args.warmup)
    elif args.schedule == "step":
        scheduler = make_scheduler("step", optimizer, step_size=max(1, args.epochs // 3), gamma=0.1)
    elif args.schedule == "plateau":
        scheduler = make_scheduler("plateau", optimizer, factor=0.5, patience=3)
    if not args.quiet:
        print(f"Training {net!r} on {ds.name}: {len(X):,} rows"
              + (f", {len(validation[0]):,} for validation" if validation else "")
              + f"; {args.optimizer} lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs")
    started = time.perf_counter()
    guard.checkpoint = checkpoint
    try:
        history = fit(net, X, y, epochs=args.epochs, batch_size=args.batch_size, optimizer=optimizer,
                      validation_data=validation, scheduler=scheduler, seed=args.seed,
                      progress=None if not args.quiet else False, checkpoint=checkpoint,
                      resume=args.resume)
    except TrainingInterrupted as exc:
        done = f"{exc.epoch} epoch(s)" + (f" and {exc.step} batch(es)" if exc.step else "")
        print(f"flexnet train: interrupted after {done}; checkpoint written to {exc.path}\n"
              f"resume with: {_resume_command(args, exc.path)}", file=sys.stderr)
        return guard.exit_code()
    seconds = time.perf_counter() - started
    save(net, args.out)

    h = history.history
    rows = [("epochs", f"{len(history)}"), ("parameters", f"{net.n_params():,}"),
            ("training loss", f"{h['loss'][-1]:.4f}")]
    if h.get("accuracy"):
        rows.append(("training accuracy", f"{100 * h['accuracy'][-1]:.2f}%"))
    if h.get("val_loss"):
        rows.append(("validation loss", f"{h['val_loss'][-1]:.4f}"))
    if h.get("val_accuracy"):
        best = max(range(len(h["val_accuracy"])), key=h["val_accuracy"].__getitem__)
        rows.append(("validation accuracy", f"{100 * h['val_accuracy'][-1]:.2f}% "
                     f"(best {100 * h['val_accuracy'][best]:.2f}% at epoch {best + 1})"))
    if ds.X_test is not None:
        result = evaluate(net, fdata.prepare_input(ds.X_test, net.metadata), ds.y_test)
        rows.append(("test loss", f"{result['loss']:.4f}"))
        if "accuracy" in result:
            rows.append(("test accuracy", f"{100 * result['accuracy']:.2f}% on {len(ds.X_test):,} rows"))
    total = sum(h.get("time") or [seconds])
    rows.append(("time", f"{total:.1f} s" + (f" ({seconds:.1f} s in this run)" if args.resume else "")))
    rows.append(("model", args.out))
    rows.append(("checkpoint", checkpoint))
    figure = _figure(figure, training_curves, history, show=args.show, title=f"{ds.name}: {arch}")
    if figure:
        rows.append(("figure", figure))
    print(_table(rows, ("summary", ""), left=2))
    return EXIT_OK


def cmd_evaluate(args) -> int:
    import numpy as np

    from .. import data as fdata
    from ..training.network import load
    from ..plots import confusion_figure, mistakes_figure, weights_figure
    from ..training.loop import evaluate

    net = load(args.model)
    if args.data is None:
        args.data = net.metadata.get("dataset", "edges")
    ds = _load_data(args)
    X_raw, y = (ds.X_test, ds.y_test) if ds.X_test is not None else (ds.X_train, ds.y_train)
    if y is None:
        raise UsageError(f"--data {args.data}: no labels to evaluate against")
    X = fdata.prepare_input(X_raw, net.metadata)
    if net.in_features is not None and X.shape[1] != net.in_features:
        raise UsageError(f"{args.model} takes {net.in_features} input features, --data {args.data} has {X.shape[1]}")
    result = evaluate(net, X, y)
    part = "test split" if ds.X_test is not None else "whole file"
    print(f"{args.model} on {ds.name} ({part}, {len(X):,} rows)")
    print(f"loss      {result['loss']:.4f}")
    if "accuracy" not in result:
        print(f"mae       {result['mae']:.4f}\nrmse      {result['rmse']:.4f}")
        return EXIT_OK
    print(f"accuracy  {100 * result['accuracy']:.2f}%\n")
    names = net.metadata.get("class_names") or ds.class_names
    n = len(result["precision"])
    names = list(names) if names and len(names) == n else [str(c) for c in range(n)]
    rows = [(names[c], f"{result['precision'][c]:.3f}", f"{result['recall'][c]:.3f}", f"{result['f1'][c]:.3f}",
             str(result["support"][c])) for c in range(n)]
    rows.append(("macro mean", f"{result['macro_precision']:.3f}", f"{result['macro_recall']:.3f}",
                 f"{result['macro_f1']:.3f}", str(sum(result["support"]))))
    print(_table(rows, ("class", "precision", "recall", "f1", "support")))
    if args.figures == "-":
        return EXIT_OK
    prefix = args.figures or _with_suffix(args.model, "")
    written = [_figure(prefix + "-confusion.png", confusion_figure, np.array(result["confusion"]), names,
                       show=args.show, title=f"Confusion matrix: {ds.name}")]
    shape = net.metadata.get("input_shape")
    if shape and len(shape) == 2:
        proba = net.predict_proba(X)
        pred = proba.argmax(axis=1)
        wrong = np.flatnonzero(pred != np.asarray(y))
        images = np.asarray(X_raw).reshape(len(X_raw), *shape)[wrong]
        written.append(_figure(prefix + "-mistakes.png", mistakes_figure, images, np.asarray(y)[wrong],
                               pred[wrong], proba[wrong, pred[wrong]], names, show=args.show))
        first = next((layer for layer in net.layers if "W" in layer.params), None)
        if first is not None:
            written.append(_figure(prefix + "-weights.png", weights_figure, first.W, shape, show=args.show))
    for path in filter(None, written):
        print(f"Figure written to {path}")
    return EXIT_OK


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def cmd_predict(args) -> int:
    import csv
    import json

    import numpy as np

    from .. import data as fdata
    from ..training.network import load

    net = load(args.model)
    suffixes = {os.path.splitext(p)[1].lower() for p in args.inputs}
    if suffixes <= set(IMAGE_SUFFIXES):
        raw = fdata.read_images(args.inputs, net.metadata.get("input_shape"), invert=args.invert,
                                pixel_max=net.metadata.get("pixel_max", 255.0))
        ids = list(args.inputs)
    elif len(args.inputs) == 1 and suffixes <= {".csv", ".npz"}:
        path = args.inputs[0]
        if path.lower().endswith(".csv"):
            raw, _ = fdata.read_csv(path, _label_arg(args.label) if args.label is not None else None)
        else:
            raw, _ = fdata.read_npz(path)
        ids = list(range(len(raw)))
    else:
        raise UsageError("INPUT: expected one .csv or .npz file, or image files (.png, .jpg, ...); "
                         f"got {', '.join(args.inputs)}")
    X = fdata.prepare_input(raw, net.metadata)
    if net.in_features is not None and X.shape[1] != net.in_features:
        raise UsageError(f"{args.model} takes {net.in_features} input features, the input has {X.shape[1]}")
    records = []
    if net.loss_fn.is_classifier:
        proba = net.predict_proba(X)
        if proba.ndim == 1 or proba.shape[1] == 1:  # a binary classifier's single probability
            proba = np.column_stack([1 - proba.reshape(-1), proba.reshape(-1)])
        names = net.metadata.get("class_names") or [str(c) for c in range(proba.shape[1])]
        for key, p in zip(ids, proba):
            c = int(p.argmax())
            rec = {"input": key, "class": c, "label": names[c] if c < len(names) else str(c),
                   "confidence": round(float(p[c]), 6)}
            rec.update({f"p_{names[k] if k < len(names) else k}": round(float(v), 6) for k, v in enumerate(p)})
            records.append(rec)
    else:
        out = np.asarray(net.predict(X)).reshape(len(X), -1)
        for key, row in zip(ids, out):
            rec = {"input": key}
            rec.update({f"output_{k}": float(v) for k, v in enumerate(row)})
            records.append(rec)
    fmt = args.format or ("json" if args.output and args.output.lower().endswith(".json") else "csv")
    stream = open(args.output, "w", newline="") if args.output else sys.stdout
    try:
        if fmt == "json":
            json.dump(records, stream, indent=1)
            stream.write("\n")
        else:
            writer = csv.DictWriter(stream, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    finally:
        if args.output:
            stream.close()
    if args.output:
        print(f"{len(records)} prediction(s) written to {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_gradcheck(args) -> int:
    import numpy as np

    from ..nn.gradcheck import gradcheck
    from ..training.network import Network

    net = Network(args.arch, activation=args.activation, dropout=args.dropout, batchnorm=args.batchnorm,
                  dtype="float64", seed=args.seed)
    rng = np.random.default_rng(args.seed)
    X = rng.normal(size=(args.batch, args.arch[0]))
    y = rng.integers(0, args.arch[-1], size=args.batch)
    report = gradcheck(net, X, y)
    rows = [(name, f"{err:.2e}", "ok" if err <= args.tolerance else "FAIL") for name, err in report.items()]
    print(f"Gradient check of {net!r} on a random batch of {args.batch} (float64, central differences)")
    print(_table(rows, ("array", "relative error", f"<= {args.tolerance:g}")))
    bad = [name for name, err in report.items() if not err <= args.tolerance]
    if bad:
        print(f"flexnet gradcheck: {len(bad)} array(s) above the tolerance: {', '.join(bad)}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_datasets(args) -> int:
    from ..data.datasets import REGISTRY

    rows = [(info.name, info.description, info.where()) for info in REGISTRY.values()]
    print(_table(rows, ("name", "description", "where"), left=3))
    print("\nAlso: --data path/to/file.csv (numeric columns, --label NAME|INDEX) or path/to/file.npz (arrays X, y).")
    return EXIT_OK


def comma_list(convert):
    """An argparse type: ``"0.1,0.01"`` -> ``[0.1, 0.01]``, each item checked by ``convert``."""
    def parse(text: str) -> list:
        items = [t for t in text.replace(" ", "").split(",") if t]
        if not items:
            raise argparse.ArgumentTypeError(f"expected one or more comma-separated values, got {text!r}")
        return [convert(t) for t in items]
    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {value}")
    return value


def cmd_sweep(args) -> int:
    from ..experiments.sweep import sweep
    from ..experiments.results import config_label

    grid = {"arch": args.arch, "seed": args.seeds}
    for axis in ("activation", "lr", "batch_size", "dropout", "optimizer"):
        if getattr(args, axis):
            grid[axis] = getattr(args, axis)

    def report(row, done, total):
        if args.quiet:
            return
        config = config_label(row, [k for k in grid if k not in ("arch", "seed")])
        outcome = (f"val accuracy {100 * row['val_accuracy']:.1f}%" if row["val_accuracy"] is not None
                   else row["status"] + (f": {row['error'][:120]}" if row["error"] else ""))
        print(f"[{done}/{total}] {config} seed={row['seed']}: {outcome} ({row['seconds']:.2f} s)", flush=True)

    result = sweep(args.data, grid, n_random=args.random, epochs=args.epochs, val_split=args.val_split,
                   jobs=args.jobs, scheduler=args.scheduler, out=args.out, resume=args.resume, on_trial=report)
    print(result.format_table(top=args.top))
    for kind, path in result.files.items():
        print(f"{kind.replace('_', ' ')}: {path}")
    if result.interrupted:
        print(f"flexnet sweep: interrupted with {result.pending} trial(s) to go; continue with the same "
              "command and --resume", file=sys.stderr)
        return 130
    return EXIT_OK


def cmd_export(args) -> int:
    from ..training.network import load

    out = args.out or str(Path(args.model).with_suffix(".onnx" if args.format == "onnx" else ".pt"))
    if args.probabilities and args.format != "onnx":
        raise UsageError("--probabilities applies to --format onnx only")
    _check_output(out, "--out")
    net = load(args.model)
    try:
        if args.format == "onnx":
            from ..bridges.onnx_export import to_onnx

            to_onnx(net, out, probabilities=args.probabilities)
        else:
            from ..bridges.pytorch import save_torch

            save_torch(net, out)
    except ImportError as exc:  # the optional package is not installed
        raise UsageError(str(exc)) from exc
    print(f"Wrote {out} ({args.format}, {len(net.layers)} layers, {net.dtype.name})")
    return EXIT_OK


# -- parser ------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the usage block is what --help is for."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flexnet",
        description="Train and compare small neural networks written in NumPy.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "compare",
        help="train several architectures on the same data and plot their loss curves",
        description="Train several architectures on the same data, print a table and write a "
        "figure of their loss curves (the tutorial's experiment).",
        epilog="examples:\n"
        "  flexnet compare\n"
        "  flexnet compare --arch 25,2 --arch 25,32,2 --seeds 0-4 --out arch.png\n"
        "  flexnet compare --epochs 50 --lr 0.05 --out -   # table only\n"
        "  flexnet compare --data digits --arch 64,10 --arch 64,32,10 --epochs 20 --seeds 0-2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--arch", action="append", type=parse_arch, metavar="SIZES",
                   help="layer sizes such as 25,8,2; repeat for several "
                   "(default: 25,2 25,8,2 25,16,8,2)")
    p.add_argument("--epochs", type=positive_int, default=200, help="epochs per run (default 200)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="batch size (default 16)")
    p.add_argument("--lr", type=positive_float, default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--seeds", type=parse_seeds, default=[42], metavar="SEEDS",
                   help="initialisation seeds: 42, 0-4 or 1,5,9 (default 42)")
    p.add_argument("--out", default="compare.png", help="figure path, or - for none (default compare.png)")
    p.add_argument("--show", action="store_true", help="also open the figure in a window")
    p.add_argument("--data", default="edges", metavar="NAME|FILE",
                   help="data set name or .csv/.npz file (default edges, the tutorial's experiment)")
    p.add_argument("--label", default=None, metavar="COLUMN", help="label column of a CSV file")
    p.add_argument("--jobs", type=int, metavar="N", help="train the runs on N local processes (default 1)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="train the runs on this Dask scheduler")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "info",
        help="describe a model or checkpoint file without training anything",
        description="Check a model or checkpoint file as loading would, then print its format "
        "and flexnet versions, layers, parameter counts, dtype, loss and metadata.",
        epilog="example:\n  flexnet info model.npz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="model (.npz) or checkpoint file")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "train",
        help="train a network on a data set and save it",
        description="Train a network on a named data set or your own CSV/NPZ file. Shows a progress "
        "bar, prints a summary table (with test accuracy when the data set has a test split), saves "
        "the model and a figure of the training and validation curves. Ctrl-C or SIGTERM stops "
        "after the current batch and writes a checkpoint that --resume continues from.",
        epilog="examples:\n"
        "  flexnet train --data digits --epochs 30 --out digits.npz\n"
        "  flexnet train --data fashion-mnist --arch 784,256,128,10 --epochs 20 --optimizer adam \\\n"
        "      --lr 0.001 --batch-size 128 --dropout 0.2 --out fashion.npz\n"
        "  flexnet train --data iris.csv --label species --arch 4,16,3 --epochs 100 --out iris.npz\n"
        "  flexnet train ... --resume fashion.ckpt.npz   # continue an interrupted run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default="edges", metavar="NAME|FILE",
                   help="data set name (see `flexnet datasets`) or a .csv/.npz file (default edges)")
    p.add_argument("--label", default=None, metavar="COLUMN",
                   help="label column of a CSV file, by name or index (default: the last column)")
    p.add_argument("--arch", type=parse_arch, default=None, metavar="SIZES",
                   help="layer sizes such as 784,256,128,10 (default: features,128,64,classes)")
    p.add_argument("--activation", default="relu", help="hidden activation: relu, leaky_relu, tanh, "
                   "sigmoid, gelu (default relu)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout after each hidden layer (default 0)")
    p.add_argument("--batchnorm", action="store_true", help="batch normalisation in each hidden layer")
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs (default 10)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="batch size (default 32)")
    p.add_argument("--optimizer", default="adam", help="sgd, adam, adamw, rmsprop, adagrad (default adam)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default 0.001)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="weight decay (default 0)")
    p.add_argument("--schedule", choices=("none", "cosine", "step", "plateau"), default="none",
                   help="learning-rate schedule over the epochs (default none)")
    p.add_argument("--warmup", type=int, default=0, help="warm-up epochs for --schedule cosine (default 0)")
    p.add_argument("--scale", choices=("minmax", "standard", "none"), default=None,
                   help="input scaling, saved with the model (default minmax: pixels / 255)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, split and shuffling (default 0)")
    p.add_argument("--val-split", type=float, default=0.1,
                   help="fraction held out for validation, stratified (default 0.1; 0 for none)")
    p.add_argument("--out", default="model.npz", help="model file to write (default model.npz)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="checkpoint file written every epoch (default: next to --out, *.ckpt.npz)")
    p.add_argument("--resume", default=None, metavar="PATH", help="continue from this checkpoint")
    p.add_argument("--figure", default=None, metavar="PATH",
                   help="training-curve figure (default: next to --out, *-curves.png; - for none)")
    p.add_argument("--show", action="store_true", help="also open the figure in a window")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="score a saved model: loss, accuracy, per-class table, figures",
        description="Score a saved model on a data set's test split (or a whole CSV/NPZ file): loss, "
        "accuracy and a per-class table; writes a confusion-matrix figure and, for images, the most "
        "confident mistakes and the first-layer weights.",
        epilog="examples:\n"
        "  flexnet evaluate fashion.npz --data fashion-mnist\n"
        "  flexnet evaluate iris.npz --data iris_test.csv --label species --figures -",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model file written by flexnet train")
    p.add_argument("--data", default=None, metavar="NAME|FILE",
                   help="data set name or .csv/.npz file (default: the data set the model was trained on)")
    p.add_argument("--label", default=None, metavar="COLUMN", help="label column of a CSV file")
    p.add_argument("--figures", default=None, metavar="PREFIX",
                   help="figure files PREFIX-confusion.png, PREFIX-mistakes.png, PREFIX-weights.png "
                   "(default: the model path without .npz; - for none)")
    p.add_argument("--show", action="store_true", help="also open the figures in windows")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "predict",
        help="predict classes for a CSV/NPZ file or image files",
        description="Predict with a saved model. The input is prepared the way the training data "
        "was (images greyscaled and resized to the model's input shape, then scaled). Writes one "
        "row per input: class id, class name, confidence and every class probability.",
        epilog="examples:\n"
        "  flexnet predict fashion.npz shoe.png shirt.jpg\n"
        "  flexnet predict iris.npz new.csv --format json --output predictions.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model file written by flexnet train")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="one .csv or .npz file, or image files")
    p.add_argument("--label", default=None, metavar="COLUMN",
                   help="a label column in the CSV to leave out (by name or index)")
    p.add_argument("--invert", action="store_true",
                   help="images: dark ink on a light background (MNIST-style data is light on dark)")
    p.add_argument("--format", choices=("csv", "json"), default=None,
                   help="output format (default: json for a .json --output, else csv)")
    p.add_argument("--output", default=None, metavar="PATH", help="output file (default: standard output)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "gradcheck",
        help="compare backpropagation with finite differences",
        description="Build a network in float64, run it on a small random batch and compare every "
        "backpropagated gradient with central finite differences. Exit code 1 if any relative error "
        "is above the tolerance.",
        epilog="examples:\n"
        "  flexnet gradcheck\n"
        "  flexnet gradcheck --arch 784,32,10 --activation tanh --batchnorm",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--arch", type=parse_arch, default=[25, 8, 2], metavar="SIZES",
                   help="layer sizes (default 25,8,2)")
    p.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout probability (default 0)")
    p.add_argument("--batchnorm", action="store_true", help="batch normalisation in hidden layers")
    p.add_argument("--batch", type=positive_int, default=8, help="rows in the random batch (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and data (default 0)")
    p.add_argument("--tolerance", type=positive_float, default=1e-5,
                   help="largest relative error accepted (default 1e-5)")
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser(
        "datasets",
        help="list the data sets --data knows and where they are",
        description="List the named data sets, what they hold, and whether their files are present "
        "(and where) or will be downloaded on first use. IDX files are looked for in $FLEXNET_DATA, "
        "~/.cache/flexnet and, for Fashion-MNIST, /usr/share/datasets/fashion-mnist.",
        epilog="example:\n  flexnet datasets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser(
        "sweep",
        help="train a grid of architectures and settings over several seeds, in parallel",
        description="Train every combination of the given settings with every seed (or --random N of "
        "them), on local worker processes (--jobs) or a Dask cluster (--scheduler), and rank them by "
        "validation accuracy. Lists are comma-separated. Writes to --out: trials.csv, trials.json and "
        "configs.csv (mean and spread over seeds), best_model.npz, accuracy_vs_params.png, top_curves.png "
        "and trials.jsonl, the log --resume continues from. A trial's seed is a hash of its settings, so "
        "results are the same serially, in parallel or on a cluster.",
        epilog="examples:\n"
        "  flexnet sweep --data edges --arch 25,2 25,8,2 25,16,8,2 --lr 0.05,0.1,0.5 --seeds 0-4 --jobs 2\n"
        "  flexnet sweep --data digits --arch 64,32,10 64,128,10 --activation relu,tanh \\\n"
        "      --optimizer sgd,adam --lr 0.001,0.01,0.1 --dropout 0,0.2 --random 8 --seeds 0-2 --epochs 20\n"
        "  flexnet sweep --data digits --arch 64,64,10 --lr 0.01,0.1 --scheduler tcp://10.0.0.5:8786\n"
        "  flexnet sweep ... --out my-sweep --resume   # skip the trials already in my-sweep",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default="edges", help="data set name or .csv/.npz file (default edges)")
    p.add_argument("--arch", nargs="+", action="extend", type=parse_arch, required=True, metavar="SIZES",
                   help="layer sizes such as 25,8,2; several separated by spaces or repeated")
    p.add_argument("--activation", type=comma_list(str), action="extend", help="hidden activations, e.g. relu,tanh (default relu)")
    p.add_argument("--lr", type=comma_list(positive_float), action="extend", help="learning rates, e.g. 0.01,0.1 (default 0.01)")
    p.add_argument("--batch-size", type=comma_list(positive_int), action="extend", help="batch sizes, e.g. 16,64 (default 32)")
    p.add_argument("--dropout", type=comma_list(probability), action="extend", help="dropout probabilities, e.g. 0,0.2 (default 0)")
    p.add_argument("--optimizer", type=comma_list(str), action="extend", help="optimizers, e.g. sgd,adam (default sgd)")
    p.add_argument("--seeds", type=parse_seeds, default=[0], metavar="SEEDS",
                   help="replicates per configuration: 0-4 or 1,5,9 (default 0)")
    p.add_argument("--random", type=positive_int, metavar="N", help="train N configurations drawn from the grid")
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs per trial (default 10)")
    p.add_argument("--val-split", type=probability, default=0.2,
                   help="fraction of the training data held out to rank on (default 0.2)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="parallel workers (default 1 locally, all cores of a cluster; -1: all local cores)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on this Dask scheduler")
    p.add_argument("--out", default="sweep-results", help="output folder (default sweep-results)")
    p.add_argument("--resume", action="store_true", help="continue the sweep in --out, skipping finished trials")
    p.add_argument("--top", type=positive_int, default=10, help="configurations shown in the table (default 10)")
    p.add_argument("--quiet", action="store_true", help="no line per finished trial")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser(
        "export",
        help="write a saved model as an ONNX or PyTorch file",
        description="Write a saved model for other runtimes: an ONNX inference graph (dropout left "
        "out, batch norm folded, dynamic batch size) or a PyTorch file that "
        "torch.load(path, weights_only=True) reads (layer list plus state dict; see docs/bridges.md).",
        epilog="examples:\n"
        "  flexnet export model.npz --format onnx --out model.onnx\n"
        "  flexnet export model.npz --format onnx --probabilities\n"
        "  flexnet export model.npz --format torch --out model.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="model file saved by flexnet (.npz)")
    p.add_argument("--format", choices=("onnx", "torch"), required=True, help="what to write")
    p.add_argument("--out", metavar="PATH", help="output file (default: MODEL with .onnx or .pt)")
    p.add_argument("--probabilities", action="store_true",
                   help="onnx only: end the graph with softmax/sigmoid to output probabilities")
    p.set_defaults(func=cmd_export)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line, not only before the command.
    debug = "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv
    if debug:
        argv.remove("--debug")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed usage and one error line (or --help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    args.debug = debug
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        # NumPy's overflow warnings are noise on the command line: a run that
        # diverges says so itself, in one line (--debug shows them).
        with np.errstate(all="warn" if debug else "ignore"):
            return args.func(args)
    except KeyboardInterrupt:
        print("flexnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`: not an error worth a message
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except (UsageError, ValueError, TypeError, FileNotFoundError, IsADirectoryError,
            NotADirectoryError, PermissionError) as exc:
        if debug:
            raise
        print(f"flexnet {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a failure while running
        if debug:
            raise
        print(f"flexnet {args.command}: failed: {type(exc).__name__}: {_one_line(exc)} "
              "(run with --debug for details)", file=sys.stderr)
        return EXIT_FAILURE


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (a traceback-free report fits one line)."""
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
