"""The workloads and the implementations the benchmark times against each other.

Each implementation gets the same data (float32 features, integer labels) and
runs the same workload: one epoch of mini-batch SGD with shuffling (200 epochs
for ``tiny``), or repeated inference passes for ``infer``. Everything an
implementation needs before the clock starts (its own copy of the data in its
own format, a fresh model) happens in ``setup`` and ``make``; ``run`` is timed.
"""

from __future__ import annotations

import warnings

import numpy as np

import flexnet

LR = 0.1
SEED = 0

#: name -> layer sizes, batch size, samples, epochs (inference: passes per run).
WORKLOADS = {
    "W": {"sizes": [784, 128, 64, 10], "batch": 64, "n": 60_000, "epochs": 1},
    "W-big": {"sizes": [784, 512, 512, 10], "batch": 256, "n": 60_000, "epochs": 1},
    "tiny": {"sizes": [25, 16, 8, 2], "batch": 16, "n": 200, "epochs": 200},
    "infer": {"sizes": [784, 128, 64, 10], "batch": None, "n": 10_000, "passes": 20},
}
#: --quick: the same shapes on a sliver of the data, for a CI smoke run.
QUICK = {
    "W": {"n": 1024},
    "W-big": {"n": 1024},
    "tiny": {"epochs": 3},
    "infer": {"n": 1000, "passes": 2},
}


def workload(name: str, quick: bool = False) -> dict:
    spec = dict(WORKLOADS[name], name=name)
    if quick:
        spec.update(QUICK[name])
    return spec


def make_data(spec: dict):
    """MNIST-shaped random data (W, W-big, infer) or the edge patches (tiny)."""
    if spec["name"] == "tiny":
        X, y = flexnet.datasets.edges(spec["n"], seed=SEED)
        return X.astype(np.float32), np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(SEED)
    X = rng.random((spec["n"], spec["sizes"][0]), dtype=np.float32)
    y = rng.integers(0, spec["sizes"][-1], spec["n"])
    return X, y


def batch_sizes(n: int, batch: int) -> list[int]:
    return [min(batch, n - i) for i in range(0, n, batch)]


class Impl:
    """One way of running the workloads; ``run`` is what the clock measures."""

    label = ""

    def setup(self, spec, X, y):
        self.spec, self.X, self.y = spec, X, y
        self.sizes, self.B = spec["sizes"], spec["batch"]
        self.rng = np.random.default_rng(SEED + 1)

    def make(self):
        """Build a fresh model (not timed)."""

    def run(self):
        if self.spec["name"] == "infer":
            for _ in range(self.spec["passes"]):
                self.infer()
        else:
            for _ in range(self.spec["epochs"]):
                self.epoch()

    def epoch(self):
        raise NotImplementedError

    def infer(self):
        raise NotImplementedError


class FlexnetFit(Impl):
    label = "flexnet fit()"

    def make(self):
        self.net = flexnet.Network(self.sizes, seed=SEED)

    def run(self):
        if self.spec["name"] == "infer":
            return super().run()
        history = flexnet.fit(self.net, self.X, self.y, epochs=self.spec["epochs"], batch_size=self.B,
                              lr=LR, shuffle=True, seed=int(self.rng.integers(2**31)), progress=False)
        self.threads_used = history.params.get("threads")  # the count fit chose

    def infer(self):
        self.net.predict_proba(self.X)


class FlexnetFitThreads(FlexnetFit):
    """``fit`` with a fixed BLAS thread count, ``fit(threads=N)``: the yardstick for
    flexnet's own choice (``flexnet-fit@N`` on the command line)."""

    threads = 1

    def run(self):
        if self.spec["name"] == "infer":
            from flexnet.ops import threads

            with threads.limited(self.threads):
                return super().run()
        flexnet.fit(self.net, self.X, self.y, epochs=self.spec["epochs"], batch_size=self.B,
                    lr=LR, shuffle=True, seed=int(self.rng.integers(2**31)), progress=False,
                    threads=self.threads)


def make_impl(name: str) -> type:
    """The implementation class for ``name``: a key of IMPLS, or ``flexnet-fit@N``."""
    if name in IMPLS:
        return IMPLS[name]
    base, _, count = name.partition("@")
    if base != "flexnet-fit" or not count.isdigit() or int(count) < 1:
        raise KeyError(name)
    return type(f"FlexnetFit{count}", (FlexnetFitThreads,),
                {"threads": int(count), "label": f"flexnet fit(threads={count})"})


class FlexnetStep(FlexnetFit):
    """The tutorial's training loop written by the user around ``train_step``."""

    label = "flexnet train_step"
    dtype = "float32"

    def setup(self, spec, X, y):
        super().setup(spec, X.astype(self.dtype), y)

    def make(self):
        self.net = flexnet.Network(self.sizes, seed=SEED, dtype=self.dtype)

    def run(self):
        Impl.run(self)

    def epoch(self):
        perm = self.rng.permutation(len(self.X))
        for i in range(0, len(perm), self.B):
            idx = perm[i:i + self.B]
            self.net.train_step(self.X[idx], self.y[idx], LR)


class FlexnetStep64(FlexnetStep):
    label = "flexnet float64"
    dtype = "float64"


