"""Each shipped model file (models/zoo) against a network freshly built from its card: the
same tensor names, shapes and dtypes, and the weights loaded bit for bit. A change to a model
class that renamed, added or reshaped a parameter or buffer would otherwise surface only as a
load failure, or, for the familiarity guard's tensors (which load_model lets a file lack), as
a silently unfitted guard."""

import pytest
import torch
from safetensors import safe_open

from xray_atlas.models import build, load_model
from xray_atlas.models.catalogue import zoo_dir
from xray_atlas.models.files import read_card

ZOO = sorted(zoo_dir().glob("*.safetensors"))


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
