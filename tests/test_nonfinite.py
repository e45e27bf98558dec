"""Numbers that are not numbers: fit never returns, and nothing saves or predicts,
NaN or infinity.

Each batch's loss is checked before its update; an update that overflows is
caught by one pass over the weights after every epoch and before every
checkpoint. save and load refuse non-finite parameters and buffers, naming the
array; predict refuses an input row or an output row that is not finite.
"""

import numpy as np
import pytest

import flexnet
from flexnet import TrainingDiverged
from flexnet.cli import main
from flexnet.files.model_file import (
    ModelFileError,
    model_state,
    read_archive,
    write_archive,
)
from flexnet.training.callbacks import Callback

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on the way to inf


def _data(n=40, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype("float32")
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)


def _finite(net) -> bool:
    arrays = [p for _, p, _ in net.named_parameters()] + [b for _, b in net.named_buffers()]
    return all(np.isfinite(a).all() for a in arrays)


class Poison(Callback):
    """Puts NaN into a weight at the end of batch ``batch`` of epoch ``epoch``: what an
    overflowing update leaves, with no next batch whose loss would show it."""

    def __init__(self, epoch, batch, value=np.nan):
        self.at, self.value = (epoch, batch), value
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            self.net.layers[0].W[0, :3] = self.value


# -- fit ----------------------------------------------------------------------------------


def test_an_update_that_overflows_in_the_last_batch_is_caught_at_the_end_of_the_epoch():
    # The case: one batch per epoch, lr=1e300. Before, fit returned with every weight NaN.
    X, y = _data()
    net = flexnet.Network([4, 16, 3], seed=0)
    with pytest.raises(TrainingDiverged) as info:
        flexnet.fit(net, X, y, lr=1e300, epochs=1, batch_size=256)
    err = info.value
    assert (err.epoch, err.batch) == (1, 1) and np.isfinite(err.loss)
    text = str(err)
    assert "training diverged at epoch 1, batch 1 of 1" in text and "layers.0.W holds" in text
    assert "learning rate too high (lr=1e+300" in text and isinstance(err, ArithmeticError)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_fit_never_returns_with_a_non_finite_weight(value):
    X, y = _data()
    net = flexnet.Network([4, 8, 3], seed=0)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 2 of 2: .*layers\.0\.W holds"):
        net.fit(X, y, epochs=3, batch_size=20, callbacks=[Poison(2, 2, value)])
    assert not _finite(net)  # what fit found, and raised on instead of returning


def test_large_finite_weights_whose_sum_overflows_are_not_taken_for_infinity():
    # The epoch's check sums each array first; a sum that overflows is looked at value by value.
    X, y = _data()
    net = flexnet.Network([4, 8, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=40, callbacks=[Poison(1, 1, 3e38)])  # float32: 3 * 3e38 is inf
    assert net.layers[0].W[0, 0] == np.float32(3e38) and _finite(net)


def test_a_buffer_that_is_not_finite_is_caught_too():
    X, y = _data()
    net = flexnet.Network([4, 8, 3], batchnorm=True, seed=0)

    class PoisonBuffer(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.net.layers[1].running_var[0, 0] = np.inf

    with pytest.raises(TrainingDiverged, match=r"epoch 2, .*layers\.1\.running_var holds 1 infinite value"):
        net.fit(X, y, epochs=2, batch_size=20, callbacks=[PoisonBuffer()])


def test_the_last_good_checkpoint_is_kept_and_no_bad_one_is_written(tmp_path):
    X, y = _data()
    ckpt = tmp_path / "run.ckpt.npz"
    net = flexnet.Network([4, 8, 3], seed=0)
    with pytest.raises(TrainingDiverged, match="epoch 2"):
        net.fit(X, y, epochs=3, batch_size=20, checkpoint=ckpt, callbacks=[Poison(2, 2)])
    assert read_archive(ckpt)[0]["training"]["epoch"] == 1  # epoch 1's, whole and finite
    assert _finite(flexnet.load(ckpt))
    again = flexnet.Network([4, 8, 3], seed=0)
    again.fit(X, y, epochs=3, batch_size=20, checkpoint=tmp_path / "b.ckpt.npz", resume=ckpt)
    assert _finite(again)


def test_a_checkpoint_between_batches_is_never_written_with_non_finite_weights(tmp_path):
    X, y = _data()
    ckpt = tmp_path / "run.ckpt.npz"
    net = flexnet.Network([4, 8, 3], seed=0)
    with pytest.raises(TrainingDiverged, match="epoch 1, batch 1 of 2"):
        net.fit(X, y, epochs=1, batch_size=20, checkpoint=ckpt, checkpoint_every="1 batches",
                callbacks=[Poison(1, 1)])
    assert not ckpt.exists()


def test_a_finite_run_gives_the_same_weights_as_ever():
    """The check reads the weights and changes nothing: two runs agree bit for bit,
    and with the numbers a hand-computed SGD step gives."""
    X, y = _data()
    runs = []
    for _ in range(2):
        net = flexnet.Network([4, 8, 3], seed=0)
        net.fit(X, y, epochs=3, batch_size=16, seed=0)
        runs.append([p.copy() for p in net.parameters().values()])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    one = flexnet.Sequential([flexnet.Linear(4, 3, seed=0)])
    W0, b0 = one.layers[0].W.copy(), one.layers[0].b.copy()
    one.fit(X, y, epochs=1, batch_size=40, lr=0.1, shuffle=False)
    z = X @ W0 + b0
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(40), y] -= 1
    np.testing.assert_allclose(one.layers[0].W, W0 - 0.1 * X.T @ p / 40, rtol=1e-5, atol=1e-6)


# -- save and load -----------------------------------------------------------------------


@pytest.mark.parametrize("attr, value, message", [
    ("W", np.nan, "layers.0.W holds 1 NaN (of 32)"),
    ("b", np.inf, "layers.0.b holds 1 infinite value (of 8)"),
])
def test_save_refuses_non_finite_parameters_and_writes_nothing(tmp_path, attr, value, message):
    net = flexnet.Network([4, 8, 3], seed=0)
    path = tmp_path / "model.npz"
    net.save(path)
    before = path.read_bytes()
    getattr(net.layers[0], attr).flat[1] = value
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        net.save(path)
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="not finite"):
        net.save(tmp_path / "new.npz")
    assert not (tmp_path / "new.npz").exists()


