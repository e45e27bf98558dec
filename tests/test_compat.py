"""What code written for 0.1 (the flat layout) relies on keeps working.

Model files, checkpoints and pickles of 0.1 are in tests/test_fixtures.py; the old
module paths in tests/test_architecture.py. Here: the names and behaviours around them.
"""

import subprocess
import sys

import numpy as np
import pytest

import flexnet
from flexnet import Linear, Network, SoftmaxCrossEntropy


def test_every_load_gives_a_network_that_trains_and_saves(tmp_path):
    net = Network([4, 3, 2], seed=0)
    net.save(tmp_path / "m.npz")
    import flexnet.io  # 0.1's module of model files

    import flexnet.files

    for load in (flexnet.load, flexnet.io.load, flexnet.files.load):
        back = load(tmp_path / "m.npz")
        assert type(back) is flexnet.Network and callable(back.fit) and callable(back.save)
    seq = flexnet.Sequential([Linear(4, 2, seed=0)])
    seq.save(tmp_path / "s.npz")
    assert type(flexnet.load(tmp_path / "s.npz")) is flexnet.Sequential


def test_a_custom_layer_written_for_0_1_still_names_itself():
    class Scale(flexnet.Layer):
        def forward(self, x, training=False):
            if x.ndim != 2:
                raise ValueError(f"{self._where()} expected a batch of rows")  # 0.1's name
            return 2 * x

    layer = Scale()
    flexnet.Sequential([layer])
    with pytest.raises(ValueError, match=r"Scale\(\) at layers.0 expected"):
        layer.forward(np.zeros(3))
    assert SoftmaxCrossEntropy()._where() == "SoftmaxCrossEntropy.forward"


def test_the_command_line_of_0_1_keeps_its_names():
    import flexnet.cli as cli

    for name in ("train", "evaluate", "predict", "gradcheck", "datasets", "compare", "info", "export", "sweep"):
        assert callable(getattr(cli, f"cmd_{name}"))
    assert cli.parse_arch("25,8,2") == [25, 8, 2] and cli.EXIT_USAGE == 2
    assert cli.build_parser().parse_args(["info", "m.npz"]).command == "info"
    out = subprocess.run([sys.executable, "-m", "flexnet.cli", "--version"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("flexnet ")


def test_fits_label_shortcut_still_checks_the_outputs():
    loss = SoftmaxCrossEntropy()
    with pytest.raises(TypeError, match="SoftmaxCrossEntropy.forward"):
        loss.forward(np.zeros((2, 3), dtype=np.int64), np.array([0, 1]), checked=True)
    z = np.zeros((2, 3), dtype=np.float32)
    assert loss.forward(z, np.array([0, 2]), checked=True) == loss.forward(z, np.array([0, 2]))


def test_default_initialiser_for_an_unknown_activation_name_is_refused():
    assert flexnet.init.default_for("leaky-relu") == "he_normal"
    assert flexnet.init.default_for("Tanh") == "glorot_normal"
    with pytest.raises(ValueError, match="unknown name 'nope'"):
        flexnet.init.default_for("nope")
