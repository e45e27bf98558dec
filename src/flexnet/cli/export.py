"""``flexnet export``: write a saved model as an ONNX or PyTorch file."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, UsageError, check_output


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
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
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.extras import optional
    from ..files.model_file import load

    out = args.out or str(Path(args.model).with_suffix(".onnx" if args.format == "onnx" else ".pt"))
    if args.probabilities and args.format != "onnx":
        raise UsageError("--probabilities applies to --format onnx only")
    check_output(out, "--out")
    # The package it exports with, before any work (a missing one: exit 2 and what to install).
    optional(*(("onnx", "ONNX export") if args.format == "onnx" else ("torch", "the PyTorch bridge")))
    net = load(args.model)
    if args.format == "onnx":
        from ..bridges.onnx_export import to_onnx

        to_onnx(net, out, probabilities=args.probabilities)
    else:
        from ..bridges.pytorch import save_torch

        save_torch(net, out)
    print(f"Wrote {out} ({args.format}, {len(net.layers)} layers, {net.dtype.name})")
    return EXIT_OK