def test_save_refuses_a_non_finite_buffer(tmp_path):
    net = flexnet.Network([4, 8, 3], batchnorm=True, seed=0)
    net.layers[1].running_mean[0, :2] = [np.nan, -np.inf]
    with pytest.raises(ValueError, match=r"layers\.1\.running_mean holds 1 NaN and 1 infinite value"):
        flexnet.save(net, tmp_path / "m.npz")


def _write_around_save(net, path):
    model, arrays = model_state(net)
    write_archive(path, {"format": "flexnet-model", "format_version": 1, "model": model}, arrays)
    return path


def test_load_refuses_non_finite_parameters_and_buffers(tmp_path, capsys):
    net = flexnet.Network([4, 8, 3], batchnorm=True, seed=0)
    net.layers[0].W[:] = np.nan
    net.layers[1].running_var[0, 0] = np.inf
    path = _write_around_save(net, tmp_path / "nan.npz")
    with pytest.raises(ModelFileError) as info:
        flexnet.load(path)
    assert info.value.problems == [
        ("the weights are not finite, as after a training run that diverged: layers.0.W holds 32 NaN "
        "(of 32); layers.1.running_var holds 1 infinite value (of 8)")]
    assert main(["info", str(path)]) == 2
    assert f"{path}: the weights are not finite" in capsys.readouterr().err


def test_resume_refuses_a_checkpoint_with_non_finite_weights(tmp_path):
    X, y = _data()
    ckpt = tmp_path / "run.ckpt.npz"
    flexnet.Network([4, 8, 3], seed=0).fit(X, y, epochs=1, checkpoint=ckpt)
    header, arrays = read_archive(ckpt)
    arrays["layers.2.b"][0, 1] = np.nan
    write_archive(ckpt, {k: v for k, v in header.items() if k != "arrays"}, arrays)
    with pytest.raises(ModelFileError, match=r"layers\.2\.b holds 1 NaN"):
        flexnet.Network([4, 8, 3], seed=0).fit(X, y, epochs=2, resume=ckpt)


# -- predict -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_names_an_input_row_that_is_not_finite(bad):
    net = flexnet.Network([4, 8, 3], seed=0)
    X = _data(5)[0]
    X[3, 2] = bad
    for method in (net.predict, net.predict_proba):
        with pytest.raises(ValueError, match="row 3 holds NaN or infinity"):
            method(X)


@pytest.mark.parametrize("loss, outputs", [("cross_entropy", 3), ("bce_with_logits", 1), ("mse", 2)])
def test_predict_refuses_outputs_that_overflow(loss, outputs):
    net = flexnet.Network([4, 8, outputs], loss=loss, seed=0)
    X = _data(5)[0]
    X[1] = 3e38  # finite in float32; times the weights, not
    for method in (net.predict, net.predict_proba) if loss != "mse" else (net.predict,):
        with pytest.raises(ValueError, match=r"the outputs of row 1 \(1 row\(s\) in all\) are NaN or infinite"):
            method(X)
    assert np.isfinite(net.predict_proba(X[2:]) if loss != "mse" else net.predict(X[2:])).all()


def test_flexnet_predict_never_prints_nan(tmp_path, capsys):
    net = flexnet.Network([4, 8, 3], seed=0)
    model = tmp_path / "m.npz"
    net.save(model)
    for name, row in (("nan", "1,nan,0,0"), ("inf", "1,inf,0,0"), ("huge", "3e38,3e38,3e38,3e38")):
        csv = tmp_path / f"{name}.csv"
        csv.write_text("a,b,c,d\n0.5,0.1,0.2,0.3\n" + row + "\n")
        assert main(["predict", str(model), str(csv)]) == 2, name
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert "row 1" in captured.err or "line 3" in captured.err  # the reader may find it first
    npz = tmp_path / "x.npz"
    X = np.full((3, 4), 0.5, "float32")
    X[2] = [np.nan, 0, 0, 0]
    np.savez(npz, X=X)
    assert main(["predict", str(model), str(npz)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "row 2" in captured.err


# -- flexnet train -----------------------------------------------------------------------


def test_flexnet_train_that_diverges_exits_2_and_saves_nothing(tmp_path, capsys):
    X, y = _data(60)
    csv = tmp_path / "data.csv"
    csv.write_text("a,b,c,d,label\n" + "".join(f"{','.join(map(str, row))},{c}\n" for row, c in zip(X, y)))
    out = tmp_path / "model.npz"
    code = main(["train", "--data", str(csv), "--arch", "4,16,3", "--lr", "1e300", "--epochs", "2",
                 "--batch-size", "256", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "flexnet train: error: training diverged at epoch 1" in err and "Traceback" not in err
    assert "The model was not saved." in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]  # no model, checkpoint or figure
