"""``flexnet evaluate``: score a saved model: loss, accuracy, per-class table, figures."""

from __future__ import annotations

import argparse

from .common import (
    EXIT_OK,
    UsageError,
    add_table_options,
    add_threads_option,
    check_figures,
    check_output,
    limit_threads,
    load_data,
    text_table,
    with_suffix,
    write_figure,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
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
    add_table_options(p, "label column of a CSV file, by name or index (default: the model's "
                      "training label column where the file has it, else the last)")
    p.add_argument("--figures", default=None, metavar="PREFIX",
                   help="figure files PREFIX-confusion.png, PREFIX-mistakes.png, PREFIX-weights.png "
                   "(default: the model path without .npz; - for none)")
    p.add_argument("--show", action="store_true", help="also open the figures in windows")
    add_threads_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from .. import data as fdata
    from ..files.model_file import load
    from ..plots import confusion_figure, mistakes_figure, weights_figure
    from ..training.evaluation import EVAL_CHUNK
    from ..training.loop import evaluate

    check_figures(args.figures != "-" and (args.figures is not None or args.show))  # asked for by name
    net = load(args.model)

    def figure(tail):
        return args.figures + tail if args.figures else with_suffix(args.model, tail)

    if args.figures != "-":  # every figure this run would write, checked before the data is read
        shape = net.metadata.get("input_shape")
        for tail in ("-confusion.png",) + (("-mistakes.png", "-weights.png") if shape and len(shape) == 2 else ()):
            check_output(figure(tail), "--figures", " (--figures - writes none)")
    if args.data is None:
        args.data = net.metadata.get("dataset", "edges")
    # The file's labels are looked up among the model's classes, not numbered afresh.
    ds = load_data(args, classes=fdata.model_classes(net), stored_label=net.metadata.get("label_column"))
    X_raw, y = (ds.X_test, ds.y_test) if ds.X_test is not None else (ds.X_train, ds.y_train)
    if y is None:
        raise UsageError(f"--data {args.data}: no labels to evaluate against")
    X = fdata.prepare_input(X_raw, net.metadata)
    if net.in_features is not None and X.shape[1] != net.in_features:
        raise UsageError(f"{args.model} takes {net.in_features} input features, --data {args.data} has {X.shape[1]}")
    limit_threads(args, net, min(len(X), EVAL_CHUNK))
    result = evaluate(net, X, y)
    part = "test split" if ds.X_test is not None else "whole file"
    print(f"{args.model} on {ds.name} ({part}, {len(X):,} rows)")
    if ds.read_as:
        print(f"read as   {ds.read_as}")
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
    print(text_table(rows, ("class", "precision", "recall", "f1", "support")))
    if args.figures == "-":
        return EXIT_OK
    written = [write_figure(figure("-confusion.png"), confusion_figure, np.array(result["confusion"]), names,
                       show=args.show, title=f"Confusion matrix: {ds.name}")]
    shape = net.metadata.get("input_shape")
    if shape and len(shape) == 2:
        proba = net.predict_proba(X)
        pred = proba.argmax(axis=1)
        wrong = np.flatnonzero(pred != np.asarray(y))
        images = np.asarray(X_raw).reshape(len(X_raw), *shape)[wrong]
        # The mistakes' probabilities again in float64, so that 1 - p ranks those near 100%.
        proba64 = net.loss_fn.proba(np.asarray(net.forward(X[wrong]), dtype=np.float64))
        written.append(write_figure(figure("-mistakes.png"), mistakes_figure, images, np.asarray(y)[wrong],
                               pred[wrong], proba64[np.arange(len(wrong)), pred[wrong]], names, show=args.show))
        first = next((layer for layer in net.layers if "W" in layer.params), None)
        if first is not None:
            written.append(write_figure(figure("-weights.png"), weights_figure, first.W, shape, show=args.show,
                                        initial=initial_weights(net)))
    for path in filter(None, written):
        print(f"Figure written to {path}")
    return EXIT_OK


def _first_weights(net):
    return next((layer.W for layer in net.layers if "W" in layer.params), None)


def _crc(W) -> str:
    import zlib

    import numpy as np

    return f"{zlib.crc32(np.ascontiguousarray(W).view(np.uint8).reshape(-1)):08x}"


def initial_weights_record(net, seed: int) -> dict | None:
    """What a model file keeps so that its first layer's initial weights can be drawn again:
    the seed and a checksum of those weights (call it before training)."""
    W = _first_weights(net)
    return None if W is None else {"seed": int(seed), "crc32": _crc(W)}


def initial_weights(net):
    """The first layer's weights before training, rebuilt from the seed a ``flexnet train``
    model keeps (:func:`initial_weights_record`); None when the model does not keep it or
    the rebuilt weights' checksum differs (another release drew them otherwise)."""
    record = net.metadata.get("initial_weights")
    W = _first_weights(net)
    if not isinstance(record, dict) or W is None or not hasattr(net, "layer_sizes"):
        return None
    try:
        fresh = type(net)(net.layer_sizes, **net.options, dtype=net.dtype, seed=int(record["seed"]))
    except (KeyError, TypeError, ValueError):
        return None
    W0 = _first_weights(fresh)
    if W0 is None or W0.shape != W.shape or _crc(W0) != record.get("crc32"):
        return None
    return W0
