"""Simulating the real reference measurements in ../shared/data/real, to check the physics.

- :func:`steel_srm1155`: NIST SRM 1155 stainless steel measured with an Ag tube at 30 kV
  (``Steel.spe``), with the instrument of its PyMca configuration (``Steel.cfg``).
- :func:`m6_jetstream_sample`: the Bruker M6 Jetstream spectrum (``..._example.spx``): a
  sample holding the elements of Bruker's own fit, with concentrations solved so that the
  simulated net counts stand in Bruker's proportions.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import XrayAtlasError
from .detector import Detector
from .lines import symbol
from .materials import Material, compound
from .spectra import Geometry, Instrument, Layer, Optic, Simulation, scatter_geometry, simulate
from .tube import Tube

#: Polycapillary band pass of the M6 Jetstream, chosen by matching the scatter continuum of
#: the real M6 spectrum in ../shared/data/real (docs/physics.md shows the comparison).
M6_OPTIC = Optic(high_kev=17.0, high_width_kev=2.5, low_kev=3.0, low_width_kev=0.5)

#: The XFlash 430 detector of the M6 Jetstream file: resolution, Be window and Si thickness.
M6_DETECTOR = {"fwhm_mnka_ev": 145.0, "window_be_um": 12.5, "sensor_um": 450.0}

__all__ = [
    "M6_OPTIC",
    "M6_DETECTOR",
    "scanner",
    "steel_srm1155",
    "STEEL_SRM1155",
    "bruker_net_counts",
    "m6_jetstream_sample",
]


def scanner(anode: str, kv: float, detector: Detector, *, optic: bool = False, scatter_deg: float = 90.0) -> Instrument:
    """An XRF instrument as the instrument fit describes it and the element model adapted to it
    is trained on (:mod:`xray_atlas.adapt.spectra`): a tube, a detector, the M6's polycapillary
    (:data:`M6_OPTIC`) or no optic, and the angle between beam and detector
    (:func:`~xray_atlas.physics.spectra.scatter_geometry`). One function, so that both mean the
    same optic and geometry."""
    return Instrument(
        tube=Tube(anode=anode, kv=kv),
        detector=detector,
        optic=M6_OPTIC if optic else None,
        geometry=scatter_geometry(scatter_deg),
    )


#: NIST SRM 1155 certificate (wt %), as in the Steel.cfg material SRM_1155_COMPLETE.
STEEL_SRM1155 = {
    "C": 0.0445,
    "N": 0.04,
    "Si": 0.5093,
    "P": 0.02,
    "S": 0.0175,
    "V": 0.05,
    "Cr": 18.37,
    "Mn": 1.619,
    "Fe": 64.314,
    "Co": 0.109,
    "Ni": 12.35,
    "Cu": 0.175,
    "As": 0.01067,
    "Mo": 2.26,
    "W": 0.11,
    "Pb": 0.001,
}


def steel_srm1155(*, n_channels: int = 2048) -> tuple[Material, Instrument]:
    """The steel and the instrument of ``Steel.cfg`` (PyMca).

    The fit configuration excites with one 16 keV line (``[fit] energy = 16.0``; the
    measured spectrum shows that scatter peak and no Mo K lines, which need 20 keV); its
    ``[tube]`` section (Ag, 30 kV) is only the state of PyMca's tube calculator. Geometry
    45/45 degrees, 5 cm air, 20 um Be detector window, 350 um Si, calibration zero -0.00612
    keV and gain 0.011928 keV, noise 0.1274 keV FWHM and Fano 0.101 (170 eV at Mn Ka)."""
    steel = compound(STEEL_SRM1155, density=7.9, name="SRM 1155")
    det = Detector(
        n_channels=n_channels,
        gain_kev=0.0119281593146,
        offset_kev=-0.00612446976449,
        fano=0.101156,
        fwhm_mnka_ev=1000 * float(np.sqrt(0.127439**2 + 2.3548**2 * 0.101156 * 0.00385 * 5.8951)),
        window_be_um=20.0,
        sensor_um=350.0,
        tail_area=0.0,
        step_height=1e-4,
    )
    tube = Tube("Ag", 30.0, current_ua=100.0, window_be_um=125.0, takeoff_deg=20.0, filters=(("Al", 1.1),))
    geo = Geometry(incidence_deg=45.0, exit_deg=45.0, air_mm=50.0)
    return steel, Instrument(tube, det, geo, live_time_s=300.0, monochromatic_kev=16.0)


def bruker_net_counts(path: str | Path) -> tuple[dict[str, float], dict]:
    """Bruker's fitted net counts per line family from a ``.spx`` file, and its metadata."""
    import rsciio.bruker as bruker

    try:
        sig = bruker.file_reader(str(path))[0]
    except Exception as err:  # noqa: BLE001 - rosettasciio raises many types
        raise XrayAtlasError(f"not a readable Bruker spectrum ({err})", path=path) from None
    results = sig["original_metadata"].get("Results", {}).get("Result", [])
    net = {}
    for r in results:
        if "NetIntens" in r:
            fam = {"K-Serie": "K", "L-Serie": "L", "M-Serie": "M"}.get(r.get("XLine"))
            if fam:
                net[f"{symbol(int(r['Atom']))}-{fam}"] = float(r["NetIntens"])
    return net, sig


