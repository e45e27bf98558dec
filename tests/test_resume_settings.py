"""Resuming with fit(resume=...): the last checkpoint of any finished run resumes, whatever
learning rate its schedule reached, and a setting given that differs from the run's is
refused by name, never silently replaced by the checkpoint's."""

import numpy as np
import pytest

import flexnet
from flexnet.files.archive import read_archive
from flexnet.files.model_file import ModelFileError
from flexnet.optim import SGD, Adagrad, Adam, AdamW, RMSprop
from flexnet.optim.schedules import (
    CosineWarmup,
    ExponentialLR,
    LRScheduler,
    ReduceLROnPlateau,
    StepLR,
)
from flexnet.training.callbacks import Callback


def data(n=60):
    rng = np.random.default_rng(3)
    y = np.arange(n) % 3
    X = (rng.normal(0, 3, size=(3, 5))[y] + rng.normal(size=(n, 5))).astype("float32")
    return X, y


def state(net, opt):
    """Parameters, buffers and every array of the optimizer's state."""
    arrays = {**{k: v.copy() for k, v in net.parameters().items()},
              **{k: np.array(v) for k, v in net.named_buffers()}}
    for name, st in opt.state.items():
        arrays.update({f"opt/{name}/{k}": np.array(v) for k, v in st.items()})
    return arrays


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


