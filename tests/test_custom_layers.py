"""A layer of your own, written the way a learner writes it: the contract in
flexnet.Layer's docstring and docs/layers.md, gradcheck, fit, save and load."""

import gc
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import flexnet
from flexnet import Layer, Linear, Sequential
from flexnet.files import model_file


@pytest.fixture(autouse=True)
def _forget_classes():
    """Classes defined in a test are flexnet.Layer subclasses until collected: collect
    them, so another test's 'unknown layer class' stays unknown; and empty the registry."""
    saved = dict(model_file.REGISTERED)
    yield
    model_file.REGISTERED.clear()
    model_file.REGISTERED.update(saved)
    gc.collect()


def swish_class():
    """Swish, ``x * sigmoid(x)``, as docs/layers.md writes it: forward caches, backward(self, grad)."""

    class Swish(flexnet.Layer):
        def forward(self, x, training=False):
            self.x = x
            self.s = 1 / (1 + np.exp(-x))
            return x * self.s

        def backward(self, grad):
            s = self.s
            return grad * (s + self.x * s * (1 - s))

    return Swish


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5)


def test_swish_from_the_guide_passes_gradcheck_trains_saves_and_loads(tmp_path):
    Swish = swish_class()
    x, y = _data()
    assert max(flexnet.gradcheck(Swish(), x[:8]).values()) < 1e-6  # the layer alone
    net = Sequential([Linear(4, 16, seed=0), Swish(), Linear(16, 3, seed=1)])
    assert max(flexnet.gradcheck(net, x[:8], y[:8]).values()) < 1e-6  # inside a network
    history = net.fit(x, y, epochs=30, batch_size=16, lr=0.1, seed=0, progress=False)
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    net.save(tmp_path / "swish.npz")
    loaded = flexnet.load(tmp_path / "swish.npz", custom_layers={"Swish": Swish})
    assert type(loaded.layers[1]) is Swish
    np.testing.assert_array_equal(loaded.predict_proba(x), net.predict_proba(x))
    assert loaded.trace(x, y)[1]["layer"] == "1 Swish"


def test_backward_without_input_grad_gets_no_keyword_and_its_input_gradient_is_used():
    calls = []

    class Double(Layer):
        def forward(self, x, training=False):
            return 2 * x

        def backward(self, grad):
            calls.append(grad.shape)
            return 2 * grad

    x, y = _data(8)
    net = Sequential([Double(), Linear(4, 3, seed=0)])
    net.forward(x, training=True)
    net.loss_fn.forward(net.forward(x, training=True), y)
    assert net.backward() is not None  # the first layer cannot skip dL/dx: it is returned
    ref = Sequential([Linear(4, 3, seed=0)])
    ref.loss_fn.forward(ref.forward(2 * x, training=True), y)
    ref.backward()
    np.testing.assert_array_equal(net.layers[1].dW, ref.layers[0].dW)
    dx = net.backward(input_grad=True)
    np.testing.assert_allclose(dx, 2 * ref.backward(input_grad=True), rtol=1e-6)
    assert calls and all(shape == (8, 4) for shape in calls)


def test_keyword_only_and_kwargs_backwards_still_get_input_grad():
    seen = []

    class KeywordOnly(Layer):
        def forward(self, x, training=False):
            return x

        def backward(self, grad, *, input_grad=True):
            seen.append(input_grad)
            return grad if input_grad else None

    x, y = _data(8)
    net = Sequential([KeywordOnly(), Linear(4, 3, seed=0), KeywordOnly()])
    net.loss_fn.forward(net.forward(x, training=True), y)
    assert net.backward() is None
    assert seen == [True, False]


@pytest.mark.parametrize("signature", ["required", "keyword_required", "default_false"])
def test_every_layer_above_the_first_is_asked_for_its_input_gradient(signature):
    # As in 0.1: input_grad=True is passed to every layer that takes the argument, so a
    # backward that has no default for it (or another default) still works in any place.
    namespace = {}
    params = {"required": "grad, input_grad", "keyword_required": "grad, *, input_grad",
              "default_false": "grad, input_grad=False"}[signature]
    exec(f"def backward(self, {params}):\n    return grad if input_grad else None", namespace)
    Passing = type("Passing", (Layer,), {"forward": lambda self, x, training=False: x,
                                         "backward": namespace["backward"]})
    x, y = _data(8)
    net = Sequential([Passing(), Linear(4, 3, seed=0), Passing(), Passing()])
    ref = Sequential([Linear(4, 3, seed=0)])
    for n in (net, ref):
        n.loss_fn.forward(n.forward(x, training=True), y)
    assert net.backward() is None and ref.backward() is None
    np.testing.assert_array_equal(net.layers[1].dW, ref.layers[0].dW)


