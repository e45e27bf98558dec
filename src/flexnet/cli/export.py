"""``flexnet export``: write a saved model as an ONNX, PyTorch or safetensors file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .common import EXIT_OK, UsageError, check_output

#: Each format, the suffix of its default file name, and the package it is written with.
SUFFIX = {"onnx": ".onnx", "torch": ".pt", "safetensors": ".safetensors"}
NEEDS = {"onnx": ("onnx", "ONNX export"), "torch": ("torch", "the PyTorch bridge"),
         "safetensors": ("safetensors.numpy", "safetensors export")}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a saved model as an ONNX, PyTorch or safetensors file",
        description="Write a saved model for other runtimes: an ONNX inference graph (dropout left "
        "out, batch norm folded, dynamic batch size), a PyTorch file that "
        "torch.load(path, weights_only=True) reads (layer list plus state dict), or the weights as a "
        "safetensors file keyed by the PyTorch module's state-dict names, which "
        "safetensors.torch.load_file reads (written without PyTorch; see docs/bridges.md).",
        epilog="examples:\n"
        "  flexnet export model.npz --format onnx --out model.onnx\n"
        "  flexnet export model.npz --format onnx --probabilities\n"
        "  flexnet export model.npz --format torch --out model.pt\n"
        "  flexnet export model.npz --format safetensors --out model.safetensors",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="model file saved by flexnet (.npz)")
    p.add_argument("--format", choices=tuple(SUFFIX), required=True, help="what to write")
    p.add_argument("--out", metavar="PATH", help="output file (default: MODEL with .onnx, .pt or .safetensors)")
    p.add_argument("--probabilities", action="store_true",
                   help="onnx only: end the graph with softmax/sigmoid to output probabilities")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.extras import optional
    from ..files.model_file import load

    out = args.out or str(Path(args.model).with_suffix(SUFFIX[args.format]))
    if args.probabilities and args.format != "onnx":
        raise UsageError("--probabilities applies to --format onnx only")
    check_output(out, "--out")
    if Path(out).exists() and Path(args.model).exists() and os.path.samefile(out, args.model):
        raise UsageError(f"--out {out}: is the model file itself; give another file name")
    # The package it exports with, before any work (a missing one: exit 2 and what to install).
    optional(*NEEDS[args.format])
    net = load(args.model)
    if args.format == "onnx":
        from ..bridges.onnx_export import to_onnx

        to_onnx(net, out, probabilities=args.probabilities)
    elif args.format == "safetensors":
        from ..bridges.safetensors_file import to_safetensors

        to_safetensors(net, out)
    else:
        from ..bridges.pytorch import save_torch

        save_torch(net, out)
    print(f"Wrote {out} ({args.format}, {len(net.layers)} layers, {net.dtype.name})")
    return EXIT_OK
