"""ONNX Runtime's time for GELU as flexnet writes it, against the form it wrote before.

    python benchmarks/onnx_gelu.py [--sizes 784,512,512,10] [--runs 400] [--threads 1]

flexnet writes the exact GELU in the node order torch.onnx uses,
``x * (1 + erf(x / sqrt(2))) * 0.5``, which ONNX Runtime's GeluFusion turns into one
``Gelu`` node, and the tanh form in the order its FastGeluFusion matches. The form
written before (``0.5 x`` first, ``x`` multiplied by ``1/sqrt(2)``) is left as
separate element-wise nodes. Both graphs of the same ``Network(sizes,
activation="gelu")`` (float32) run in one process under ``ORT_ENABLE_ALL``, taking
turns run by run so that a busy machine slows both alike; the table gives the
median time of one ``session.run`` per batch size, and the nodes each session ran
after its optimisations.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import flexnet  # noqa: E402
from flexnet.bridges import onnx_export  # noqa: E402


def gelu_before(g, layer, x: str) -> str:
    """GELU as flexnet wrote it before: ``0.5 x`` first, a Mul by ``1/sqrt(2)`` (float32 graphs)."""
    half_x = g.op("Mul", x, g.const("half", 0.5))
    if layer.config().get("approximate", "none") == "tanh":
        cube = g.op("Mul", g.op("Mul", x, x), x)
        inner = g.op("Add", x, g.op("Mul", cube, g.const("c", 0.044715)))
        t = g.op("Tanh", g.op("Mul", inner, g.const("sqrt_2_over_pi", math.sqrt(2 / math.pi))))
    else:
        t = g.op("Erf", g.op("Mul", x, g.const("inv_sqrt2", 1 / math.sqrt(2))))
    return g.op("Mul", half_x, g.op("Add", t, g.const("one", 1.0)))


def session(model, folder: str, name: str, threads: int):
    import onnx
    import onnxruntime as ort

    path = os.path.join(folder, f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.optimized_model_filepath = os.path.join(folder, f"{name}.optimized.onnx")
    options.log_severity_level = 3  # no warning about the saved optimised model
    s = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    nodes = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    return s, nodes


def build(net, gelu):
    saved = onnx_export.EXPORTERS["GELU"]
    onnx_export.EXPORTERS["GELU"] = gelu
    try:
        return onnx_export.build_onnx(net)
    finally:
        onnx_export.EXPORTERS["GELU"] = saved


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="784,512,512,10")
    parser.add_argument("--batches", default="1,256")
    parser.add_argument("--runs", type=int, default=400, help="timed runs of each graph per batch size")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime's intra-op threads")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, ORT_ENABLE_ALL, {args.threads} thread(s), "
          f"median of {args.runs} runs each, taking turns")
    print("| GELU | batch | before: ms | now: ms | before / now | nodes before -> now |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for approximate in ("none", "tanh"):
            net = flexnet.Network(sizes, activation="gelu", seed=0)
            for layer in net.layers:
                if isinstance(layer, flexnet.GELU):
                    layer.approximate = approximate
            assert all(layer.config().get("approximate", "none") == approximate
                       for layer in net.layers if isinstance(layer, flexnet.GELU))
            old, old_nodes = session(build(net, gelu_before), folder, f"before-{approximate}", args.threads)
            new, new_nodes = session(onnx_export.build_onnx(net), folder, f"now-{approximate}", args.threads)
            for batch in (int(b) for b in args.batches.split(",")):
                x = np.random.default_rng(batch).normal(size=(batch, sizes[0])).astype(np.float32)
                a, b = old.run(None, {"input": x})[0], new.run(None, {"input": x})[0]
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
                for _ in range(max(5, args.runs // 20)):  # warm-up
                    old.run(None, {"input": x})
                    new.run(None, {"input": x})
                times = {"old": [], "new": []}
                for _ in range(args.runs):
                    for key, s in (("old", old), ("new", new)):
                        start = time.perf_counter()
                        s.run(None, {"input": x})
                        times[key].append(time.perf_counter() - start)
                before, now = (statistics.median(times[k]) * 1e3 for k in ("old", "new"))
                print(f"| {approximate} | {batch} | {before:.3f} | {now:.3f} | {before / now:.2f} | "
                      f"{' '.join(old_nodes)} -> {' '.join(new_nodes)} |")


if __name__ == "__main__":
    main()
