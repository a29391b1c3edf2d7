"""One parameter declaration and one parser (xray_atlas.params): the data sources, the
clustering methods and the models' options, read the same on the command line and in napari."""

import inspect
import re

import numpy as np
import pytest

from xray_atlas.cluster import METHODS, PARAMS, parameter_table
from xray_atlas.cluster.features import FEATURE_PARAMS, iter_features
from xray_atlas.errors import XrayAtlasError
from xray_atlas.params import Param, check_values, param_for, table_defaults


def test_each_kind_reads_text_and_values():
    assert Param(3, "n", 1, 10).check("n", "4") == 4 and Param(3, "n", 1, 10).check("n", "4.0") == 4
    assert Param(0.5, "x").check("x", "2") == 2.0  # open bounds: no range check
    assert Param(None, "x").check("x", "none") is None and Param(None, "x").check("x", "1.5") == 1.5
    assert Param(True, "b", kind="bool").check("b", "No") is False
    assert Param(True, "b", kind="bool").check("b", " yes ") is True
    assert Param("a", "c", choices=("a", "b"), kind="choice").check("c", "b") == "b"
    assert Param("auto", "s", kind="string").check("s", " 3 ") == "3"
    assert Param((), "t", kind="text").check("t", "Fe-K, Pb-L,,") == ("Fe-K", "Pb-L")
    assert Param((0.5, 0.02), "lr", kind="numbers").check("lr", "0.4,0.01") == (0.4, 0.01)
    assert Param((None, 0.3), "s", kind="numbers").check("s", "None, 0.2") == (None, 0.2)
    assert Param((32, 64), "w", kind="numbers").check("w", "16, 8") == (16, 8)
    # a value already typed passes through
    assert Param((None, 0.3), "s", kind="numbers").check("s", (None, 0.3)) == (None, 0.3)


@pytest.mark.parametrize(
    ("param", "text", "message"),
    [
        (Param(3, "n", 1, 10), "x", "n='x' is not a number"),
        (Param(3, "n", 1, 10), "2.5", "n='2.5' must be a whole number"),
        (Param(3, "n", 1, 10), "11", "n='11' is out of range [1, 10]"),
        (Param(3, "n", low=1), "0", "n='0' is out of range [1, inf]"),
        (Param(0.5, "n"), "nan", "n='nan' is not a finite number"),
        (Param(0.5, "n", low=0), "inf", "n='inf' is out of range [0, inf]"),
        (Param(0.5, "n"), "none", "n='none' is not a number"),  # only a default of None is optional
        (Param(True, "n", kind="bool"), "maybe", "n='maybe' must be true or false"),
        (Param("a", "n", choices=("a", "b"), kind="choice"), "c", "n='c'; choose one of a, b"),
        (Param((1, 2), "n", kind="numbers"), "1,x", "n='1,x': give comma-separated whole numbers (or none)"),
    ],
)
def test_errors_name_the_parameter(param, text, message):
    with pytest.raises(XrayAtlasError, match=f"^{re.escape(message)}$"):
        param.check("n", text)


def test_check_values_names_the_flag_and_the_known_names():
    table = {"rows": Param(8, "rows"), "cols": Param(8, "cols")}
    assert check_values(table, {"rows": "3"}, what="som") == {"rows": 3}
    with pytest.raises(XrayAtlasError, match=r"^--param colour: unknown for som; known: cols, rows$"):
        check_values(table, {"colour": "1"}, what="som", flag="--param")
    with pytest.raises(XrayAtlasError, match=r"^--param rows='x' is not a number$"):
        check_values(table, {"rows": "x"}, what="som", flag="--param")
    with pytest.raises(XrayAtlasError, match=r"known: none$"):
        check_values({}, {"a": "1"}, what="model 'x'")


def test_declared_from_a_default():
    assert param_for(True).kind == "bool" and param_for(3).kind == "number" and param_for(None).kind == "number"
    assert param_for((256, 64)).kind == "numbers" and param_for((2.5, 5.5)).kind == "numbers"
    assert param_for(("Fe-K", "Pb-L")).kind == "text" and param_for("relu").kind == "string"


def _keyword_defaults(func):
    sig = inspect.signature(func)
    return {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY and k != "seed"}


@pytest.mark.parametrize("method", list(METHODS))
def test_declared_cluster_parameters_are_the_functions_defaults(method):
    # the declaration replaces reading the signatures: it must not drift from them
    assert table_defaults(PARAMS[method]) == _keyword_defaults(METHODS[method])
    features = {k: v for k, v in _keyword_defaults(iter_features).items() if k in FEATURE_PARAMS}
    assert table_defaults(FEATURE_PARAMS) == features
    assert list(parameter_table(method)) == [*FEATURE_PARAMS, *PARAMS[method]]


@pytest.mark.parametrize("method", list(METHODS))
def test_every_default_survives_its_own_text(method):
    # what a form shows (Param.text) reads back to the default (Param.check)
    for name, p in parameter_table(method).items():
        assert p.check(name, p.text()) == p.default, name


def test_model_options_survive_their_own_text():
    pytest.importorskip("torch")
    from xray_atlas.models.registry import available

    for model, entry in available().items():
        for name, p in entry.params.items():
            value = p.check(name, p.text())
            want = entry.defaults[name]
            if isinstance(want, (list, tuple)):
                assert tuple(value) == tuple(want), (model, name)
            elif isinstance(want, float):
                assert np.isclose(value, want), (model, name)
            else:
                assert value == want, (model, name)


def test_the_training_sources_use_the_same_param():
    from xray_atlas.training import sources

    assert sources.Param is Param
    assert isinstance(sources.SyntheticSpectra.PARAMS["tube_kv"], Param)
