"""``flexnet predict``: predict classes for a CSV/NPZ file or image files with a saved model."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext

from .common import (
    EXIT_OK,
    UsageError,
    add_table_options,
    add_threads_option,
    check_output,
    label_arg,
    limit_threads,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Named data sets whose images are light ink on a dark background (for models
#: saved before their training images' border brightness was kept).
DARK_BACKGROUND = ("mnist", "fashion-mnist", "kmnist", "digits")


def border_brightness(images, pixel_max: float = 255.0):
    """The mean of each image's outermost ring of pixels, as a fraction of white (0 black, 1 white).

    The border is where the background is: MNIST-style images score near 0
    (light ink on black), a photo of dark ink on paper near 1.

    Args:
        images: shape (N, H, W), values 0..``pixel_max``.
    """
    import numpy as np

    images = np.asarray(images)
    if images.ndim != 3 or min(images.shape[1:]) < 3:  # no ring that is not the whole image
        return images.reshape(len(images), -1).mean(axis=1, dtype=np.float64) / pixel_max
    ring = np.concatenate([images[:, 0, :], images[:, -1, :], images[:, 1:-1, 0], images[:, 1:-1, -1]], axis=1)
    return ring.mean(axis=1, dtype=np.float64) / pixel_max


def training_background(metadata: dict):
    """The training images' mean border brightness (0..1), or None when the model does not say."""
    value = metadata.get("border_brightness")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    dataset = str(metadata.get("dataset", "")).lower()
    return 0.0 if dataset in DARK_BACKGROUND else None


def background_warnings(paths, images, metadata: dict, inverted: bool) -> list[str]:
    """A line for each image whose background is the opposite of the training images'.

    Light and dark are told apart at mid-grey; an image is flagged when its
    border and the training images' borders lie on opposite sides and at
    least half the range apart, so a grey photo is not called inverted.
    """
    trained = training_background(metadata)
    if trained is None:
        return []
    borders = border_brightness(images, float(metadata.get("pixel_max", 255.0)))
    name = metadata.get("dataset") or "the training data"
    shade = lambda b: "light" if b >= 0.5 else "dark"  # noqa: E731
    lines = []
    for path, b in zip(paths, borders):
        if abs(b - trained) < 0.5 or shade(b) == shade(trained):
            continue
        fix = ("leave out --invert (it turned the background " + shade(b) + ")" if inverted
               else f"pass --invert to turn it {shade(trained)}")
        lines.append(f"{path}: its background is {shade(b)} (border {100 * b:.0f}% of white), the {name} "
                     f"training images' {shade(trained)} ({100 * trained:.0f}%): the prediction is likely "
                     f"wrong; {fix}")
    return lines


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
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
    add_table_options(p, "a label column in the CSV to leave out, by name or index (default: the model's "
                      "training label column, when the file has one column more than the model's features)")
    p.add_argument("--invert", action="store_true",
                   help="images: turn dark ink on a light background into light on dark, as MNIST-style "
                   "training images are (predict says when an image's background looks the opposite of "
                   "the training images')")
    p.add_argument("--format", choices=("csv", "json"), default=None,
                   help="output format (default: json for a .json --output, else csv)")
    p.add_argument("--output", default=None, metavar="PATH", help="output file (default: standard output)")
    add_threads_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import csv
    import json

    import numpy as np

    from .. import data as fdata
    from ..files.model_file import load
    from ..filesystem import atomic_write

    check_output(args.output, "--output")
    net = load(args.model)
    suffixes = {os.path.splitext(p)[1].lower() for p in args.inputs}
    if suffixes <= set(IMAGE_SUFFIXES):
        raw = fdata.read_images(args.inputs, net.metadata.get("input_shape"), invert=args.invert,
                                pixel_max=net.metadata.get("pixel_max", 255.0))
        ids = list(args.inputs)
        for line in background_warnings(ids, raw, net.metadata, args.invert):
            print(f"flexnet predict: {line}", file=sys.stderr)
    elif len(args.inputs) == 1 and suffixes <= {".csv", ".npz"}:
        path = args.inputs[0]
        hint = ""
        if path.lower().endswith(".csv"):
            label = label_arg(args.label) if args.label is not None else _label_to_drop(args, net, path)
            table = fdata.read_table(path, label, header=args.header, delimiter=args.delimiter)
            raw = table.X
            if table.layout.n_columns == 1:
                hint = f"; one column per line: {table.layout.delimiter_hint()}"
        else:
            raw, _ = fdata.read_npz(path)
        ids = list(range(len(raw)))
    else:
        raise UsageError("INPUT: expected one .csv or .npz file, or image files (.png, .jpg, ...); "
                         f"got {', '.join(args.inputs)}")
    if net.in_features is not None and raw.ndim == 2 and raw.shape[1] != net.in_features:
        raise UsageError(f"{args.model} was trained on {net.in_features} features, got {raw.shape[1]} in "
                         f"{args.inputs[0]}{hint}")
    X = fdata.prepare_input(raw, net.metadata)
    if net.in_features is not None and X.shape[1] != net.in_features:
        raise UsageError(f"{args.model} takes {net.in_features} input features, the input has {X.shape[1]}")
    limit_threads(args, net, len(X))
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
    # A file is written whole or not at all: a full disk leaves the previous one as it was.
    output = (atomic_write(args.output, "w", encoding="utf-8", newline="") if args.output
              else nullcontext(sys.stdout))
    with output as stream:
        if fmt == "json":
            json.dump(records, stream, indent=1)
            stream.write("\n")
        else:
            writer = csv.DictWriter(stream, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    if args.output:
        print(f"{len(records)} prediction(s) written to {args.output}", file=sys.stderr)
    return EXIT_OK


def _label_to_drop(args, net, path):
    """The column to leave out of a CSV without ``--label``: none when the columns are the model's
    features; the model's training label column when the file has one column more and holds it."""
    from ..data.csv_layout import sniff_csv

    stored = net.metadata.get("label_column")
    layout = sniff_csv(path, header=args.header, delimiter=args.delimiter, label=stored)
    n_in, n = net.in_features, layout.n_columns
    if n_in is None or n != n_in + 1:
        return None
    by_name = isinstance(stored, str) and layout.header and layout.columns.count(stored) == 1
    by_index = isinstance(stored, int) and not layout.header and 0 <= stored < n
    if by_name or by_index:
        column = stored
    else:
        raise UsageError(f"{path} has {n} columns, {args.model} takes {n_in} features: if one column holds "
                         "labels, pass --label NAME|INDEX to leave it out")
    print(f"flexnet predict: leaving out {layout.column(layout.label_index(column))}, the model's label column",
          file=sys.stderr)
    return column