OPTIMIZERS = {
    "sgd": lambda: SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda: Adam(lr=0.01, amsgrad=True),
    "adamw": lambda: AdamW(lr=0.01),
    "rmsprop": lambda: RMSprop(lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda: Adagrad(lr=0.05, lr_decay=0.01),
}
# Each reaches exactly 0 by the end of 3 epochs: annealed to 0, or a decay that underflows.
SCHEDULES = {
    "cosine": lambda opt: CosineWarmup(opt, 3),
    "cosine-warmup": lambda opt: CosineWarmup(opt, 3, warmup_epochs=1),
    "exponential-underflow": lambda opt: ExponentialLR(opt, gamma=1e-200),
    "step-underflow": lambda opt: StepLR(opt, step_size=1, gamma=1e-300),
    # the first epoch is the best (max mode, a threshold no later epoch beats): two drops
    "plateau-underflow": lambda opt: ReduceLROnPlateau(opt, mode="max", factor=1e-200, patience=0,
                                                       threshold=1e10, eps=0.0),
}


def run(optimizer, schedule, epochs=3, **kw):
    X, y = data()
    net = flexnet.Network([5, 8, 3], dropout=0.2, batchnorm=True, seed=4)
    opt = OPTIMIZERS[optimizer]()
    flexnet.fit(net, X, y, epochs=epochs, batch_size=16, optimizer=opt, scheduler=SCHEDULES[schedule](opt),
                validation_split=0.2, seed=5, **kw)
    return net, opt


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_the_last_checkpoint_of_a_finished_run_resumes(tmp_path, optimizer, schedule):
    ckpt = tmp_path / "run.ckpt"
    net, opt = run(optimizer, schedule, checkpoint=ckpt)
    header, _ = read_archive(ckpt)
    assert header["training"]["optimizer"]["config"]["lr"] == 0.0  # the case that used to be refused
    assert opt.lr == 0.0
    resumed, resumed_opt = run(optimizer, schedule, checkpoint=ckpt, resume=ckpt)
    assert resumed_opt.lr == 0.0
    assert_same(state(resumed, resumed_opt), state(net, opt))
    again, again_opt = run(optimizer, schedule, checkpoint=ckpt, resume=ckpt)  # and once more
    assert_same(state(again, again_opt), state(net, opt))


class Pulse(LRScheduler):
    """lr 0 in every second epoch, base_lr in the others: a resume in an epoch at lr 0
    must go on exactly into the epochs that train again."""

    def _configure(self):
        pass

    def _compute_lr(self):
        return 0.0 if self.last_epoch % 2 else self.base_lr


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_a_resume_in_an_epoch_at_lr_0_is_bit_exact(tmp_path, optimizer):
    X, y = data()

    def fit(**kw):
        net = flexnet.Network([5, 8, 3], dropout=0.2, batchnorm=True, seed=4)
        opt = OPTIMIZERS[optimizer]()
        flexnet.fit(net, X, y, epochs=4, batch_size=8, optimizer=opt, scheduler=Pulse(opt),
                    validation_split=0.2, seed=5, **kw)
        return state(net, opt)

    reference = fit()

    class Stop(Callback):
        def on_batch_end(self, batch, logs=None):
            if self.loop.epoch == 1 and batch == 3:  # the second epoch: lr 0
                assert self.loop.optimizer.lr == 0.0
                self.loop.interrupt_requested = True  # what Ctrl-C sets

    ckpt = tmp_path / "pulse.ckpt"
    with pytest.raises(flexnet.TrainingInterrupted):
        fit(checkpoint=ckpt, callbacks=[Stop()])
    assert_same(fit(checkpoint=ckpt, resume=ckpt, callbacks=[Callback()]), reference)


# -- settings given on resume ------------------------------------------------------------


def fit_plain(ckpt, *, resume=None, epochs=2, optimizer=None, scheduler=None, seed=5, split=0.2, **kw):
    X, y = data()
    net = flexnet.Network([5, 8, 3], seed=4)
    opt = optimizer or Adam(lr=0.01)
    flexnet.fit(net, X, y, epochs=epochs, batch_size=16, optimizer=opt, scheduler=scheduler,
                validation_split=split, seed=seed, checkpoint=ckpt, resume=resume, **kw)
    return net


@pytest.mark.parametrize("first, then, words", [
    ({"optimizer": Adam(lr=0.01)}, {"optimizer": Adam(lr=0.02)}, "learning rate"),
    ({"optimizer": Adam(lr=0.01)}, {"optimizer": Adam(lr=0.01, betas=(0.8, 0.999))}, "betas"),
    ({"optimizer": Adam(lr=0.01)}, {"optimizer": Adam(lr=0.01, weight_decay=1e-3)}, "weight_decay"),
    ({"optimizer": SGD(lr=0.1, momentum=0.9)}, {"optimizer": SGD(lr=0.1, momentum=0.5)}, "momentum"),
    ({"optimizer": SGD(lr=0.1)}, {"optimizer": SGD(lr=0.1, l1=1e-4)}, "l1"),
    ({"seed": 5}, {"seed": 6}, "seed"),
    ({"split": 0.2}, {"split": 0.3}, "validation_split"),
])
def test_a_setting_that_differs_from_the_run_is_refused_by_name(tmp_path, first, then, words):
    ckpt = tmp_path / "a.ckpt"
    fit_plain(ckpt, **first)
    with pytest.raises(ModelFileError, match=words):
        fit_plain(ckpt, resume=ckpt, epochs=3, **then)


def test_a_schedule_that_differs_from_the_run_is_refused_by_name(tmp_path):
    ckpt = tmp_path / "s.ckpt"
    opt = Adam(lr=0.01)
    fit_plain(ckpt, optimizer=opt, scheduler=CosineWarmup(opt, 4, warmup_epochs=1))
    for lr, kwargs, words in [(0.01, {"total_epochs": 5, "warmup_epochs": 1}, "CosineWarmup"),
                              (0.01, {"total_epochs": 4, "min_lr": 1e-4}, "CosineWarmup"),
                              (0.02, {"total_epochs": 4, "warmup_epochs": 1}, "learning rate")]:
        opt = Adam(lr=lr)
        with pytest.raises(ModelFileError, match=words) as info:
            fit_plain(ckpt, resume=ckpt, epochs=4, optimizer=opt, scheduler=CosineWarmup(opt, **kwargs))
        assert "then" in str(info.value) and "now" in str(info.value)
    # the same settings, and a later total of epochs, resume
    opt = Adam(lr=0.01)
    fit_plain(ckpt, resume=ckpt, epochs=4, optimizer=opt, scheduler=CosineWarmup(opt, 4, warmup_epochs=1))


def test_every_difference_is_listed_at_once(tmp_path):
    ckpt = tmp_path / "b.ckpt"
    fit_plain(ckpt)
    with pytest.raises(ModelFileError) as info:
        fit_plain(ckpt, resume=ckpt, optimizer=Adam(lr=0.5, eps=1e-6), seed=1)
    text = str(info.value)
    assert "learning rate" in text and "eps" in text and "seed" in text


def test_what_may_change_on_resume(tmp_path):
    """More epochs, another checkpoint path and frequency: applied, and the run goes on
    as one that asked for them from the start."""
    ckpt = tmp_path / "c.ckpt"
    reference = fit_plain(tmp_path / "ref.ckpt", epochs=4)
    fit_plain(ckpt, epochs=2)
    other = tmp_path / "other.ckpt"
    net = fit_plain(other, resume=ckpt, epochs=4, checkpoint_every="3 batches", progress=False)
    assert_same(net.parameters(), reference.parameters())
    assert read_archive(other)[0]["training"]["epoch"] == 4


def test_a_callback_that_changes_the_lr_does_not_make_the_resume_refused(tmp_path):
    """The lr compared is the one the run started from, not the one it had reached."""
    X, y = data()

    class Halve(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.loop.optimizer.lr /= 2

    def fit(epochs, **kw):
        net = flexnet.Network([5, 8, 3], seed=4)
        flexnet.fit(net, X, y, epochs=epochs, batch_size=16, optimizer=Adam(lr=0.01), seed=5,
                    callbacks=[Halve()], **kw)
        return net

    reference = fit(4)
    ckpt = tmp_path / "h.ckpt"
    fit(2, checkpoint=ckpt)
    assert read_archive(ckpt)[0]["training"]["optimizer"]["config"]["lr"] == 0.0025
    assert_same(fit(4, checkpoint=ckpt, resume=ckpt).parameters(), reference.parameters())


@pytest.mark.parametrize("then", [{"rule": "sklearn"}, {"monitor": "val_accuracy"}, {"min_delta": 0.1},
                                  {"restore_best_weights": False}])
def test_early_stopping_with_other_settings_is_refused_by_name(tmp_path, then):
    """The saved best value and count mean what the run's settings made them mean."""
    ckpt = tmp_path / "e.ckpt"
    fit_plain(ckpt, callbacks=[flexnet.EarlyStopping(patience=5)])
    with pytest.raises(ModelFileError, match=r"the settings of EarlyStopping differ .* then, .* now"):
        fit_plain(ckpt, resume=ckpt, epochs=3, callbacks=[flexnet.EarlyStopping(patience=5, **then)])
    # patience only decides when to stop: it may change
    fit_plain(ckpt, resume=ckpt, epochs=3, callbacks=[flexnet.EarlyStopping(patience=9)])


def test_an_early_stopping_state_written_without_its_settings_still_resumes(tmp_path):
    ckpt = tmp_path / "old.ckpt"
    stop = flexnet.EarlyStopping(patience=5)
    stop.state_dict = lambda original=stop.state_dict: {k: v for k, v in original().items() if k != "config"}
    fit_plain(ckpt, callbacks=[stop])
    fit_plain(ckpt, resume=ckpt, epochs=3, callbacks=[flexnet.EarlyStopping(patience=5, rule="sklearn")])


def test_early_stopping_given_a_numpy_flag_resumes(tmp_path):
    ckpt = tmp_path / "np.ckpt"
    fit_plain(ckpt, callbacks=[flexnet.EarlyStopping(patience=5, restore_best_weights=np.True_)])
    fit_plain(ckpt, resume=ckpt, epochs=3, callbacks=[flexnet.EarlyStopping(patience=5)])