class Torch(Impl):
    label = "PyTorch eager"

    def setup(self, spec, X, y):
        import torch

        super().setup(spec, X, y)
        self.torch = torch
        self.Xt, self.yt = torch.from_numpy(X), torch.from_numpy(y)
        self.gen = torch.Generator().manual_seed(SEED + 1)

    def make(self):
        nn = self.torch.nn
        self.torch.manual_seed(SEED)
        mods = []
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(self.sizes) - 2:
                mods.append(nn.ReLU())
        self.model = nn.Sequential(*mods)
        self.opt = self.torch.optim.SGD(self.model.parameters(), lr=LR)
        self.loss_fn = nn.CrossEntropyLoss()

    def epoch(self):
        perm = self.torch.randperm(len(self.Xt), generator=self.gen)
        for i in range(0, len(perm), self.B):
            idx = perm[i:i + self.B]
            self.opt.zero_grad()
            loss = self.loss_fn(self.model(self.Xt[idx]), self.yt[idx])
            loss.backward()
            self.opt.step()

    def infer(self):
        with self.torch.no_grad():
            self.torch.softmax(self.model(self.Xt), dim=1)


class Sklearn(Impl):
    label = "sklearn MLPClassifier"

    def setup(self, spec, X, y):
        super().setup(spec, X, y)
        from sklearn.neural_network import MLPClassifier

        self.cls = MLPClassifier

    def make(self):
        epochs = self.spec.get("epochs", 1)
        self.model = self.cls(
            hidden_layer_sizes=tuple(self.sizes[1:-1]), activation="relu", solver="sgd",
            batch_size=self.B or 64, learning_rate="constant", learning_rate_init=LR,
            momentum=0.0, nesterovs_momentum=False, alpha=0.0, max_iter=epochs, shuffle=True,
            tol=0.0, n_iter_no_change=epochs + 1, random_state=SEED,
        )
        if self.spec["name"] == "infer":  # inference needs a fitted model: one batch
            self.model.partial_fit(self.X[:64], self.y[:64], classes=np.arange(self.sizes[-1]))

    def run(self):
        if self.spec["name"] == "infer":
            return super().run()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter is the epoch count
            self.model.fit(self.X, self.y)

    def infer(self):
        self.model.predict_proba(self.X)


class Plain(Impl):
    label = "plain tutorial code (float64)"

    def setup(self, spec, X, y):
        super().setup(spec, X.astype(np.float64), y)
        self.Y = np.eye(self.sizes[-1])[y]  # one-hot rows, float64

    def make(self):
        from plain import PlainNetwork

        self.net = PlainNetwork(self.sizes, seed=SEED)

    def epoch(self):
        perm = self.rng.permutation(len(self.X))
        for i in range(0, len(perm), self.B):
            idx = perm[i:i + self.B]
            self.net.train_step(self.X[idx], self.Y[idx], LR)

    def infer(self):
        self.net.predict_proba(self.X)


class FloorNumpy(Impl):
    """The matrix products of a training step alone, on preallocated arrays.

    Per batch: ``x @ W`` for every layer, ``x.T @ dz`` for every layer and
    ``dz @ W.T`` for every layer but the first (its input needs no gradient).
    No bias, activation, loss, update, shuffling or allocation: a floor no
    implementation with this BLAS can go under.
    """

    label = "GEMM floor (NumPy)"
    dtype = np.float32

    def setup(self, spec, X, y):
        super().setup(spec, X, y)
        rng = np.random.default_rng(SEED)
        rows = spec["n"] if spec["name"] == "infer" else spec["batch"]
        s = self.sizes
        self.W = [self._arr(rng, (a, b)) for a, b in zip(s[:-1], s[1:])]
        self.act = [self._arr(rng, (rows, k)) for k in s]  # inputs / outputs of each layer
        self.dz = [self._arr(rng, (rows, k)) for k in s]  # gradients w.r.t. them
        self.dW = [self._arr(rng, w.shape) for w in self.W]
        self.steps = None if spec["name"] == "infer" else batch_sizes(spec["n"], spec["batch"])

    def _arr(self, rng, shape):
        return rng.random(shape).astype(self.dtype)

    def mm(self, a, b, out):
        np.matmul(a, b, out=out)

    def epoch(self):
        W, act, dz, dW, mm = self.W, self.act, self.dz, self.dW, self.mm
        for m in self.steps:
            for i in range(len(W)):
                mm(act[i][:m], W[i], act[i + 1][:m])
            for i in range(len(W) - 1, -1, -1):
                mm(act[i][:m].T, dz[i + 1][:m], dW[i])
                if i > 0:
                    mm(dz[i + 1][:m], W[i].T, dz[i][:m])

    def infer(self):
        for i in range(len(self.W)):
            self.mm(self.act[i], self.W[i], self.act[i + 1])


class FloorNumpy64(FloorNumpy):
    """The same products in float64: how much of float64's cost is the BLAS's own."""

    label = "GEMM floor (NumPy float64)"
    dtype = np.float64


class FloorTorch(FloorNumpy):
    label = "GEMM floor (PyTorch)"

    def setup(self, spec, X, y):
        import torch

        self.torch = torch
        super().setup(spec, X, y)

    def _arr(self, rng, shape):
        return self.torch.from_numpy(rng.random(shape).astype(np.float32))

    def mm(self, a, b, out):
        self.torch.mm(a, b, out=out)


IMPLS = {
    "flexnet-fit": FlexnetFit,
    "flexnet-step": FlexnetStep,
    "flexnet-f64": FlexnetStep64,
    "torch": Torch,
    "sklearn": Sklearn,
    "plain": Plain,
    "floor-numpy": FloorNumpy,
    "floor-numpy-f64": FloorNumpy64,
    "floor-torch": FloorTorch,
}