def test_a_layer_without_config_that_needs_arguments_is_refused_when_saved(tmp_path):
    class Scaled(Layer):
        def __init__(self, beta):
            self.beta = beta

        def forward(self, x, training=False):
            return self.beta * x

        def backward(self, grad):
            return self.beta * grad

    net = Sequential([Linear(4, 3, seed=0), Scaled(2.0)])
    path = tmp_path / "m.npz"
    with pytest.raises(TypeError) as err:
        net.save(path)
    text = str(err.value)
    assert "layers.1" in text and "beta" in text and "config()" in text
    assert "def config(self): return {'beta': self.beta}" in text and "nothing was written" in text
    assert not path.exists()
    with pytest.raises(TypeError, match="beta"):  # a checkpoint would not resume either
        model_file.model_state(net)

    Scaled.config = lambda self: {"beta": self.beta}  # what the message says to add
    net.save(path)
    loaded = flexnet.load(path, custom_layers={"Scaled": Scaled})
    assert loaded.layers[1].beta == 2.0
    x, _ = _data(5)
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))


def test_a_changed_default_that_config_leaves_out_is_refused(tmp_path):
    """Swish(beta=2.0) without config() would load as Swish(beta=1.0): a wrong answer."""

    class Swish(Layer):
        def __init__(self, beta=1.0):
            self.beta = beta

        def forward(self, x, training=False):
            return x

        def backward(self, grad):
            return grad

    with pytest.raises(TypeError, match=r"beta is 2.0 here, and would load as the default 1.0"):
        Sequential([Linear(4, 3), Swish(2.0)]).save(tmp_path / "a.npz")
    Sequential([Linear(4, 3), Swish()]).save(tmp_path / "b.npz")  # the default: rebuilt as it was
    assert flexnet.load(tmp_path / "b.npz", custom_layers={"Swish": Swish}).layers[1].beta == 1.0


def test_a_file_saved_without_the_arguments_says_what_to_do(tmp_path):
    """A file written before save checked configs: load names the missing arguments."""

    class Gate(Layer):
        def __init__(self, width):
            self.width = width

        def forward(self, x, training=False):
            return x

        def backward(self, grad):
            return grad

    net = Sequential([Linear(4, 3, seed=0)])
    net.save(tmp_path / "m.npz")
    header, arrays = model_file.read_archive(tmp_path / "m.npz")
    header.pop("arrays")
    header["model"]["layers"].append({"class": "Gate", "module": "mine", "config": {}})
    model_file.write_archive(tmp_path / "old.npz", header, arrays)
    with pytest.raises(flexnet.ModelFileError) as err:
        flexnet.load(tmp_path / "old.npz", custom_layers={"Gate": Gate})
    assert err.value.problems == [
        "layers.1: cannot build Gate(**{}): its constructor needs width, which the file does not record "
        "(the layer was saved without a config() returning them): define Gate.config() and save the model again"]


def test_unknown_layer_names_the_layer_and_how_to_pass_it(tmp_path):
    net = Sequential([Linear(4, 3, seed=0)])
    net.save(tmp_path / "m.npz")
    header, arrays = model_file.read_archive(tmp_path / "m.npz")
    header.pop("arrays")
    header["model"]["layers"].append({"class": "NeverDefinedAnywhere", "module": "mylib", "config": {}})
    model_file.write_archive(tmp_path / "u.npz", header, arrays)
    with pytest.raises(flexnet.ModelFileError) as err:
        flexnet.load(tmp_path / "u.npz")
    assert err.value.problems == [
        "layers.1: unknown layer class 'NeverDefinedAnywhere' (defined in mylib; import that module before "
        "loading, or pass the class: load(path, custom_layers={'NeverDefinedAnywhere': NeverDefinedAnywhere}), "
        "or register it with flexnet.register_layer)"]


def test_custom_layers_resolve_names_that_are_ambiguous_or_renamed(tmp_path):
    def make(factor):
        class Scale(Layer):  # two classes of one name: the file alone cannot say which
            def forward(self, x, training=False):
                return factor * x

            def backward(self, grad):
                return factor * grad

        return Scale

    Two, Three = make(2.0), make(3.0)
    x, _ = _data(4)
    net = Sequential([Linear(4, 3, seed=0), Three()])
    net.save(tmp_path / "m.npz")
    with pytest.raises(flexnet.ModelFileError, match="several layer classes named 'Scale'.*custom_layers"):
        flexnet.load(tmp_path / "m.npz")
    loaded = flexnet.load(tmp_path / "m.npz", custom_layers={"Scale": Three})
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))
    assert type(flexnet.load(tmp_path / "m.npz", custom_layers={"Scale": Two}).layers[1]) is Two
    assert Two is not Three  # (kept alive until here)


