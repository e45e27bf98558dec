"""The benchmark suite runs (smoke, no timing asserted), and the fast paths in
the hot loop give the same numbers as the straightforward computation."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import flexnet
from flexnet import Linear, Network, ReLU, SoftmaxCrossEntropy
from flexnet.nn.losses import log_softmax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "benchmarks", "run.py")
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


# -- the suite -------------------------------------------------------------------


def test_default_settings_and_busy_mode_run_and_say_what_fit_chose(tmp_path):
    """Without --threads every library keeps its defaults and flexnet's fit chooses; --busy
    runs a spinning process for the whole run and stops it."""
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, RUN, "--quick", "--busy", "--gap", "0", "--workloads", "tiny",
                           "--impls", "flexnet-fit,flexnet-fit@1,torch", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| tiny | flexnet fit() [chose 1] |" in proc.stdout  # the tutorial's sizes: one thread
    assert "| tiny | flexnet fit(threads=1) |" in proc.stdout
    data = json.loads(out.read_text())
    assert data["meta"]["threads"] == "default" and data["meta"]["busy"] is True
    assert data["meta"]["busy_cpu_seconds"] > 0  # the spinner ran, and was stopped (its usage is read at exit)
    rows = {r["impl"]: r for r in data["results"]}
    assert rows["flexnet-fit"]["threads_chosen"] == [1]
    assert "threads_chosen" not in rows["flexnet-fit@1"]


def test_quick_benchmark_runs_and_writes_every_field(tmp_path):
    out = tmp_path / "results.json"
    # One thread: the smoke run checks that everything runs, not speed, and
    # multi-threaded BLAS on a busy CI machine only burns time spinning.
    proc = subprocess.run([sys.executable, RUN, "--quick", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| W | flexnet fit() |" in proc.stdout
    data = json.loads(out.read_text())
    from impls import IMPLS, WORKLOADS

    meta = data["meta"]
    for key in ("date", "cpu", "cpus", "threads", "numpy", "numpy_blas", "torch", "command"):
        assert key in meta
    assert meta["quick"] is True and meta["reps"] == 1 and meta["threads"] == 1
    rows = {(r["workload"], r["impl"]): r for r in data["results"]}
    assert set(rows) == {(w, i) for w in WORKLOADS for i in IMPLS}
    for r in rows.values():
        assert len(r["seconds"]) == 1 and r["min"] <= r["median"] <= r["max"]
        assert r["samples_per_s"] > 0
        for key in ("vs_torch", "vs_floor_numpy", "vs_floor_torch", "cold_seconds",
                    "peak_extra_mib", "peak_rss_mib"):
            assert key in r
        assert r["vs_torch"] > 0 and r["vs_floor_numpy"] > 0
        if sys.platform.startswith("linux"):
            assert r["peak_rss_mib"] > 0 and r["peak_extra_mib"] >= 0
    assert {t["target"] for t in data["targets"]} >= {
        "W: flexnet / PyTorch time", "W-big: flexnet / PyTorch time", "tiny: flexnet / PyTorch time"}
    f64 = next(t for t in data["targets"] if t["target"] == "W: float64 / float32 time")
    assert f64["gemm_floor_ratio"] > 0  # the BLAS's own float64 cost, beside the target
    assert "the GEMM floor's own ratio" in proc.stdout


def test_overhead_ladder_runs_every_stage():
    script = os.path.join(ROOT, "benchmarks", "overhead.py")
    proc = subprocess.run([sys.executable, script, "--quick"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split("|")[1].strip() for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["by hand", "+ layers' forward", "+ loss", "+ backward", "+ optimizer", "fit()",
                        "fit(), NumPy update"]


def test_benchmark_refuses_unknown_names(tmp_path):
    proc = subprocess.run([sys.executable, RUN, "--quick", "--impls", "flexnet-fit,nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown implementation 'nope'" in proc.stderr


def test_floor_does_the_products_of_a_training_step():
    # The floor must do the same products as a step: forward for every layer,
    # dW for every layer, dx for all but the first. Count them with a spy.
    from impls import FloorNumpy, make_data, workload

    spec = workload("tiny", quick=True)
    floor = FloorNumpy()
    floor.setup(spec, *make_data(spec))
    shapes = []
    floor.mm = lambda a, b, out: shapes.append((a.shape, b.shape))
    floor.epoch()
    per_batch = len(shapes) / len(floor.steps)
    assert per_batch == 3 + 3 + 2
    assert ((16, 25), (25, 16)) in shapes and ((25, 16), (16, 16)) in shapes
    assert ((16, 16), (16, 25)) not in shapes  # no dx for the data


def test_plain_baseline_learns_the_edges():
    from plain import PlainNetwork

    X, y = flexnet.datasets.edges(200, seed=0)
    Y = np.eye(2)[y]
    net = PlainNetwork([25, 8, 2], seed=0)
    first = net.train_step(X.astype(np.float64), Y, 0.1)
    for _ in range(100):
        last = net.train_step(X.astype(np.float64), Y, 0.1)
    assert last < first / 5
    assert net.layers[0].W.dtype == np.float64


# -- fast paths: buffers never leak to the caller ---------------------------------


def test_forward_outputs_are_never_reused_buffers():
    rng = np.random.default_rng(0)
    net = Network([6, 5, 4, 3], seed=0)
    x1, x2 = rng.standard_normal((8, 6)), rng.standard_normal((8, 6))
    for training in (False, True):
        a = net.forward(x1, training=training)
        a0 = a.copy()
        b = net.forward(x2, training=training)
        np.testing.assert_array_equal(a, a0)
        assert not np.shares_memory(a, b)
    relu, lin = ReLU(), Linear(6, 4, seed=0)
    h1 = relu.forward(x1)
    h1c = h1.copy()
    relu.forward(x2)
    np.testing.assert_array_equal(h1, h1c)
    z1 = lin.forward(x1.astype(np.float32))
    z1c = z1.copy()
    lin.forward(x2.astype(np.float32))
    np.testing.assert_array_equal(z1, z1c)


def test_backward_returns_fresh_input_gradients_and_leaves_its_argument_alone():
    rng = np.random.default_rng(1)
    lin, relu = Linear(5, 3, seed=0), ReLU()
    x = rng.standard_normal((4, 5)).astype(np.float32)
    relu.forward(lin.forward(x))
    g = rng.standard_normal((4, 3)).astype(np.float32)
    g0 = g.copy()
    d1 = lin.backward(relu.backward(g))
    d1c = d1.copy()
    np.testing.assert_array_equal(g, g0)
    relu.forward(lin.forward(x * 2))
    lin.backward(relu.backward(g))
    np.testing.assert_array_equal(d1, d1c)


def test_reused_gradient_arrays_hold_the_latest_exact_gradients():
    # dW/db are documented to be overwritten in place by the next backward;
    # each time they must equal the straightforward x.T @ dz and dz.sum(0).
    rng = np.random.default_rng(2)
    lin = Linear(5, 3, seed=0)
    for n in (4, 4, 7, 4):  # same size (reuse), a new size, back again
        x = rng.standard_normal((n, 5)).astype(np.float32)
        dz = rng.standard_normal((n, 3)).astype(np.float32)
        lin.forward(x)
        dx = lin.backward(dz)
        np.testing.assert_allclose(lin.dW, x.T @ dz, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(lin.db, dz.sum(axis=0, keepdims=True), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(dx, dz @ lin.W.T, rtol=1e-6, atol=1e-6)
        assert lin.dW.dtype == lin.db.dtype == dx.dtype == np.float32


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_new_and_reused_gradient_arrays_get_the_same_bits(dtype):
    # The first backward writes new arrays, later ones reuse them (out=). Both
    # must compute the same products, or a resumed run, whose first backward
    # takes the new-array path, would drift from one that never stopped.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 33)).astype(dtype)
    dz = rng.standard_normal((64, 17)).astype(dtype)
    fresh, reused = Linear(33, 17, seed=0, dtype=dtype), Linear(33, 17, seed=0, dtype=dtype)
    reused.forward(x)
    reused.backward(rng.standard_normal((64, 17)).astype(dtype))  # allocates dW and db
    kept_dW, kept_db = reused.dW, reused.db
    for lin in (fresh, reused):
        lin.forward(x)
        lin.backward(dz)
    assert reused.dW is kept_dW and reused.db is kept_db  # the reuse path ran
    assert fresh.dW.tobytes() == reused.dW.tobytes() and fresh.db.tobytes() == reused.db.tobytes()
    np.testing.assert_allclose(fresh.db, dz.sum(axis=0, keepdims=True), rtol=1e-5 if dtype == "float32" else 1e-12)


def test_ones_arrays_are_cached_and_read_only():
    from flexnet.ops import ones

    a = ones((1, 5), np.dtype(np.float32))
    assert a is ones((1, 5), np.dtype(np.float32))
    assert a.shape == (1, 5) and a.dtype == np.float32 and not a.flags.writeable
    np.testing.assert_array_equal(a, 1)
    with pytest.raises(ValueError):
        a[0, 0] = 2.0


def test_read_only_gradient_arrays_are_replaced_not_written():
    lin = Linear(3, 2, seed=0)
    x = np.ones((2, 3), np.float32)
    lin.forward(x)
    lin.backward(np.ones((2, 2), np.float32))
    kept = lin.dW
    kept.flags.writeable = False
    lin.backward(np.full((2, 2), 2.0, np.float32))
    assert lin.dW is not kept
    np.testing.assert_array_equal(kept, np.full((3, 2), 2.0))
    np.testing.assert_array_equal(lin.dW, np.full((3, 2), 4.0))


def _reference_step(params, x, y, lr):
    """One SGD step on a Linear/ReLU stack written out plainly, in float64."""
    hs, h = [x], x
    for i, (W, b) in enumerate(params):
        h = h @ W + b
        if i < len(params) - 1:
            h = np.maximum(h, 0)
        hs.append(h)
    p = np.exp(h - h.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y]).mean()
    dz = (p - np.eye(p.shape[1])[y]) / len(y)
    grads = []
    for i in range(len(params) - 1, -1, -1):
        W, _ = params[i]
        grads.append((hs[i].T @ dz, dz.sum(axis=0, keepdims=True)))
        dz = (dz @ W.T) * (hs[i] > 0)
    for (W, b), (dW, db) in zip(params, reversed(grads)):
        W -= lr * dW
        b -= lr * db
    return loss


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 2e-4)])
def test_train_step_matches_the_straightforward_computation(dtype, tol):
    rng = np.random.default_rng(3)
    net = Network([7, 6, 5, 3], seed=0, dtype=dtype)
    ref = [(layer.W.astype(np.float64), layer.b.astype(np.float64)) for layer in net.layers[::2]]
    X = rng.standard_normal((40, 7))
    y = rng.integers(0, 3, 40)
    for start, stop in [(0, 16), (16, 32), (32, 40), (0, 16), (8, 24)]:  # sizes change and return
        loss = net.train_step(X[start:stop], y[start:stop], 0.5)
        want = _reference_step(ref, X[start:stop], y[start:stop], 0.5)
        assert loss == pytest.approx(want, rel=tol, abs=tol)
    for layer, (W, b) in zip(net.layers[::2], ref):
        assert layer.W.dtype == np.dtype(dtype) and layer.dW.dtype == np.dtype(dtype)
        np.testing.assert_allclose(layer.W, W, rtol=tol, atol=tol)
        np.testing.assert_allclose(layer.b, b, rtol=tol, atol=tol)


def test_first_layer_computes_no_input_gradient():
    net = Network([4, 3, 2], seed=0)
    calls = []
    first = net.layers[0]
    original = first.backward

    def spy(grad, input_grad=True):
        calls.append(input_grad)
        return original(grad, input_grad)

    first.backward = spy
    net.train_step(np.ones((2, 4)), [0, 1], 0.1)
    assert calls == [False]


# -- fused softmax cross-entropy on class ids ------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_ce_fast_path_matches_log_softmax_and_one_hot(dtype):
    rng = np.random.default_rng(4)
    z = (rng.standard_normal((9, 4)) * 30).astype(dtype)  # large logits: no overflow allowed
    z[0] = [1000, -1000, 0, 0]
    y = rng.integers(0, 4, 9)
    y[0] = 1  # the sure-wrong row: loss 2000 exactly, not inf
    fast = SoftmaxCrossEntropy()
    loss = fast.forward(z, y)
    grad = fast.backward()
    logp = log_softmax(z.astype(np.float64))
    want = -logp[np.arange(9), y].mean()
    assert loss == pytest.approx(want, rel=1e-5 if dtype == "float32" else 1e-12)
    assert np.isfinite(loss) and grad.dtype == np.dtype(dtype) and fast.p.dtype == np.dtype(dtype)
    one_hot = SoftmaxCrossEntropy()  # (N, C) targets take the general path
    assert one_hot.forward(z, np.eye(4, dtype=dtype)[y]) == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(grad, one_hot.backward(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fast.p.sum(axis=1), 1.0, rtol=1e-6)


def test_softmax_ce_options_still_use_their_own_path():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((6, 3))
    y = rng.integers(0, 3, 6)
    plain = SoftmaxCrossEntropy().forward(z, y)
    assert SoftmaxCrossEntropy(label_smoothing=0.2).forward(z, y) != pytest.approx(plain)
    weighted = SoftmaxCrossEntropy(class_weights=[1.0, 1.0, 1.0])
    assert weighted.forward(z, y) == pytest.approx(plain, rel=1e-12)
    unweighted = SoftmaxCrossEntropy()
    unweighted.forward(z, y)
    np.testing.assert_allclose(weighted.backward(), unweighted.backward(), rtol=1e-10)


def test_relu_mask_follows_the_latest_batch_of_any_size():
    relu = ReLU()
    for z in (np.array([[1.0, -1.0]]), np.array([[-1.0, 2.0]]), np.array([[3.0, 0.0], [-2.0, 5.0]])):
        relu.forward(z)
        np.testing.assert_array_equal(relu.backward(np.ones_like(z)), (z > 0).astype(float))


# -- the fused update (axpy) -------------------------------------------------------


def _no_blas(monkeypatch):
    from flexnet import ops as _blas

    monkeypatch.setattr(_blas, "_kernels", lambda: {})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("blas", [True, False])
def test_axpy_updates_in_place_as_numpy_would(dtype, blas, monkeypatch):
    from flexnet.ops import axpy

    if not blas:
        _no_blas(monkeypatch)
    rng = np.random.default_rng(6)
    for shape in [(10,), (1, 7), (784, 128)]:
        y = rng.standard_normal(shape).astype(dtype)
        x = rng.standard_normal(shape).astype(dtype)
        x.flags.writeable = False  # a read-only gradient is read, never written
        want = y + np.asarray(-0.1, dtype) * x
        before = y.ctypes.data
        axpy(-0.1, x, y)
        assert y.ctypes.data == before and y.dtype == np.dtype(dtype)
        # one rounding (fused multiply-add) or two: at most an ulp or so apart
        np.testing.assert_allclose(y, want, rtol=1e-6 if dtype == "float32" else 1e-14, atol=1e-7)
        if not blas:
            np.testing.assert_array_equal(y, want)  # NumPy's own two operations, exactly


def test_axpy_takes_any_layout_and_leaves_the_rest_of_the_array_alone():
    from flexnet.ops import axpy

    base = np.zeros((6, 8), dtype=np.float32)
    view = base[:, ::2]  # not contiguous: BLAS cannot take it in place
    axpy(2.0, np.ones((6, 4), dtype=np.float32), view)
    assert (base[:, ::2] == 2).all() and (base[:, 1::2] == 0).all()
    fortran = np.asfortranarray(np.ones((5, 3)))
    axpy(-1.0, np.full((5, 3), 0.5), fortran)
    np.testing.assert_array_equal(fortran, 0.5)


def test_axpy_writes_the_result_back_if_the_wrapper_ever_copies(monkeypatch):
    from flexnet import ops as _blas

    def copying(x, y, n, a, offx, incx, offy, incy):
        out = y.copy()  # what an f2py wrapper returns when it cannot work in place
        out[offy:offy + n] += a * x[offx:offx + n]
        return out

    monkeypatch.setattr(_blas, "_kernels", lambda: {np.dtype(np.float64): copying})
    monkeypatch.setattr(_blas, "CHUNK", 4)
    y = np.ones(10)
    _blas.axpy(3.0, np.arange(10.0), y)
    np.testing.assert_array_equal(y, 1 + 3 * np.arange(10.0))


def test_axpy_calls_blas_in_pieces_small_enough_to_stay_on_one_thread(monkeypatch):
    # Larger calls wake OpenBLAS's thread pool, which fights NumPy's own.
    from scipy.linalg.blas import daxpy

    from flexnet import ops as _blas

    calls = []

    def spy(x, y, n, a, offx, incx, offy, incy):
        calls.append((offx, offy, n))
        return daxpy(x, y, n, a, offx, incx, offy, incy)

    monkeypatch.setattr(_blas, "_kernels", lambda: {np.dtype(np.float64): spy})
    y = np.zeros((250, 100))
    _blas.axpy(0.5, np.ones((250, 100)), y)
    assert calls == [(0, 0, 10_000), (10_000, 10_000, 10_000), (20_000, 20_000, 5_000)]
    np.testing.assert_array_equal(y, 0.5)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_gives_the_same_weights_with_and_without_scipy_blas(momentum, monkeypatch):
    from flexnet.optim import SGD

    rng = np.random.default_rng(7)
    X = rng.standard_normal((96, 30)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    nets = []
    for blas in (True, False):
        if not blas:
            _no_blas(monkeypatch)
        net = Network([30, 70, 3], seed=0)  # 2,100 weights in the first layer
        flexnet.fit(net, X, y, epochs=3, batch_size=32, optimizer=SGD(0.1, momentum=momentum), seed=0)
        nets.append(net)
    for (name, a), b in zip(nets[0].parameters().items(), nets[1].parameters().values()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=name)


def test_thread_limit_reaches_scipy_blas_too():
    code = (
        "from flexnet.ops import threads\n"
        "from threadpoolctl import threadpool_info\n"
        "threads.limit(1)\n"
        "pools = [p for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "print(len(pools), sorted({p['num_threads'] for p in pools}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env, timeout=120).stdout.split(maxsplit=1)
    assert int(out[0]) >= 2 and out[1].strip() == "[1]"  # NumPy's OpenBLAS and SciPy's, both at 1


def test_softmax_ce_fast_path_takes_outputs_in_any_memory_order():
    rng = np.random.default_rng(8)
    z = rng.standard_normal((7, 5))
    y = rng.integers(0, 5, 7)
    c_order, f_order = SoftmaxCrossEntropy(), SoftmaxCrossEntropy()
    assert c_order.forward(z, y) == f_order.forward(np.asfortranarray(z), y)
    np.testing.assert_array_equal(c_order.backward(), f_order.backward())


def test_same_numbers_reads_printed_tables_at_the_coarser_precision():
    import same_numbers

    old = "arch  loss  acc  time (s)\n------\n[25, 2]  0.0052  100.0%  0.10\n"
    assert same_numbers.same_printed_output(old, old.replace("0.0052", "0.00519").replace("0.10", "0.08"))
    assert not same_numbers.same_printed_output(old, old.replace("0.0052", "0.00531"))  # 0.0053 at 4 places
    assert not same_numbers.same_printed_output(old, old.replace("100.0%", "99.5%"))
    assert not same_numbers.same_printed_output(old, old.replace("arch", "architecture"))
    assert not same_numbers.same_printed_output(old, old + "one line more\n")


def test_same_numbers_accepts_added_metadata_but_not_a_changed_field():
    import same_numbers

    old = {"model": {"layers": [{"module": "flexnet.layers"}], "metadata": {"scale": 255}}}
    new = {"model": {"layers": [{"module": "flexnet.nn.layers"}], "metadata": {"scale": 255, "seed": 1}}}
    diffs = same_numbers.header_differences(old, new)
    assert diffs == ["model.layers[*].module", "model.metadata.seed (added)"]
    assert "model.metadata.scale" in same_numbers.header_differences(old, {"model": {"metadata": {"scale": 1}}})
