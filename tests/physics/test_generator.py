import numpy as np
import pytest
from scipy.stats import poisson

from xray_atlas import XrayAtlasError
from xray_atlas.physics.generator import GeneratorConfig, SpectrumGenerator, _poisson


@pytest.fixture(scope="module")
def gen():
    return SpectrumGenerator()


def test_batch_shapes_and_truth(gen):
    b = gen(300, 0, keep_expected=True)
    assert b.spectra.shape == (300, 4096) and b.spectra.dtype == np.float32
    assert b.net.shape == (300, len(gen.families)) and b.presence.shape == (300, len(gen.elements))
    assert set(["Pb-L", "Hg-L", "Cu-K", "Fe-K", "Ca-K", "S-K", "Sr-K", "Au-L", "Sn-K", "Sb-L"]) <= set(gen.families)
    n_el = b.presence.sum(1)
    assert n_el.min() >= 1 and n_el.max() <= 10  # 1-9 drawn, plus Ar from air
    # net counts only for families of present elements, and present elements have some
    el_of_fam = np.array([gen.elements.index(f.split("-")[0]) for f in gen.families])
    assert np.all(b.net[~b.presence[:, el_of_fam]] == 0)
    has = np.zeros_like(b.presence)
    np.logical_or.at(has.T, el_of_fam, (b.net > 0).T)
    assert np.array_equal(has, b.presence)
    assert np.all((b.net.reshape(300, -1) >= 0))
    # total counts within the configured range (expected spectra)
    tot = b.expected.sum(1)
    assert tot.min() > 0.8e3 and tot.max() < 1.3e6
    assert np.all(b.spectra >= 0) and np.all(b.spectra == np.round(b.spectra))


def test_same_seed_same_batch_with_or_without_workers(gen):
    a = gen(400, 7)
    b = gen(400, 7, workers=2)
    np.testing.assert_array_equal(a.spectra, b.spectra)
    np.testing.assert_array_equal(a.net, b.net)
    assert not np.array_equal(a.spectra, gen(400, 8).spectra)


def test_peaks_sit_at_the_drifted_calibration():
    gen = SpectrumGenerator(GeneratorConfig(elements=("Fe",), n_elements=(1, 1), counts=(1e6, 1e6),
                                            background_share=(0.05, 0.05), air_argon=0.0, shift_kev=0.05,
                                            width_jitter=0.0, peak_shift_kev=0.0, pileup=0.0))
    b = gen(50, 3, noise=False)
    e = gen.config.instrument.detector.energy
    for spec, off in zip(b.spectra, b.offset_kev):
        # Fe Ka (6.40 keV, xraylib) appears at channel (6.40 - offset) / gain
        ch = np.argmax(spec[500:800]) + 500
        assert abs(ch - (6.4 - off) / 0.01) <= 1.5
    assert np.ptp(b.offset_kev) > 0.05


@pytest.mark.parametrize("lam", [0.05, 0.2, 0.7, 1.9, 2.5, 5.0, 10.0, 40.0])
def test_poisson_draws_match_the_distribution(lam):
    rng = np.random.default_rng(1)
    x = _poisson(np.full(400_000, lam, np.float32), rng).astype(int)
    k = np.arange(0, int(lam + 12 * np.sqrt(lam) + 10))
    tv = 0.5 * np.abs(np.bincount(x, minlength=k.size)[: k.size] / x.size - poisson.pmf(k, lam)).sum()
    # exact below 2 (sampling noise only), Cornish-Fisher above: within 0.6 % total variation
    assert tv < (0.005 if lam < 2 else 0.008), tv
    assert x.mean() == pytest.approx(lam, rel=0.01, abs=0.002)


@pytest.mark.parametrize("kwargs, match", [
    ({"elements": ("Fe", "Xq")}, "'Xq'"), ({"n_elements": (0, 3)}, "n_elements"),
    ({"counts": (10, 1)}, "counts"), ({"shift_kev": -1}, "shift_kev"), ({"elements": ()}, "at least one"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(XrayAtlasError, match=match):
        GeneratorConfig(**kwargs)


def test_bad_batch_size(gen):
    with pytest.raises(XrayAtlasError, match="n=0"):
        gen(0)
