"""Every registered model: forward shape, backward, save/load round trip (docs/dev/architecture.md rule 5)."""

import json

import pytest
import torch

from xray_atlas import XrayAtlasError
from xray_atlas.models import ModelCard, available, build, load_model, save_model


def _inputs(name):
    """A small model of each task's kind and a batch it takes."""
    entry = available()[name]
    if entry.task == "images":
        return build(name, image_size=32, n_outputs=5), torch.randn(7, 1, 32, 32)
    if entry.task == "diffraction":  # mean-normalised non-negative images
        return build(name, image_size=32, n_outputs=5), torch.rand(7, 1, 32, 32) * 2
    extra = {"lines": ("Ca-K", "Fe-K", "Cu-K", "Sr-K", "Pb-L"), "gain_kev": 0.04} if "lines" in entry.defaults else {}
    if "neighbourhood" in entry.defaults:  # spatial: each pixel and the mean of its block
        return build(name, n_channels=512, n_outputs=5, **extra), 100 * torch.rand(7, 2, 512)
    built = build(name, n_channels=512, n_outputs=5, **extra)
    if getattr(built[0], "cluster_fit", False):  # the counts, then the per-cluster fit's 2 x 44 inputs
        return built, 100 * torch.rand(7, 512 + 2 * built[0].n_families)
    return built, 100 * torch.rand(7, 512)


@pytest.mark.parametrize("name", sorted(available()))
def test_every_model_forward_backward_and_round_trip(name, tmp_path):
    (model, config), x = _inputs(name)
    out = model(x)
    assert out.shape == (7, 5)
    if any(True for _ in model.parameters()):
        out.sum().backward()
        assert all(p.grad is not None for p in model.parameters())
    else:
        assert not available()[name].trainable  # only fixed baselines have no parameters
    card = ModelCard(architecture=name, config=config, task="maps", outputs=[f"L{i}" for i in range(5)], seed=1)
    for target in (tmp_path / "m", tmp_path / "m.safetensors"):
        save_model(target, model, card)
        loaded, card2 = load_model(target)
        model.eval()
        torch.testing.assert_close(loaded(x), model(x))
        assert card2.architecture == name and card2.outputs == card.outputs and card2.seed == 1
    assert json.loads((tmp_path / "m" / "card.json").read_text())["package_version"]


def test_every_task_has_its_models():
    tasks = {e.task for e in available().values()}
    assert {"maps", "elements", "images", "diffraction"} <= tasks


def test_total_normalisation_scales_with_counts():
    # Net counts scale with dwell time: twice the counts in every channel, twice each output.
    model, _ = build("fcn", n_channels=512, n_outputs=3, hidden=(16,))
    x = 50 * torch.rand(4, 512)
    torch.testing.assert_close(model(2 * x), 2 * model(x))
    raw, _ = build("fcn", n_channels=512, n_outputs=3, hidden=(16,), normalise="none")
    assert not torch.allclose(raw(2 * x), 2 * raw(x))
    with pytest.raises(XrayAtlasError, match="normalise='max'"):
        build("fcn", normalise="max")


def test_study_fcn_shape():
    model, config = build("fcn")  # study 001: 4096-512-64-64-12
    shapes = [tuple(p.shape) for n, p in model.named_parameters() if n.endswith("weight")]
    assert shapes == [(512, 4096), (64, 512), (64, 64), (12, 64)]


def test_vit_dropout_where_study_003_puts_it():
    """Study 003 (Listings 1-2): dropout on the tokens and in each MLP, none in the attention."""
    model, _ = build("vit1d", n_channels=256, n_outputs=4, dropout=0.5)
    model.train()
    layer = model.blocks.layers[0]
    h = torch.randn(3, 16, 16)
    a = layer._sa_block(h, None, None)  # attention and what follows it: deterministic in training
    assert torch.equal(a, layer._sa_block(h, None, None))
    assert not torch.equal(layer._ff_block(h), layer._ff_block(h))  # the MLP's dropout acts
    x = 100 * torch.rand(2, 256)
    assert not torch.equal(model(x), model(x))
    # the parameters are those of torch's TransformerEncoder, so files trained before still load
    ref = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(16, 8, 64, batch_first=True, norm_first=True), 6, enable_nested_tensor=False
    )
    assert model.blocks.state_dict().keys() == ref.state_dict().keys()


def test_bad_models_and_files(tmp_path):
    with pytest.raises(XrayAtlasError, match="model='resnet999' is unknown"):
        build("resnet999")
    with pytest.raises(XrayAtlasError, match="no option"):
        build("fcn", depth=3)
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    with pytest.raises(XrayAtlasError, match="junk.safetensors: not a readable model file"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(XrayAtlasError, match="no model file"):
        load_model(tmp_path)
    # a card naming an unknown architecture is refused, never executed
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "card.json").write_text(
        json.dumps({"architecture": "os.system", "config": {}, "task": "maps"})
    )
    (tmp_path / "evil" / "model.safetensors").write_bytes(b"")
    with pytest.raises(XrayAtlasError, match="evil"):
        load_model(tmp_path / "evil")


def test_map_model_capabilities_are_declared():
    """What inference and training read of a map model is declared by its class: the guarded
    models (familiarity guard), the one model that takes the per-cluster fit's inputs (as
    ``CLUSTER_FIT_MODELS`` names it for the training sources, before any model is built), and
    the count level passed beside the shares with ``level``."""
    from xray_atlas.models.spectral import CLUSTER_FIT_MODELS, FitMLP, GuardedMapModel, TotalScaled

    small = {"n_channels": 512, "n_outputs": 5}
    lines = {"lines": ("Ca-K", "Fe-K", "Cu-K", "Sr-K", "Pb-L"), "gain_kev": 0.04}
    guarded, cluster = set(), set()
    for name, entry in available("maps").items():
        model, _ = build(name, **small, **(lines if "lines" in entry.defaults else {}))
        inner = [m for m in model.modules() if isinstance(m, GuardedMapModel)]
        if inner:
            guarded.add(name)
            assert len(inner) == 1 and inner[0].guard.fallback is None
            if inner[0].cluster_fit:
                cluster.add(name)
                assert model is inner[0] and model.n_families == 44  # the prior's families
    assert guarded == {"prior-mlp", "spatial-prior-mlp", "fit-mlp"}
    assert cluster == set(CLUSTER_FIT_MODELS) == {"fit-mlp"} and isinstance(
        build("fit-mlp", **small, **lines)[0], FitMLP
    )
    for level in (False, True):
        model, _ = build("prior-mlp", **small, **lines, level=level)
        assert isinstance(model, TotalScaled) and model.takes_total is level and model.net.takes_total is level
        x = 100 * torch.rand(3, 512)
        model(x)
        torch.testing.assert_close(model.totals, x.sum(dim=1, keepdim=True))
