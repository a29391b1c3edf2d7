from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import poisson

from xray_atlas import XrayAtlasError
from xray_atlas.physics.generator import GeneratorConfig, SpectrumGenerator
from xray_atlas.physics.generator import poisson as draw_poisson


@pytest.fixture(scope="module")
def gen():
    return SpectrumGenerator()


def test_batch_shapes_and_truth(gen):
    b = gen(300, 0, keep_expected=True)
    assert b.spectra.shape == (300, 4096) and b.spectra.dtype == np.float32
    assert b.net.shape == (300, len(gen.families)) and b.presence.shape == (300, len(gen.elements))
    assert {"Pb-L", "Hg-L", "Cu-K", "Fe-K", "Ca-K", "S-K", "Sr-K", "Au-L", "Sn-K", "Sb-L"} <= set(gen.families)
    n_el = b.presence.sum(1)
    assert n_el.min() >= 1 and n_el.max() <= 10  # 1-9 drawn, plus Ar from air
    # net counts only for families of present elements, and present elements have some
    el_of_fam = np.array([gen.elements.index(f.split("-")[0]) for f in gen.families])
    assert np.all(b.net[~b.presence[:, el_of_fam]] == 0)
    has = np.zeros_like(b.presence)
    np.logical_or.at(has.T, el_of_fam, (b.net > 0).T)
    assert np.array_equal(has, b.presence)
    assert np.all(b.net.reshape(300, -1) >= 0)
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
    gen = SpectrumGenerator(
        GeneratorConfig(
            elements=("Fe",),
            n_elements=(1, 1),
            counts=(1e6, 1e6),
            background_share=(0.05, 0.05),
            air_argon=0.0,
            shift_kev=0.05,
            width_jitter=0.0,
            peak_shift_kev=0.0,
            pileup=0.0,
        )
    )
    b = gen(50, 3, noise=False)
    for spec, off in zip(b.spectra, b.offset_kev):
        # Fe Ka (6.40 keV, xraylib) appears at channel (6.40 - offset) / gain
        ch = np.argmax(spec[500:800]) + 500
        assert abs(ch - (6.4 - off) / 0.01) <= 1.5
    assert np.ptp(b.offset_kev) > 0.05


