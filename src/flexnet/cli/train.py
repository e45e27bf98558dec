"""``flexnet train``: train a network on a data set, save it, and resume an interrupted run."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from .common import (
    EXIT_OK,
    SigtermAsInterrupt,
    UsageError,
    add_table_options,
    add_threads_option,
    check_arch,
    check_figures,
    check_output,
    check_output_folder,
    label_arg,
    load_data,
    parse_arch,
    positive_float,
    positive_int,
    text_table,
    with_suffix,
    write_figure,
)
from .resume import TrainOptions, recorded, report, settle, track_given


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
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
        "  flexnet train --resume fashion.ckpt.npz   # continue an interrupted run with its options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default="edges", metavar="NAME|FILE",
                   help="data set name (see `flexnet datasets`) or a .csv/.npz/.parquet file (default edges); "
                   "a .parquet file is read in blocks into a memmap cache (see --cache)")
    add_table_options(p)
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=False,
                   help="read a .csv file in blocks into a memmap cache instead of into memory: for tables "
                   "bigger than memory (the same weights as without)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="folder for the memmap cache of --data .parquet or --stream (default: the folder "
                   "of --out); written once, reused by a run with the same file and options")
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
                   help="input scaling, saved with the model. minmax maps the training data's range to "
                   "[0, 1]: MNIST and Fashion-MNIST pixels are divided by 255, the 8x8 digits by 16, each "
                   "column of a CSV/NPZ file by its own range; standard: each feature to mean 0 and sd 1; "
                   "none: as is. Default: minmax (none for edges)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, split and shuffling (default 0)")
    p.add_argument("--val-split", type=float, default=0.1,
                   help="fraction held out for validation, stratified (default 0.1; 0 for none)")
    p.add_argument("--out", default="model.npz", help="model file to write (default model.npz)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="checkpoint file written every epoch (default: next to --out, *.ckpt.npz)")
    p.add_argument("--resume", default=None, metavar="PATH",
                   help="continue the run of this checkpoint, with the options it keeps: an option left "
                   "out takes the checkpoint's value; --epochs (the total wanted, not fewer than done; "
                   "fixed with --schedule cosine), --out, --checkpoint, --figure, --tensorboard and --csv-log may "
                   "change, with a line saying so; any other option that differs from the checkpoint's is "
                   "refused. --quiet, --progress-lines and --show are free. The last checkpoint of a finished "
                   "run writes its model")
    p.add_argument("--figure", default=None, metavar="PATH",
                   help="training-curve figure (default: next to --out, *-curves.png; - for none)")
    p.add_argument("--show", action="store_true", help="also open the figure in a window")
    p.add_argument("--restore-best", action="store_true",
                   help="save the weights of the epoch with the best validation accuracy (validation loss "
                   "for regression), not those of the last epoch; needs --val-split > 0")
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="write TensorBoard event files into DIR: losses, accuracies and lr per epoch, "
                   "histograms of the weights and gradients (needs tensorboardX: pip install "
                   "\"flexnet[tensorboard]\"); view with tensorboard --logdir DIR")
    p.add_argument("--csv-log", default=None, metavar="FILE",
                   help="write one CSV row per epoch to FILE: epoch, losses, accuracies, lr, time")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--progress-lines", choices=("run", "epoch"), default="run",
                   help="the progress bar leaves one line for the whole run (default) or one per epoch")
    add_threads_option(p, "chosen for the network's sizes and the cores that are free; a resumed run "
                          "keeps the count it was started with")
    p.set_defaults(func=run)
    track_given(p)  # last: it makes every option above left out unless given


def run(args) -> int:
    resumed = settle(args)  # every option: given, else the checkpoint's, else the default
    report(resumed)
    guard = SigtermAsInterrupt()
    try:
        with guard:
            return _train(args, guard, resumed)
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


def _train(args, guard, resumed) -> int:
    import time

    from .. import data as fdata
    from ..files.model_file import save
    from ..optim import make_optimizer, make_scheduler
    from ..plots import training_curves
    from ..training.callbacks import EarlyStopping
    from ..training.loop import TrainingDiverged, TrainingInterrupted, evaluate, fit
    from ..training.network import Network

    if not 0 <= args.val_split < 1:
        raise UsageError(f"--val-split: expected a fraction in [0, 1), got {args.val_split}")
    if args.restore_best and args.val_split == 0:
        raise UsageError("--restore-best keeps the epoch with the best validation score, and --val-split 0 "
                         "holds out no validation data; give --val-split 0.1 (the default) or leave out "
                         "--restore-best")
    checkpoint = args.checkpoint or with_suffix(args.out, ".ckpt.npz")
    figure = args.figure or with_suffix(args.out, "-curves.png")
    for path, option in ((args.out, "--out"), (checkpoint, "--checkpoint"), (figure, "--figure")):
        check_output(path, option)
    check_figures(args.figure != "-" and (args.figure is not None or args.show))  # asked for by name
    inputs = {"--data": args.data, "--resume": getattr(args, "resume", None)}  # a data set's name is no file
    check_loggers(args, {**{k: v for k, v in inputs.items() if v is not None and Path(v).is_file()},
                         "--out": args.out, "--checkpoint": checkpoint, "--figure": figure})
    table = _stream_table(args)  # None unless the table is read through a memmap cache
    ds = load_data(args) if table is None else table.dataset
    if ds.y_train is None:
        raise UsageError(f"--data {args.data}: the data has no labels (an .npz needs an array 'y')")
    X = fdata.flatten(ds.X_train)
    y = ds.y_train
    arch = check_arch(args.arch, X.shape[1], ds.n_classes, args.data)
    if ds.class_names is not None and arch[-1] != len(ds.class_names):  # the model file must name each output
        raise UsageError(f"--arch {','.join(map(str, arch))}: the last size must be the number of classes, "
                         f"{len(ds.class_names)} for {args.data} (its classes have names)")
    args.arch = arch
    scale = args.scale or ds.default_scaler
    if table is not None:  # split and scaled in the cache: rows of a memmap, by index
        X, y, validation = table.parts()
        scaler = table.scaler
    else:
        if args.val_split > 0:
            try:
                X, X_val, y, y_val = fdata.train_test_split(X, y, args.val_split, seed=args.seed,
                                                            part="validation")
            except ValueError as exc:
                raise UsageError(f"--data {args.data} with --val-split {args.val_split}: {exc}") from None
        scaler = fdata.Scaler(scale, per_feature=ds.per_feature or scale == "standard").fit(X)
        X = scaler.transform(X)
        validation = (scaler.transform(X_val), y_val) if args.val_split > 0 else None

    net = Network(arch, activation=args.activation, dropout=args.dropout, batchnorm=args.batchnorm,
                  seed=args.seed)
    net.metadata = fdata.make_metadata(scaler, input_shape=ds.input_shape, class_names=ds.class_names,
                                       dataset=args.data, pixel_max=ds.pixel_max, label_column=ds.label_column)
    if ds.input_shape is not None and len(ds.input_shape) == 2 and ds.pixel_max:
        # How bright the training images' borders are, so predict can tell an image drawn the other way round.
        from .predict import border_brightness

        images = ds.X_train.reshape(len(ds.X_train), *ds.input_shape)
        net.metadata["border_brightness"] = round(float(border_brightness(images, ds.pixel_max).mean()), 4)
        # The seed of the first layer's initial weights: evaluate's weights figure shows what training changed.
        from .evaluate import initial_weights_record

        net.metadata["initial_weights"] = initial_weights_record(net, args.seed)
    optimizer = make_optimizer(args.optimizer, lr=args.lr, weight_decay=args.weight_decay)
    scheduler = None
    if args.schedule == "cosine":
        scheduler = make_scheduler("cosine", optimizer, total_epochs=args.epochs, warmup_epochs=args.warmup)
    elif args.schedule == "step":
        scheduler = make_scheduler("step", optimizer, step_size=max(1, args.epochs // 3), gamma=0.1)
    elif args.schedule == "plateau":
        scheduler = make_scheduler("plateau", optimizer, factor=0.5, patience=3)
    # The run's options travel in its checkpoints, unless it continues one that keeps none.
    keep = resumed is None or resumed.options is not None
    callbacks = [TrainOptions(recorded(args, arch=arch, scale=scale))] if keep else []
    callbacks += loggers(args)
    best = None
    if args.restore_best:  # never stops early: it only keeps the best epoch's weights, to put back at the end
        best = EarlyStopping("val_accuracy" if ds.n_classes is not None else "val_loss",
                             patience=args.epochs + 1, restore_best_weights=True)
        callbacks.append(best)
    finished = resumed is not None and resumed.finished(args.epochs)  # nothing left to train: said so
    if not args.quiet and not finished:
        if ds.read_as:
            print(f"{args.data}: {ds.read_as}")
        start = "Training" if resumed is None else f"Resuming after epoch {resumed.epochs_done}:"
        print(f"{start} {net!r} on {ds.name}: {len(X):,} rows"
              + (f", {len(validation[0]):,} for validation" if validation else "")
              + f"; {args.optimizer} lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs")
        hint = progress_hint()
        if hint:
            print(f"flexnet train: {hint}", file=sys.stderr)
    started = time.perf_counter()
    guard.checkpoint = checkpoint
    try:
        history = fit(net, X, y, epochs=args.epochs, batch_size=args.batch_size, optimizer=optimizer,
                      validation_data=validation, scheduler=scheduler, seed=args.seed,
                      progress=_progress(args), checkpoint=checkpoint,
                      resume=args.resume, callbacks=callbacks, threads=args.threads)
    except TrainingInterrupted as exc:
        done = f"{exc.epoch} epoch(s)" + (f" and {exc.step} batch(es)" if exc.step else "")
        print(f"flexnet train: interrupted after {done}; checkpoint written to {exc.path}\n"
              f"resume with: {_resume_command(args, exc.path)}", file=sys.stderr)
        return guard.exit_code()
    except TrainingDiverged as exc:  # a setting to change (exit 2), and nothing to save
        raise UsageError(f"{exc} The model was not saved.") from None
    seconds = time.perf_counter() - started
    save(net, args.out)

    h = history.history
    saved = len(history)  # the epoch whose weights were saved, counted from 1
    if best is not None and best.best_epoch:
        saved = best.best_epoch
    at = saved - 1
    rows = [("data", _data_line(ds))] + ([("read as", ds.read_as)] if ds.read_as else [])
    rows += [("epochs", f"{len(history)}"), ("parameters", f"{net.n_params():,}"),
            ("training loss", f"{h['loss'][at]:.4f}")]
    if h.get("accuracy"):
        rows.append(("training accuracy", f"{100 * h['accuracy'][at]:.2f}%"))
    if h.get("val_loss"):
        rows.append(("validation loss", f"{h['val_loss'][at]:.4f}"))
    if h.get("val_accuracy"):
        top = max(range(len(h["val_accuracy"])), key=h["val_accuracy"].__getitem__)
        rows.append(("validation accuracy", f"{100 * h['val_accuracy'][at]:.2f}% "
                     f"(best {100 * h['val_accuracy'][top]:.2f}% at epoch {top + 1})"))
    if ds.X_test is not None:
        result = evaluate(net, fdata.prepare_input(ds.X_test, net.metadata), ds.y_test)
        rows.append(("test loss", f"{result['loss']:.4f}"))
        if "accuracy" in result:
            rows.append(("test accuracy", f"{100 * result['accuracy']:.2f}% on {len(ds.X_test):,} rows"))
    rows.append(("time", _time_text(h, seconds, resumed)))
    rows.append(("BLAS threads", str(history.params.get("threads") or "the BLAS library's default")))
    rows.append(("model", args.out))
    rows.append(("weights saved", _saved_text(h, saved, best, validation is not None)))
    rows.append(("checkpoint", checkpoint))
    rows += [(name, path) for name, path in (("tensorboard", args.tensorboard), ("csv log", args.csv_log)) if path]
    if table is not None:
        rows.append(("cache", f"{table.cache}" + (" (reused)" if table.reused else " (written)")))
    figure = write_figure(figure, training_curves, history, show=args.show, title=f"{ds.name}: {arch}")
    if figure:
        rows.append(("figure", figure))
    print(text_table(rows, ("summary", ""), left=2))
    return EXIT_OK


def check_loggers(args, others: dict) -> None:
    """Refuse, before any work, a --tensorboard folder or --csv-log file that cannot be
    written, or --tensorboard without tensorboardX (exit 2, naming what to install), and
    a --csv-log that is one of the ``others`` (option: path), which it would overwrite."""
    if args.tensorboard is not None:
        from ..data.extras import optional

        check_output_folder(args.tensorboard, "--tensorboard")
        optional("tensorboardX", "--tensorboard")
    if args.csv_log is not None:
        check_output(args.csv_log, "--csv-log")
        for option, path in others.items():
            if path not in (None, "-") and _same_file(args.csv_log, path):
                raise UsageError(f"--csv-log {args.csv_log}: is the {option} file too; give the log a file of "
                                 "its own")


def _same_file(a, b) -> bool:
    """Whether the paths ``a`` and ``b`` name one file (through links too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare the names
        return Path(a).resolve() == Path(b).resolve()


def loggers(args) -> list:
    """The logger callbacks asked for: TensorBoard, CSV."""
    from ..training.loggers import CSVLogger, TensorBoard

    found = []
    if args.tensorboard is not None:
        found.append(TensorBoard(args.tensorboard))
    if args.csv_log is not None:
        found.append(CSVLogger(args.csv_log))
    return found


def _stream_table(args):
    """``--data x.parquet`` or ``--data x.csv --stream``: the table read in blocks into its
    memmap cache (refused, exit 2, when the cache folder cannot take it); else None."""
    from ..data.streaming import CacheError, cache_table, streams

    if args.stream and not str(args.data).lower().endswith((".csv", ".parquet")):
        raise UsageError(f"--stream reads a .csv file a block at a time; --data {args.data} is not one "
                         "(a .parquet file is always read so)")
    if not streams(args.data, args.stream):
        if args.cache is not None and args.resume is None:  # (a resumed run may keep one it no longer uses)
            raise UsageError(f"--cache is where a .parquet file, or a .csv file with --stream, is cached; "
                             f"--data {args.data} is read into memory")
        return None
    if args.val_split and not 0 < args.val_split < 1:
        return None  # refused with the in-memory path's message
    if args.cache is not None and not args.cache.strip():
        raise UsageError("--cache: expected a folder, got an empty name")
    folder = Path(args.cache if args.cache is not None else (Path(args.out).parent))
    if args.cache is not None:
        outputs = ((args.out, "--out"), (args.checkpoint or with_suffix(args.out, ".ckpt.npz"), "--checkpoint"),
                   (args.figure or with_suffix(args.out, "-curves.png"), "--figure"))
        for path, option in outputs:  # a folder made there would stop that file being written after training
            if path != "-" and Path(path).resolve() == folder.resolve():
                raise UsageError(f"--cache {folder}: the same path as {option}; give the cache a folder of its own")
        check_output_folder(folder, "--cache")
        folder.mkdir(parents=True, exist_ok=True)
    try:
        table = cache_table(args.data, label=label_arg(args.label), header=args.header, delimiter=args.delimiter,
                            cache_dir=folder, scale=args.scale or "minmax", val_split=args.val_split,
                            seed=args.seed)
    except CacheError as exc:
        raise UsageError(f"--cache: {exc.strerror}") from None
    except FileNotFoundError:
        if not Path(args.data).exists():
            raise UsageError(f"--data {args.data!r}: no such file") from None
        raise
    except OSError as exc:
        if isinstance(exc, ValueError) or exc.errno is None:
            raise
        raise UsageError(f"--cache {folder}: cannot write the cache of {args.data}: "
                         f"{exc.strerror or exc}") from None
    except ValueError as exc:
        if type(exc) is not ValueError:  # DataFileError, MissingExtra...: reported as they are
            raise
        raise UsageError(f"--data {args.data} with --val-split {args.val_split}: {exc}") from None
    from ..data.datasets import Dataset

    table.dataset = Dataset(table.name, table.X, table.y, class_names=table.class_names, default_scaler="minmax",
                            read_as=table.read_as, label_column=table.label_column)
    return table


def _progress(args):
    """``fit``'s progress argument: none with --quiet; on a terminal, a bar
    leaving the lines --progress-lines asks for."""
    if args.quiet:
        return False
    return args.progress_lines if sys.stderr is not None and sys.stderr.isatty() else None


def progress_hint() -> str | None:
    """What to install for a progress bar, when a terminal would show one and tqdm is missing."""
    import importlib.util

    if sys.stderr is None or not sys.stderr.isatty():
        return None
    try:
        found = importlib.util.find_spec("tqdm") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    return 'no progress bar without tqdm; pip install "flexnet[progress]" shows one'


def _time_text(h: dict, seconds: float, resumed) -> str:
    """``12.3 s``, or for a resumed run ``17.5 s in all, 5.2 s in this run``."""
    if resumed is None:
        return f"{sum(h.get('time') or [seconds]):.1f} s"
    if resumed.seconds_before is None:
        return f"{seconds:.1f} s in this run (the checkpoint does not say how long the run took before)"
    return f"{resumed.seconds_before + seconds:.1f} s in all, {seconds:.1f} s in this run"


def _saved_text(h: dict, saved: int, best, validated: bool) -> str:
    """Which epoch's weights the model file holds, and why."""
    last = len(h.get("loss") or ())
    if best is not None:
        metric = best.monitor.replace("val_", "validation ")
        if saved == last:
            return f"epoch {saved}, the last, also the best {metric} (--restore-best)"
        return f"epoch {saved} of {last}, the best {metric} (--restore-best)"
    text = f"epoch {last}, the last"
    acc = h.get("val_accuracy")
    if validated and acc:
        top = max(range(len(acc)), key=acc.__getitem__) + 1
        if top != last:
            text += f" (the best validation accuracy was epoch {top}'s: --restore-best saves that one)"
    return text


def _data_line(ds) -> str:
    """``iris.csv: 150 rows, 4 features, 3 classes (setosa, versicolor, virginica)``."""
    text = f"{ds.name}: {len(ds.X_train):,} rows, {ds.n_features:,} features"
    if ds.class_names:
        shown = ", ".join(ds.class_names[:6]) + (", ..." if len(ds.class_names) > 6 else "")
        text += f", {len(ds.class_names)} classes ({shown})"
    elif ds.n_classes is not None:
        text += f", {ds.n_classes} classes (ids 0..{ds.n_classes - 1})"
    return text


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
    if getattr(args, "restore_best", False):
        parts.append("--restore-best")
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
    if args.header is not None:
        parts.append("--header" if args.header else "--no-header")
    if args.delimiter is not None:
        parts.append(f"--delimiter {q(args.delimiter)}")
    return " ".join(parts)