def m6_jetstream_sample(
    path: str | Path,
    *,
    iterations: int = 12,
    top_fraction: float = 0.15,
    optic: Optic | None = None,
    air_mm: float = 4.0,
    step_height: float = 3e-4,
) -> tuple[Simulation, dict[str, float], np.ndarray]:
    """Simulate the M6 Jetstream spectrum: returns (simulation, Bruker net counts, measured counts).

    Tube Rh 50 kV and the detector of the file (XFlash 430: 450 um Si, 12.5 um Be, the file's
    calibration). The sample: the elements Bruker found (tube Rh and air Ar excluded) in a
    carbonate/organic remainder (C 12, O 48, H 2 wt % relative), concentrations iterated until
    the simulated net counts match Bruker's relative to Ca; the intensity scale is then set
    so that the largest family matches in absolute counts.
    """
    target, sig = bruker_net_counts(path)
    measured = np.asarray(sig["data"], dtype=np.float64)
    ax = [a for a in sig["axes"] if a.get("name") == "Energy"][0]
    live = float(sig["original_metadata"]["Hardware"]["LifeTime"]) / 1000.0
    det = Detector(
        n_channels=measured.size,
        gain_kev=float(ax["scale"]),
        offset_kev=float(ax["offset"]),
        step_height=step_height,
        **M6_DETECTOR,
    )
    inst = Instrument(
        Tube("Rh", 50.0, current_ua=600.0),
        det,
        Geometry(incidence_deg=90.0, exit_deg=45.0, air_mm=air_mm),
        live_time_s=live,
        optic=M6_OPTIC if optic is None else optic,
    )
    # Bruker reports a few counts for absent elements (Ba K: 16): fit only real peaks
    fams = {k: v for k, v in target.items() if not k.startswith(("Rh-", "Ar-")) and v >= 50}
    top = max(fams, key=fams.get)
    w = {k.split("-")[0]: 1e-3 for k in fams}
    w[top.split("-")[0]] = top_fraction
    sim = None
    for _ in range(iterations):
        fr = dict(w)
        rest = max(1.0 - sum(fr.values()), 0.05)
        for sym, part in (("C", 0.12), ("O", 0.48), ("H", 0.02)):
            fr[sym] = fr.get(sym, 0.0) + rest * part / 0.62
        sample = compound(fr, density=2.0, name="M6 sample")
        sim = simulate([Layer(sample)], inst, pileup=True)
        ref = sim.net.get(top, 0.0)
        for k, v in fams.items():
            got = sim.net.get(k, 0.0)
            if got > 0:
                # damped update: families the tube barely excites must not eat the whole mass
                step = float(np.clip((v / fams[top]) / (got / ref), 0.2, 5.0))
                if k != top:
                    w[k.split("-")[0]] = min(w[k.split("-")[0]] * step, 0.6)
        total = sum(w.values())
        if total > 0.95:
            w = {k: v * 0.95 / total for k, v in w.items()}
    scale = fams[top] / sim.net[top]
    inst = replace(inst, geometry=replace(inst.geometry, intensity_scale=inst.geometry.intensity_scale * scale))
    sim = simulate([Layer(sample)], inst, pileup=True)
    return sim, target, measured