def test_register_layer_as_a_decorator(tmp_path):
    Swish = swish_class()
    Other = swish_class()  # a second class of the same name: only the registry decides
    assert flexnet.register_layer(Swish) is Swish
    net = Sequential([Linear(4, 3, seed=0), Swish()])
    net.save(tmp_path / "m.npz")
    assert type(flexnet.load(tmp_path / "m.npz").layers[1]) is Swish
    assert type(flexnet.load(tmp_path / "m.npz", custom_layers={"Swish": Other}).layers[1]) is Other  # explicit wins
    assert Other is not Swish

    @flexnet.register_layer
    class Swish(Layer):  # redefined, as in a notebook: the newer class replaces the older
        def forward(self, x, training=False):
            return x

        def backward(self, grad):
            return grad

    assert model_file.REGISTERED["Swish"] is Swish


@pytest.mark.parametrize("bad, match", [
    (lambda S: [S], "expected a dict of class name -> layer class"),
    (lambda S: {"Swish": S()}, r"custom_layers\['Swish'\].*got the instance"),
    (lambda S: {"Swish": dict}, r"custom_layers\['Swish'\].*subclasses flexnet.Layer"),
    (lambda S: {"Swish": "mymodule.Swish"}, "subclasses flexnet.Layer"),
    (lambda S: {1: S}, "keys are the class names"),
])
def test_bad_custom_layers_are_refused(tmp_path, bad, match):
    Swish = swish_class()
    Sequential([Linear(4, 3, seed=0), Swish()]).save(tmp_path / "m.npz")
    with pytest.raises(TypeError, match=match):
        flexnet.load(tmp_path / "m.npz", custom_layers=bad(Swish))


def test_register_layer_refuses_what_is_not_a_layer_class():
    with pytest.raises(TypeError, match="register_layer"):
        flexnet.register_layer(lambda: None)
    with pytest.raises(TypeError, match="the instance"):
        flexnet.register_layer(Linear(2, 2))


def test_a_class_given_for_a_layer_must_fit_the_place(tmp_path):
    Sequential([Linear(4, 3, seed=0)]).save(tmp_path / "m.npz")
    with pytest.raises(flexnet.ModelFileError, match="not a flexnet Loss"):
        flexnet.load(tmp_path / "m.npz", custom_layers={"SoftmaxCrossEntropy": swish_class()})


