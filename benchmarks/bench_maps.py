"""Elemental maps end to end on a 564 x 428 x 4096 cube: read from disk, infer, write maps.

In one run on this machine, each a fresh process (imports and model loading included, page
cache warm after a first read):

- xray-atlas's shipped default model (``xray-atlas maps CUBE OUT.h5``: ``maps-fit``, the MLP
  on the per-cluster fit: three passes over a sample of rows, one over all), CPU;
- the shipped prior MLP (``--model maps-default``, the default until 2026-11-23);
- the shipped spatial model (``--model maps-spatial``: features of 5 x 5 blocks averaged);
- the least-squares baseline (``--model lsq``);
- the per-cluster fit (``--model fit``: two passes over a sample of rows, one over all);
- study 001's 1DCNN+ (``cnn1d+``, untrained weights: only the speed is measured here) on the
  first 32 rows, extrapolated to the cube (it runs a few hundred spectra per second);
- PyMca's FastXRFLinearFit (pip package pymca5; install it by hand: ``pip install pymca5``) on
  the first 128 rows, read into memory, with a configuration derived from ../shared/data/real/Steel.cfg
  for the same twelve line families, SNIP background, 1-25 keV.

Throughput in spectra per second and the ratios to the default model. The cube is made by
benchmarks/bench_open_and_click.py into benchmarks/data/. Usage:
``python benchmarks/bench_maps.py [KIND ...]`` (default: all of them).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CUBE = HERE / "data" / "cube_564x428x4096.h5"
STEEL_CFG = HERE.parents[1] / "shared" / "data" / "real" / "Steel.cfg"
XA_KINDS = ("default", "maps-default", "spatial", "lsq", "fit")
ELEMENTS = {
    "S": "K",
    "K": "K",
    "Ca": "K",
    "Cr": "K",
    "Mn": "K",
    "Fe": "K",
    "Cu": "K",
    "Zn": "K",
    "Sr": "K",
    "Au": "L",
    "Hg": "L",
    "Pb": "L",
}


def child(kind: str, out: str) -> dict:
    t0 = time.perf_counter()
    if kind in XA_KINDS:
        # imported first, as the ``xray-atlas`` command does: the package sets its thread-pool
        # variables before numpy loads
        from xray_atlas.cli import main

    import h5py
    import numpy as np

    if kind in XA_KINDS:
        model = {
            "default": [],
            "maps-default": ["--model", "maps-default"],
            "spatial": ["--model", "maps-spatial"],
            "lsq": ["--model", "lsq"],
            "fit": ["--model", "fit"],
        }[kind]
        args = ["maps", str(CUBE), out, "--device", "cpu"] + model
        assert main(args) == 0
        with h5py.File(CUBE) as f:
            n = f["spectra"].shape[0] * f["spectra"].shape[1]
        return {"seconds": time.perf_counter() - t0, "spectra": n}
    if kind == "cnn1d+":
        import torch

        from xray_atlas.models import build

        torch.manual_seed(0)
        model, _ = build("cnn1d+")
        model.eval()
        with h5py.File(CUBE) as f:
            block = f["spectra"][:32].reshape(-1, 4096).astype(np.float32)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for a in range(0, len(block), 1024):
                model(torch.from_numpy(block[a : a + 1024]))
        return {"seconds": time.perf_counter() - t0, "spectra": len(block)}
    if kind == "pymca":
        from PyMca5.PyMcaIO import ConfigDict
        from PyMca5.PyMcaPhysics.xrf.FastXRFLinearFit import FastXRFLinearFit

        cfg = ConfigDict.ConfigDict()
        cfg.read(str(STEEL_CFG))
        cfg["peaks"] = dict(ELEMENTS)
        cfg["fit"]["xmin"], cfg["fit"]["xmax"] = 100, 2500
        cfg["fit"]["stripflag"], cfg["fit"]["stripalgorithm"], cfg["fit"]["snipwidth"] = 1, 1, 30
        energy = list(cfg["fit"]["energy"])
        energy[0] = 20.0
        cfg["fit"]["energy"] = energy
        cfg["detector"]["zero"], cfg["detector"]["gain"] = 0.0, 0.01
        for key in list(cfg["attenuators"]):
            if key == "Matrix":
                cfg["attenuators"][key][0] = 0
        with h5py.File(CUBE) as f:
            data = f["spectra"][:128].astype(np.float64)
        fit = FastXRFLinearFit()
        fit.setFitConfiguration(cfg)
        t1 = time.perf_counter()
        result = fit.fitMultipleSpectra(y=data, weight=0, refit=1, concentrations=0)
        seconds = time.perf_counter() - t0
        names = [str(n) for n in result["names"]] if "names" in result else []
        return {
            "seconds": seconds,
            "fit_seconds": time.perf_counter() - t1,
            "spectra": data.shape[0] * data.shape[1],
            "outputs": names[:20],
        }
    raise ValueError(kind)


def run(kind: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        res = subprocess.run(
            [sys.executable, __file__, "--child", kind, str(Path(tmp) / "maps.h5")], capture_output=True, text=True
        )
        if res.returncode:
            return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
        return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3])))
        return
    if not CUBE.exists():
        sys.exit(f"{CUBE} is missing: run benchmarks/bench_open_and_click.py first")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; cube {CUBE.name} "
        f"({CUBE.stat().st_size / 1e9:.2f} GB)"
    )
    with open(CUBE, "rb") as f:  # warm the page cache once, for every run alike
        while f.read(1 << 26):
            pass
    kinds = sys.argv[1:] or ["default", "maps-default", "spatial", "lsq", "fit", "cnn1d+", "pymca"]
    if "default" not in kinds:
        kinds.insert(0, "default")  # the ratios are to the default model, in the same run
    results = {k: run(k) for k in kinds}
    base = results["default"]["spectra"] / results["default"]["seconds"]
    for k, r in results.items():
        if "error" in r:
            print(f"{k}: failed: {r['error']}")
            continue
        rate = r["spectra"] / r["seconds"]
        extra = f" (fit alone {r['spectra'] / r['fit_seconds']:,.0f}/s)" if "fit_seconds" in r else ""
        print(
            f"{k:<8} {r['spectra']:>7} spectra in {r['seconds']:7.2f} s: {rate:>9,.0f} spectra/s{extra}; "
            f"default model is {base / rate:5.2f}x"
        )


if __name__ == "__main__":
    main()