@pytest.mark.parametrize("lam", [0.05, 0.2, 0.7, 1.9, 2.5, 5.0, 10.0, 40.0])
def test_poisson_draws_match_the_distribution(lam):
    rng = np.random.default_rng(1)
    x = draw_poisson(np.full(400_000, lam, np.float32), rng).astype(int)
    k = np.arange(0, int(lam + 12 * np.sqrt(lam) + 10))
    tv = 0.5 * np.abs(np.bincount(x, minlength=k.size)[: k.size] / x.size - poisson.pmf(k, lam)).sum()
    # exact below 2 (sampling noise only), Cornish-Fisher above: within 0.6 % total variation
    assert tv < (0.005 if lam < 2 else 0.008), tv
    assert x.mean() == pytest.approx(lam, rel=0.01, abs=0.002)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"elements": ("Fe", "Xq")}, "'Xq'"),
        ({"n_elements": (0, 3)}, "n_elements"),
        ({"counts": (10, 1)}, "counts"),
        ({"shift_kev": -1}, "shift_kev"),
        ({"elements": ()}, "at least one"),
        ({"elements": ("Fe", "Mo"), "unlisted": ("Mo",)}, "unlisted: Z = \\[42\\]"),
        ({"unlisted": ("Qq",)}, "'Qq'"),
        ({"unlisted_share": 1.5}, "unlisted_share"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(XrayAtlasError, match=match):
        GeneratorConfig(**kwargs)


def test_bad_batch_size(gen):
    with pytest.raises(XrayAtlasError, match="n=0"):
        gen(0)


# -- detection limit, cut-off, instrument mix (element presence labels) -------------------------
def _generator(elements, counts, *, n=1, mono=None, bg=0.3):
    from xray_atlas.physics.spectra import Instrument
    from xray_atlas.physics.tube import Tube

    inst = Instrument(tube=Tube(anode="Rh", kv=50.0), monochromatic_kev=mono)
    return SpectrumGenerator(
        GeneratorConfig(
            elements=elements,
            n_elements=(n, n),
            counts=(counts, counts),
            background_share=(bg, bg),
            air_argon=0.0,
            instrument=inst,
        )
    )


def test_detectable_follows_currie_limit():
    # the limit L_D = 2.71 + 4.65 sqrt(B) (Currie 1968), computed here by hand for Fe Ka in
    # noise-free spectra: an element drawn at a few counts is present but not detectable
    gen = _generator(("Fe", "Zn"), 200.0, n=2)  # Fe beside Zn, amounts over three decades
    b = gen(400, 1, keep_expected=True)
    fe = gen.elements.index("Fe")
    drawn = b.presence[:, fe]
    assert drawn.all() and 0.2 < b.detectable[:, fe].mean() < 0.9
    det = gen.config.instrument.detector
    lo, hi = (
        int(round((6.40 - 1.2 * det.sigma_kev(6.40)) / 0.01)),
        int(round((6.40 + 1.2 * det.sigma_kev(6.40)) / 0.01)),
    )
    fe_ka = b.net[:, gen.families.index("Fe-K")] * 0.88 * 0.77  # Ka share of Fe-K, window share of a Gaussian
    bkg = b.expected[:, lo : hi + 1].sum(1) - fe_ka
    clear = fe_ka > 1.5 * (2.71 + 4.65 * np.sqrt(bkg))
    below = fe_ka < 0.6 * (2.71 + 4.65 * np.sqrt(bkg))
    assert clear.sum() > 20 and below.sum() > 10
    assert b.detectable[clear, fe].all() and not b.detectable[below, fe].any()
    absent = _generator(("Fe", "Zn", "Cu"), 3000.0)(300, 1)
    assert not (absent.detectable & ~absent.presence).any()  # no anode among them: nothing from nothing


def test_scattered_anode_lines_make_the_anode_present():
    tube = _generator(("Fe", "Rh"), 1e5, bg=0.5)
    rh = tube.elements.index("Rh")
    b = tube(200, 2)
    assert b.detectable[~b.presence[:, rh], rh].mean() > 0.9  # Rh K/L Rayleigh peaks of the Rh tube
    mono = _generator(("Fe", "Rh"), 1e5, bg=0.5, mono=17.5)  # a monochromatic beam scatters no Rh line
    b = mono(200, 2)
    assert not b.detectable[~b.presence[:, rh], rh].any()


def test_cutoff_zeroes_the_channels_above_and_hides_their_lines():
    gen = SpectrumGenerator(
        GeneratorConfig(
            elements=("Sn", "Fe"),
            n_elements=(2, 2),
            counts=(1e6, 1e6),
            cutoff_share=1.0,
            cutoff_kev=(15.0, 15.0),
            air_argon=0.0,
        )
    )
    b = gen(50, 4, noise=False)
    e = gen.config.instrument.detector.energy
    assert np.all(b.spectra[:, e > 15.1] == 0) and np.all(b.spectra[:, (e > 3) & (e < 14)].sum(1) > 0)
    assert b.detectable[:, gen.elements.index("Fe")].mean() > 0.5
    # Sn K lines (25.3 keV) are cut; what is left of Sn is its L lines (3.4-3.9 keV)
    full = SpectrumGenerator(
        GeneratorConfig(elements=("Sn", "Fe"), n_elements=(2, 2), counts=(1e6, 1e6), air_argon=0.0)
    )(50, 4, noise=False)
    assert b.detectable[:, 0].sum() <= full.detectable[:, 0].sum()


def test_mixed_generator_draws_every_instrument():
    from xray_atlas.physics.generator import MixedGenerator, varied_instruments

    insts = varied_instruments()
    gen = MixedGenerator(GeneratorConfig(elements=("Fe", "Pb", "Rh"), n_elements=(1, 2), counts=(1e5, 1e5)), insts)
    b = gen(100, 5, noise=False)
    assert b.spectra.shape == (100, 4096) and b.detectable.shape == (100, 3)
    e = insts[0].detector.energy
    # the monochromatic 17.5 keV share has nothing above its elastic peak; tube spectra do
    above = b.spectra[:, e > 19.0].sum(1) / b.spectra.sum(1)
    assert (above < 1e-3).sum() >= 15 and (above > 1e-2).sum() >= 50
    with pytest.raises(XrayAtlasError, match="one channel grid"):
        from dataclasses import replace

        MixedGenerator(
            GeneratorConfig(elements=("Fe",), n_elements=(1, 1)),
            (insts[0], replace(insts[1], detector=replace(insts[1].detector, gain_kev=0.005))),
        )


def _pb_la_lb(tables):
    """Indices of the Pb La and Pb Lb line clusters in :func:`_templates` tables."""
    return (int(np.argmin(np.abs(tables["energy"] - x))) for x in (10.55, 12.61))


def _lead_windows(n, **config):
    """Noise-free lead-only spectra (1e5 counts, 5 % background, seed 6): counts in (lo, hi) keV."""
    gen = SpectrumGenerator(
        GeneratorConfig(
            elements=("Pb",),
            n_elements=(1, 1),
            counts=(1e5, 1e5),
            background_share=(0.05, 0.05),
            absorption=0.0,
            air_argon=0.0,
            pileup=0.0,
            **config,
        )
    )
    b = gen(n, 6, noise=False)
    e = gen.config.instrument.detector.energy
    return lambda lo, hi: b.spectra[:, (e > lo) & (e < hi)].sum(1)


def test_the_m6_like_instrument_has_the_m6_optic():
    # the polycapillary passes little above 17 keV, so the Rh 50 kV tube ionises fewer Pb L1
    # and L2 shells through it (their edges, 15.2 and 15.9 keV, sit on the optic's fall-off):
    # thin Pb La/Lb 2.04 with it, 1.59 without (xraylib cross sections, SpekPy tube spectrum)
    from dataclasses import replace

    from xray_atlas.physics.generator import _templates, varied_instruments
    from xray_atlas.physics.reference import M6_OPTIC

    m6 = varied_instruments()[0]
    assert (m6.tube.anode, m6.tube.kv, m6.optic) == ("Rh", 50.0, M6_OPTIC)
    ratio = []
    for inst in (m6, replace(m6, optic=None)):
        t = _templates(("Pb",), inst, True)
        la, lb = _pb_la_lb(t)
        ratio.append(t["yield"][la] / t["yield"][lb])
    assert ratio[0] == pytest.approx(2.04, abs=0.03) and ratio[1] == pytest.approx(1.59, abs=0.03)


def test_buried_elements_lose_their_low_energy_lines_first():
    # lead under other layers: the same absorption law as the matrix, so Pb La (10.55 keV)
    # fades before Pb Lb (12.61 keV) and far before Pb M (2.35 keV)
    def ratios(burial):
        win = _lead_windows(200, burial=burial, burial_share=1.0)
        return win(10.40, 10.70) / win(12.45, 12.75), win(2.2, 2.5) / win(12.45, 12.75)

    (la0, m0), (la1, m1) = ratios(0.0), ratios(20.0)
    # unburied, the ratio varies only with the per-cluster jitter and the background mix
    assert np.median(la1) < 0.9 * np.median(la0) and la1.max() <= la0.max() * 1.05
    assert np.median(m1) < 0.2 * np.median(m0)


@pytest.mark.parametrize("matrix", ["chalk ground", "ultramarine"])
def test_thick_layer_line_ratios_follow_the_physics_engine(matrix):
    # Pb La/Lb of a trace of lead in an infinitely thick layer, against simulate() (Sherman's
    # equation with xraylib cross sections) for the same layer with 0.5 % Pb: the matrix
    # absorbs La more than Lb (1.59 thin -> 1.02 in chalk, 1.00 in ultramarine)
    from xray_atlas.physics.generator import LAYER_MATRICES, _self_absorption, _templates
    from xray_atlas.physics.materials import PIGMENTS, compound
    from xray_atlas.physics.spectra import DEFAULT_INSTRUMENT, Layer, simulate

    t = _templates(("Pb",), DEFAULT_INSTRUMENT, True)
    la, lb = _pb_la_lb(t)
    sa = _self_absorption(t, DEFAULT_INSTRUMENT)[LAYER_MATRICES.index(matrix)]

    def engine(thickness_um):
        mat = PIGMENTS[matrix]
        fr = {**{sym: w * 0.995 for sym, w in mat.elements.items()}, 82: 0.005}
        lines = simulate(
            [Layer(compound({symbol(z): w for z, w in fr.items()}, density=mat.density), thickness_um)],
            DEFAULT_INSTRUMENT,
        ).lines
        a = sum(n for f, _, e, n in lines if f == "Pb-L" and abs(e - 10.5) < 0.15)
        b = sum(n for f, _, e, n in lines if f == "Pb-L" and 12.2 < e < 12.9)
        return a / b

    from xray_atlas.physics.lines import symbol

    thin = t["yield"][la] / t["yield"][lb]
    assert thin == pytest.approx(engine(1e-3), rel=0.02)
    assert thin * sa[-1, la] / sa[-1, lb] == pytest.approx(engine(None), rel=0.03)
    assert sa[0, la] / sa[0, lb] == pytest.approx(1.0, abs=0.01)  # 1 ug/cm^2: thin
    assert np.all(np.diff(sa[:, la]) < 0)  # thicker layers hold back more of each line


def test_thick_layers_widen_the_line_ratios():
    def ratios(thickness):
        win = _lead_windows(300, thickness=thickness)
        return win(10.40, 10.70) / win(12.45, 12.75)

    thin, thick = ratios(None), ratios((1e-3, 1.0))
    # thin: the per-cluster jitter and the background only; thick: La down to 0.65 of it
    q = lambda x, f: np.quantile(x, f) / np.median(thin)  # noqa: E731
    assert q(thin, 0.1) > 0.9 and q(thin, 0.9) < 1.1
    assert q(thick, 0.1) < 0.75 and q(thick, 0.9) > 0.9
    with pytest.raises(XrayAtlasError, match="thickness"):
        GeneratorConfig(thickness=(1.0, 0.1))


def test_overlapping_pairs_from_line_energies():
    gen = SpectrumGenerator(GeneratorConfig(elements=("As", "Pb", "Fe", "S"), n_elements=(1, 1), pair_share=1.0))
    pairs = {tuple(sorted(gen.elements[i] for i in p)) for p in gen.overlapping}
    # xraylib: As Ka 10.54 / Pb La 10.55 keV, S Ka 2.31 / Pb Ma 2.35 keV; Fe overlaps neither
    assert pairs == {("As", "Pb"), ("Pb", "S")}
    b = gen(200, 3)
    both = (b.presence[:, 0] & b.presence[:, 1]) | (b.presence[:, 1] & b.presence[:, 3])
    assert both.all()  # every spectrum got a pair besides its one drawn element


def test_unlisted_elements_add_lines_but_no_truth_columns():
    listed = GeneratorConfig(elements=("Fe", "S"), n_elements=(1, 1), counts=(1e5, 1e5), pileup=0.0)
    plain = SpectrumGenerator(listed)
    gen = SpectrumGenerator(replace(listed, unlisted=("Mo",), unlisted_share=1.0))
    assert gen.elements == ("Fe", "S") and "Mo-K" in gen.families and "Mo-K" not in plain.families
    b = gen(300, 5)
    assert b.presence.shape == b.detectable.shape == (300, 2)
    assert (b.presence.sum(1) == 1).all()  # the one listed element drawn; Mo has no column
    mo = b.net[:, gen.families.index("Mo-K")]
    assert (mo > 0).all()  # every spectrum holds Mo (share 1)
    # Mo Ka (xraylib: 17.48 keV) shows in the spectra, and not in those of the listed elements only
    e = gen.config.instrument.detector.energy
    window = (e > 17.3) & (e < 17.7)
    assert b.spectra[:, window].sum(1).mean() > 20 * plain(300, 5).spectra[:, window].sum(1).mean()


def test_unlisted_elements_leave_the_listed_draws_alone():
    # xraylib: Mo La 2.29 keV lies within 60 eV of S Ka 2.31 keV, yet the overlapping pairs
    # stay those of the listed elements, and with no unlisted share none is drawn
    cfg = GeneratorConfig(elements=("Fe", "S", "Pb", "As"), n_elements=(1, 2), pair_share=0.5)
    gen = SpectrumGenerator(replace(cfg, unlisted=("Mo", "Zr")))
    assert {tuple(sorted(gen.elements[i] for i in p)) for p in gen.overlapping} == {("As", "Pb"), ("Pb", "S")}
    a, b = SpectrumGenerator(cfg)(64, 9), gen(64, 9)
    assert np.array_equal(a.presence, b.presence)
    assert (b.net[:, [gen.families.index(f) for f in ("Mo-L", "Mo-K", "Zr-L", "Zr-K")]] == 0).all()