def test_loading_with_custom_layers_imports_nothing_and_unpickles_nothing(tmp_path):
    """In a fresh process: the file names a module, which is never imported; the class
    passed in is what builds the layer."""
    Swish = swish_class()
    x, _ = _data(6)
    net = Sequential([Linear(4, 3, seed=0), Swish()])
    net.save(tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", net.forward(x))
    header, arrays = model_file.read_archive(tmp_path / "m.npz")
    header.pop("arrays")
    header["model"]["layers"][1]["module"] = "evil_module_that_must_not_be_imported"
    model_file.write_archive(tmp_path / "m.npz", header, arrays)
    (tmp_path / "evil_module_that_must_not_be_imported.py").write_text("raise SystemExit(99)\n")
    script = textwrap.dedent("""
        import pickle, sys
        import numpy as np, flexnet
        pickle.loads = pickle.load = None  # any unpickling would fail loudly
        class Swish(flexnet.Layer):
            def forward(self, x, training=False):
                self.x = x
                self.s = 1 / (1 + np.exp(-x))
                return x * self.s
            def backward(self, grad):
                s = self.s
                return grad * (s + self.x * s * (1 - s))
        net = flexnet.load("m.npz", custom_layers={"Swish": Swish})
        assert "evil_module_that_must_not_be_imported" not in sys.modules
        np.testing.assert_array_equal(net.forward(np.load("x.npy")), np.load("want.npy"))
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_the_contract_is_documented_in_one_place():
    doc = flexnet.Layer.__doc__
    for words in ("forward(self, x, training=False)", "backward(self, grad)", "input_grad", "params",
                  "config(self)", "gradcheck", "custom_layers", "register_layer", "docs/layers.md"):
        assert words in doc, words


def test_a_class_redefined_in_its_module_loads_as_the_current_one(tmp_path):
    """A notebook cell run twice defines Swish twice in __main__: the name now holds the newer."""
    script = textwrap.dedent("""
        import numpy as np, flexnet
        class Swish(flexnet.Layer):
            def forward(self, x, training=False):
                return x
            def backward(self, grad):
                return grad
        old = flexnet.Sequential([flexnet.Linear(2, 2, seed=0), Swish()])
        class Swish(flexnet.Layer):
            def forward(self, x, training=False):
                return 2 * x
            def backward(self, grad):
                return 2 * grad
        flexnet.Sequential([flexnet.Linear(2, 2, seed=0), Swish()]).save("m.npz")
        assert type(flexnet.load("m.npz").layers[1]) is Swish
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_the_examples_of_docs_layers_md_run(tmp_path):
    """Every python block of docs/layers.md, in order, as a reader pastes them."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "layers.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    script = "\n".join(blocks) + textwrap.dedent("""
        assert np.array_equal(again.predict_proba(X), net.predict_proba(X))
        assert history["loss"][-1] < history["loss"][0] / 5
        err = flexnet.gradcheck(Scale(5), x)
        assert max(err.values()) < 1e-6, err
        assert max(flexnet.gradcheck(ScaledSwish(2.0), x).values()) < 1e-6
        s = flexnet.Sequential([flexnet.Linear(5, 3, seed=0), ScaledSwish(2.0), Scale(3)])
        s.save("scaled.npz")
        back = flexnet.load("scaled.npz", custom_layers={"ScaledSwish": ScaledSwish, "Scale": Scale})
        assert back.layers[1].beta == 2.0 and np.array_equal(back.forward(x), s.forward(x))
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout[-2000:] + r.stderr[-3000:]


def _layer_with_config(config_fn):
    """A layer of one argument ``a`` whose config() is ``config_fn``."""
    class Cfg(Layer):
        def __init__(self, a=1):
            super().__init__()
            self.a = a

        config = config_fn

        def forward(self, x, training=False):
            return x

        def backward(self, grad):
            return grad
    return Cfg


@pytest.mark.parametrize("config_fn, says", [
    (lambda self: 1 / 0, "config() failed: ZeroDivisionError"),
    (lambda self: None, "must return a dict"),
    (lambda self: [1], "must return a dict"),
    (lambda self: {1: 2}, "must return a dict"),
    (lambda self: {"a": self.a, "zz": 3}, "'zz' is no argument of the constructor"),
    (lambda self: {"a": np.array([1, 2])}, "JSON-friendly"),
])
def test_save_refuses_a_config_that_would_not_load_back(tmp_path, config_fn, says):
    net = Sequential([Linear(4, 3), _layer_with_config(config_fn)(a=5)])
    with pytest.raises(TypeError, match="save: Cfg.* at layers.1") as err:
        flexnet.save(net, tmp_path / "m.npz")
    assert says in str(err.value)
    assert not (tmp_path / "m.npz").exists()  # nothing written that load would refuse


@pytest.mark.parametrize("returns", [lambda g: None, lambda g: (g, None), lambda g: g.tolist()])
def test_a_backward_that_returns_no_array_is_named(returns):
    class Bad(Layer):
        def forward(self, x, training=False):
            return x

        def backward(self, grad):
            return returns(grad)

    net = Sequential([Linear(4, 3), Bad(), Linear(3, 3)])
    x, y = np.ones((4, 4)), np.array([0, 1, 2, 0])
    for run in (lambda: net.fit(x, y, epochs=1), lambda: net.trace(x, y)):
        with pytest.raises(TypeError, match=r"Bad\(\) at layers.1.backward must return dL/d\(input\)"):
            run()


def test_register_layer_refuses_the_name_of_a_flexnet_class():
    class Linear(flexnet.Linear):  # noqa: F811 - the name is the point
        pass

    with pytest.raises(ValueError, match="'Linear' is the name of flexnet's flexnet.nn.layers.Linear"):
        flexnet.register_layer(Linear)
    assert "Linear" not in model_file.REGISTERED
    assert flexnet.register_layer(flexnet.Linear) is flexnet.Linear  # flexnet's own: harmless


def test_a_layer_without_forward_or_backward_is_named():
    class NoBackward(Layer):
        def forward(self, x, training=False):
            return x

    class NoForward(Layer):
        def backward(self, grad):
            return grad

    x, y = np.ones((4, 4)), np.array([0, 1, 2, 0])
    with pytest.raises(NotImplementedError, match=r"NoBackward\(\) at layers.1 has no backward"):
        Sequential([Linear(4, 3), NoBackward()]).fit(x, y, epochs=1)
    with pytest.raises(NotImplementedError, match=r"NoForward\(\) at layers.1 has no forward"):
        Sequential([Linear(4, 3), NoForward()]).trace(x, y)


def test_params_may_be_a_list():
    class Scale(Layer):
        params = ["a"]  # as a learner writes it

        def __init__(self):
            super().__init__()
            self.a = np.ones(3)

        def forward(self, x, training=False):
            self.x = x
            return x * self.a

        def backward(self, grad):
            self.da = (grad * self.x).sum(axis=0)
            return grad * self.a

    net = Sequential([Linear(4, 3), Scale()], seed=0)
    net.fit(np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3, epochs=2)
    assert not np.array_equal(net.layers[1].a, np.ones(3))  # it trained
