"""Each shipped model file (models/zoo) against a network freshly built from its card: the
same tensor names, shapes and dtypes, and the weights loaded bit for bit. A change to a model
class that renamed, added or reshaped a parameter or buffer would otherwise surface only as a
load failure, or, for the familiarity guard's tensors (which load_model lets a file lack), as
a silently unfitted guard."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from xray_atlas.models import build, load_model
from xray_atlas.models.catalogue import zoo_dir
from xray_atlas.models.files import read_card

ZOO = sorted(zoo_dir().glob("*.safetensors"))


@pytest.fixture(scope="module")
def train_zoo():
    """tools/train_zoo.py, which is a script and not part of the package."""
    spec = importlib.util.spec_from_file_location("train_zoo", Path(__file__).parents[2] / "tools" / "train_zoo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("train_zoo", module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_zoo_is_there():
    # the maps, elements, diffraction and radiograph models of tools/train_zoo.py
    assert {p.stem for p in ZOO} >= {
        "maps-default",
        "maps-fit",
        "maps-spatial",
        "elements-default",
        "diffraction-span2",
        "diffraction-span3",
        "diffraction-span4",
        "radiograph-default",
    }


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_shipped_weights_match_a_fresh_build(path):
    card = read_card(path)
    fresh, _ = build(card.architecture, **card.config)
    want = {k: (tuple(v.shape), v.dtype) for k, v in fresh.state_dict().items()}
    with safe_open(str(path), framework="pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}
    assert {k: (tuple(v.shape), v.dtype) for k, v in stored.items()} == want
    loaded, _ = load_model(path)
    got = loaded.state_dict()
    assert list(got) == list(fresh.state_dict())  # the same order too: files are written in it
    for k, v in stored.items():
        assert torch.equal(got[k], v), k


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_each_shipped_card_holds_the_recipe_that_made_it(path, train_zoo):
    # the card's recipe names this file and its settings are the ones the run recorded in
    # card.training (tools/train_zoo.py RECIPES, written by --write-recipe or by training)
    card = read_card(path)
    assert card.recipe["name"] == path.stem
    assert card.recipe["command"] == f"python tools/train_zoo.py {path.stem}"
    assert train_zoo.recipe_mismatches(card.recipe, card.training) == []
    table = train_zoo.RECIPES[path.stem].record(quick=False)["settings"]
    assert card.recipe["settings"] == json.loads(json.dumps(table))  # the card holds JSON: lists for tuples


def test_a_recipe_that_differs_from_the_run_is_caught(train_zoo):
    record = train_zoo.RECIPES["maps-fit"].record(quick=False)
    training = {**read_card(zoo_dir() / "maps-fit.safetensors").training, "epochs": 31}
    assert train_zoo.recipe_mismatches(record, training) == ["epochs: 30 against 31"]
