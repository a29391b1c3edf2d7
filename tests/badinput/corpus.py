"""Bad and odd inputs for every command, made in a folder (issue 27's sweep).

:func:`build_corpus` writes the input files once (tiny cubes, images, model files, and the
broken, odd or hostile versions of them); :func:`cases` lists the command lines run on them,
each with what it must do:

* ``"bad"``: a clean refusal (exit 2, one line on stderr naming ``needle``), nothing written;
* ``"good"``: success (exit 0);
* ``"odd"``: either of those (an unusual but legal input).

Every case runs in a fresh folder of its own (``setup`` may put files there first, e.g. an
existing output); the corpus and that folder are hashed before and after, so any change to a
file that existed before is data loss unless the case lists it in ``may_change``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

C = 256  # channels of the tiny cubes
GAIN = 0.08  # keV per channel: 0-20 keV


@dataclass
class Case:
    """One command line of the sweep."""

    name: str
    argv: list[str]
    expect: str = "bad"  # "bad", "good" or "odd"
    needle: str = ""  # text the one-line error must contain
    setup: Callable[[Path], None] | None = None  # puts files in the case's folder first
    may_change: tuple[str, ...] = ()  # pre-existing files (case folder) this case may replace
    holder: str | None = None  # Python code run in a child process while the case runs (a lock)
    fast: bool = False  # part of the pytest subset
    timeout: float = 60.0
    group: str = "misc"


class Evil:
    """Unpickling this creates the file ``PICKLE_RAN`` beside the corpus: proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _h5(path: Path, counts, *, calibrated=True, **attrs) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        ds = f.create_dataset("spectra", data=counts)
        if calibrated:
            ds.attrs["energy_offset_kev"] = 0.0
            ds.attrs["energy_gain_kev"] = GAIN
        f.create_dataset("maps/Fe-K", data=np.ones(np.shape(counts)[:2], np.float32))  # for the cubes source
        for k, v in attrs.items():
            f.attrs[k] = v


def _model_files(root: Path) -> None:
    """Small model files whose card disagrees with the weights, or which hold pickles."""
    import torch
    from safetensors.torch import save_file

    from xray_atlas.models import ModelCard, build, save_model

    lines = ["S-K", "K-K", "Ca-K", "Cr-K", "Mn-K", "Fe-K", "Cu-K", "Zn-K", "Sr-K", "Au-L", "Hg-L", "Pb-L"]
    model, cfg = build("prior-mlp", n_channels=C, gain_kev=GAIN, hidden=(8,), lines=tuple(lines), n_outputs=len(lines))
    inputs = {"n_channels": C, "energy_offset_kev": 0.0, "energy_gain_kev": GAIN}
    save_model(root / "maps-ok.safetensors", model, ModelCard("prior-mlp", cfg, "maps", outputs=lines, inputs=inputs))
    save_model(
        root / "maps-3outputs.safetensors", model, ModelCard("prior-mlp", cfg, "maps", outputs=lines[:3], inputs=inputs)
    )
    save_model(
        root / "maps-wrongchannels.safetensors",
        model,
        ModelCard("prior-mlp", cfg, "maps", outputs=lines, inputs={**inputs, "n_channels": 2 * C}),
    )
    save_model(
        root / "maps-as-images.safetensors",
        model,
        ModelCard("prior-mlp", cfg, "images", outputs=["a", "b"], inputs=inputs),
    )
    marker = str(root / "PICKLE_RAN")
    torch.save({"w": Evil(marker)}, root / "evil.pt", _use_new_zipfile_serialization=True)
    (root / "evil.pkl").write_bytes(pickle.dumps(Evil(marker)))
    # safetensors whose card text is a pickle
    save_file(
        {"w": torch.zeros(1)}, str(root / "evil.safetensors"), metadata={"card": pickle.dumps(Evil(marker)).hex()}
    )
    (root / "garbage.safetensors").write_bytes(os.urandom(300))
    (root / "empty.safetensors").write_bytes(b"")
    badcard = root / "badcard"
    badcard.mkdir()
    (badcard / "card.json").write_text("{not json")
    (badcard / "model.safetensors").write_bytes(b"")


def build_corpus(root: str | os.PathLike) -> Path:
    """Write the corpus into ``root/corpus`` and return that folder."""
    import h5py

    root = Path(root) / "corpus"
    root.mkdir(parents=True)
    rng = np.random.default_rng(27)
    good = rng.poisson(2.0, size=(6, 6, C)).astype(np.uint16)
    good[..., 80:84] += rng.poisson(20, size=(6, 6, 4)).astype(np.uint16)  # a line near 6.5 keV
    _h5(root / "good.h5", good)
    _h5(root / "uncal.h5", good, calibrated=False)
    np.save(root / "good.npy", good)
    # counts that are not counts
    for name, value in (("nan", np.nan), ("inf", np.inf), ("neg", -5.0)):
        bad = good.astype(np.float32)
        bad[2, 3, 17] = value
        _h5(root / f"{name}.h5", bad)
    _h5(root / "huge.h5", good.astype(np.float64) * 1e30)
    _h5(root / "zeros.h5", np.zeros_like(good))
    _h5(root / "pixel.h5", good[:1, :1])
    _h5(root / "onechannel.h5", good[..., :1], calibrated=False)
    _h5(root / "badcal.h5", good, calibrated=False)
    with h5py.File(root / "badcal.h5", "a") as f:
        f["spectra"].attrs["energy_gain_kev"] = -1.0
        f["spectra"].attrs["energy_offset_kev"] = 0.0
    with h5py.File(root / "flat.h5", "w") as f:
        f.create_dataset("spectra", data=good[0])
    with h5py.File(root / "fourd.h5", "w") as f:
        f.create_dataset("spectra", data=good[None])
    with h5py.File(root / "strings.h5", "w") as f:
        f.create_dataset("spectra", data=np.array([b"a", b"b"]))
    with h5py.File(root / "nodata.h5", "w") as f:
        f.attrs["title"] = "nothing here"
    with h5py.File(root / "two.h5", "w") as f:
        f.create_dataset("a", data=good)
        f.create_dataset("b", data=good)
    raw = (root / "good.h5").read_bytes()
    (root / "truncated.h5").write_bytes(raw[: len(raw) // 2])
    (root / "empty.h5").write_bytes(b"")
    (root / "garbage.h5").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (root / "garbage.npy").write_bytes(b"\x93NUMPY garbage that is not an array")
    (root / "text.npy").write_text("1 2 3\n")
    np.save(root / "object.npy", np.array([Evil(str(root / "PICKLE_RAN"))], dtype=object), allow_pickle=True)
    np.save(root / "complex.npy", good.astype(np.complex64))
    (root / "folder.h5").mkdir()
    os.mkfifo(root / "fifo.h5")
    os.mkfifo(root / "fifo.npy")
    os.mkfifo(root / "fifo.png")
    (root / "dangling.h5").symlink_to(root / "missing-target.h5")
    (root / "notes.txt").write_text("not a cube")
    # ripple .rpl + .raw (issue 28): good, its .raw missing, too short, a header that is no header
    header = (
        "key\tvalue\nwidth\t6\nheight\t6\ndepth\t{c}\noffset\t0\ndata-length\t2\ndata-type\tunsigned\n"
        "byte-order\tlittle-endian\nrecord-by\tvector\ndepth-scale\t{g}\ndepth-origin\t0\n"
        "depth-units\tkeV\nwidth-scale\t50\nheight-scale\t50\nwidth-units\tum\nheight-units\tum\n"
    )
    for name in ("good", "noraw", "short"):
        (root / f"{name}.rpl").write_text(header.format(c=C, g=GAIN))
    good.astype("<u2").tofile(root / "good.raw")
    (root / "short.raw").write_bytes(good.astype("<u2").tobytes()[:1000])
    (root / "garbage.rpl").write_bytes(rng.integers(0, 256, 512, dtype=np.uint8).tobytes())
    (root / "garbage.raw").write_bytes(good.astype("<u2").tobytes())
    try:
        import zarr

        z = zarr.open(str(root / "good.zarr"), mode="w", shape=good.shape, dtype=good.dtype)
        z[:] = good
        z.attrs["energy_offset_kev"] = 0.0
        z.attrs["energy_gain_kev"] = GAIN
        z = zarr.open(str(root / "gainonly.zarr"), mode="w", shape=good.shape, dtype=good.dtype)
        z[:] = good
        z.attrs["energy_gain_kev"] = GAIN
    except ImportError:  # pragma: no cover - zarr is a dependency
        pass
    # images
    from PIL import Image

    img = (rng.random((32, 32)) * 60000).astype(np.uint16)
    Image.fromarray(img).save(root / "radiograph.png")
    np.save(root / "image.npy", img.astype(np.float32))
    np.save(root / "image-nan.npy", np.where(np.eye(32, dtype=bool), np.nan, img).astype(np.float32))
    np.save(root / "image-tiny.npy", img[:2, :2].astype(np.float32))
    np.save(root / "image-3d.npy", np.stack([img] * 3).astype(np.float32))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with h5py.File(root / "diff.h5", "w") as f:
        f.create_dataset("image", data=img.astype(np.float32)).attrs["span"] = 2
    with h5py.File(root / "diff-strspan.h5", "w") as f:
        f.create_dataset("image", data=img.astype(np.float32)).attrs["span"] = "two"
    with h5py.File(root / "diff-badspan.h5", "w") as f:
        f.create_dataset("image", data=img.astype(np.float32)).attrs["span"] = 7
    imgs = root / "images"
    imgs.mkdir()
    Image.fromarray(img).save(imgs / "a.png")
    Image.fromarray(img[::-1]).save(imgs / "b.png")
    for cls in ("a", "b"):  # a tiny image dataset (train/<class>/)
        (root / "dataset" / "train" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.roll(img, 5 * i + (cls == "b") * 11, axis=1)).save(
                root / "dataset" / "train" / cls / f"{i}.png"
            )
    _model_files(root)
    return root


def _existing(name: str, data: bytes = b"precious result", mode: int | None = None):
    def setup(folder: Path) -> None:
        (folder / name).write_bytes(data)
        if mode is not None:
            os.chmod(folder / name, mode)

    return setup


def _copy(src: Path, name: str):
    def setup(folder: Path) -> None:
        (folder / name).write_bytes(src.read_bytes())

    return setup


def _user_run_files(folder: Path) -> None:
    (folder / "m.csv").write_text("sample,Pb\n1,2\n")
    (folder / "m.resume").write_text("my notes")


def _readonly_folder(folder: Path) -> None:
    (folder / "ro").mkdir()
    os.chmod(folder / "ro", 0o555)


def _lock(path: str) -> str:
    """Code for a child that keeps ``path`` open for writing (HDF5 takes a file lock)."""
    return f"import h5py, sys, time\nf = h5py.File({path!r}, 'a')\nprint('ready', flush=True)\ntime.sleep(120)\n"


def cases(corpus: str | os.PathLike) -> list[Case]:
    """Every case of the sweep on the corpus in ``corpus``."""
    k = Path(corpus)

    def c(name: str) -> str:
        return str(k / name)

    out: list[Case] = []
    add = out.append
    # -- every cube reader input through every cube command -----------------------------------------
    cube_inputs = {  # file -> (expectation for reading, needle)
        "good.h5": ("good", ""),
        "good.npy": ("odd", ""),
        "good.zarr": ("good", ""),
        "pixel.h5": ("odd", ""),
        "zeros.h5": ("odd", ""),
        "uncal.h5": ("odd", ""),
        "onechannel.h5": ("odd", ""),
        "nan.h5": ("bad", "nan.h5"),
        "inf.h5": ("bad", "inf.h5"),
        "neg.h5": ("bad", "neg.h5"),
        "huge.h5": ("odd", ""),
        "badcal.h5": ("bad", "badcal.h5"),
        "flat.h5": ("bad", "flat.h5"),
        "fourd.h5": ("bad", "fourd.h5"),
        "strings.h5": ("bad", "strings.h5"),
        "nodata.h5": ("bad", "nodata.h5"),
        "two.h5": ("bad", "two.h5"),
        "truncated.h5": ("bad", "truncated.h5"),
        "empty.h5": ("bad", "empty.h5"),
        "garbage.h5": ("bad", "garbage.h5"),
        "garbage.npy": ("bad", "garbage.npy"),
        "text.npy": ("bad", "text.npy"),
        "object.npy": ("bad", "object.npy"),
        "complex.npy": ("bad", "complex.npy"),
        "folder.h5": ("bad", "folder.h5"),
        "fifo.h5": ("bad", "fifo.h5"),
        "fifo.npy": ("bad", "fifo.npy"),
        "dangling.h5": ("bad", "dangling.h5"),
        "notes.txt": ("bad", "notes.txt"),
        "missing.h5": ("bad", "missing.h5"),
        "gainonly.zarr": ("bad", "gain"),
        "good.rpl": ("good", ""),
        "noraw.rpl": ("bad", "noraw"),
        "short.rpl": ("bad", "short.rpl"),
        "garbage.rpl": ("bad", "garbage.rpl"),
    }
    every_command = {
        "good.h5",
        "good.npy",
        "pixel.h5",
        "zeros.h5",
        "uncal.h5",
        "nan.h5",
        "inf.h5",
        "neg.h5",
        "huge.h5",
        "badcal.h5",
        "strings.h5",
        "truncated.h5",
        "object.npy",
        "fifo.h5",
        "gainonly.zarr",
    }
    fast_inputs = {"good.h5", "nan.h5", "fifo.h5", "garbage.npy", "gainonly.zarr", "truncated.h5", "short.rpl"}
    for f, (expect, needle) in cube_inputs.items():
        reading_only = expect == "odd" or f in ("nan.h5", "inf.h5", "neg.h5", "huge.h5")
        # info reads the header only: value problems are found by --stats or by computing
        add(
            Case(
                f"info {f}",
                ["info", c(f)],
                "odd" if reading_only else expect,
                needle,
                group="cube",
                fast=f in fast_inputs,
            )
        )
        if f not in every_command:
            add(
                Case(
                    f"maps {f}",
                    ["maps", c(f), "out.h5", "--model", "roi", "--device", "cpu"],
                    expect,
                    needle,
                    group="cube",
                    fast=f in fast_inputs,
                )
            )
        if f not in every_command:  # the readers' refusals are the same for every command
            continue
        add(
            Case(
                f"info --stats {f}",
                ["info", "--stats", c(f)],
                "odd" if expect == "odd" or f == "huge.h5" else expect,
                needle,
                group="cube",
            )
        )
        for cmd in (
            [
                "cluster",
                c(f),
                "out.h5",
                "--method",
                "som",
                "--param",
                "rows=2",
                "--param",
                "cols=2",
                "--param",
                "pca_components=4",
            ],
            ["maps", c(f), "out.h5", "--model", "roi", "--device", "cpu"],
            ["probabilities", c(f), "out.h5", "--device", "cpu"],
        ):
            e = expect
            if cmd[0] == "maps" and f == "huge.h5":
                e, needle_ = "bad", "huge.h5"
            elif cmd[0] == "cluster" and f in (
                "pixel.h5",
                "zeros.h5",
                "onechannel.h5",
                "good.h5",
                "good.npy",
                "good.zarr",
                "uncal.h5",
                "huge.h5",
            ):
                e, needle_ = "odd", ""  # 36 pixels: under the clustering minimum, refused with a hint
            else:
                needle_ = needle
            add(Case(f"{cmd[0]} {f}", cmd, e, needle_, group="cube", fast=f in fast_inputs and cmd[0] == "maps"))
    # -- a cube open for writing by another process ------------------------------------------------------
    add(
        Case(
            "info on a cube locked by a writer",
            ["info", "locked.h5"],
            "bad",
            "in use",
            holder=_lock("locked.h5"),
            setup=_copy(k / "good.h5", "locked.h5"),
            group="cube",
            fast=True,
        )
    )
    # -- parameters ---------------------------------------------------------------------------------------
    som = [
        "cluster",
        c("good.h5"),
        "out.h5",
        "--method",
        "som",
        "--param",
        "rows=2",
        "--param",
        "cols=2",
        "--param",
        "trim=10",
    ]
    for p, needle in (
        ("pca_components=1000", "pca_components"),
        ("pca_components=0", "pca_components"),
        ("rows=100000", "rows"),
        ("cols=-1", "cols"),
        ("bin=100000", "bin"),
        ("trim=-5", "trim"),
        ("n_fit=0", "n_fit"),
        ("epochs=nan", "epochs"),
        ("lr=nan", "lr"),
        ("batch_size=0", "batch_size"),
        ("colour=1", "colour"),
        ("rows=x", "rows"),
    ):
        add(
            Case(
                f"cluster som {p}", som + ["--param", p], "bad", needle, group="param", fast=p == "pca_components=1000"
            )
        )
    um = [
        "cluster",
        c("good.h5"),
        "out.h5",
        "--method",
        "umap-hdbscan",
        "--param",
        "min_cluster_size=5",
        "--param",
        "n_neighbors=5",
    ]
    for p, needle in (
        ("min_cluster_size=nan", "min_cluster_size"),
        ("min_cluster_size=-1", "min_cluster_size"),
        ("n_neighbors=0", "n_neighbors"),
        ("n_neighbors=1000000", "n_neighbors"),
        ("n_components=1000", "n_components"),
        ("min_dist=inf", "min_dist"),
    ):
        add(
            Case(
                f"cluster umap {p}", um + ["--param", p], "bad", needle, group="param", fast=p == "min_cluster_size=nan"
            )
        )
    diff = ["diffraction", c("diff.h5"), "out.h5", "--model", "analytic"]
    for flag, value, needle in (
        ("--tophat", "1000", "tophat"),
        ("--tophat", "1000000", "tophat"),
        ("--tophat", "-1", "tophat"),
        ("--span", "9", "span"),
        ("--seed", "-1", "seed"),
    ):
        add(
            Case(
                f"diffraction {flag} {value}",
                diff + [flag, value],
                "bad",
                needle,
                group="param",
                fast=value == "1000000",
            )
        )
    add(Case("diffraction --tophat 3", diff + ["--tophat", "3"], "good", group="param"))
    for flag, value, needle in (
        ("--region", "1000", "region"),
        ("--region", "0", "region"),
        ("--elements", "Xx", "Xx"),
        ("--gain-kev", "nan", "gain"),
        ("--offset-kev", "nan", "offset"),
    ):
        extra = ["--gain-kev", "0.08"] if flag == "--offset-kev" else []
        add(
            Case(
                f"probabilities {flag} {value}",
                ["probabilities", c("good.h5"), "out.h5", flag, value, *extra, "--device", "cpu"],
                "bad",
                needle,
                group="param",
            )
        )
    add(
        Case(
            "maps --lines Xx-K",
            ["maps", c("good.h5"), "out.h5", "--lines", "Xx-K", "--model", "roi"],
            "bad",
            "Xx",
            group="param",
        )
    )
    add(Case("cluster --seed -1", som + ["--seed", "-1"], "bad", "seed", group="param"))
    add(
        Case(
            "simulate painting --seed -1",
            ["simulate", "painting", "out.h5", "--seed", "-1", "--height", "4", "--width", "4", "--channels", "64"],
            "bad",
            "seed",
            group="param",
        )
    )
    sim = ["simulate", "painting", "out.h5"]
    for flags, needle in (
        (["--height", "100000", "--width", "100000"], "height"),
        (["--channels", "1000000000"], "channels"),
        (["--dwell-ms", "inf"], "dwell"),
        (["--height", "0"], "height"),
    ):
        add(
            Case(
                f"simulate painting {' '.join(flags)}",
                sim + flags,
                "bad",
                needle,
                group="param",
                fast=flags[0] == "--channels",
            )
        )
    for flags, needle in ((["--size", "1000000"], "size"), (["--n", "100000000"], "n"), (["--size", "2"], "size")):
        add(
            Case(
                f"simulate radiographs {' '.join(flags)}",
                ["simulate", "radiographs", "ds", *flags],
                "bad",
                needle,
                group="param",
            )
        )
    # -- outputs: clashes, existing files, read-only, long names -----------------------------------------
    maps = ["maps", c("good.h5")]
    add(
        Case(
            "maps OUT = the input",
            maps + [c("good.h5"), "--model", "roi"],
            "bad",
            "overwrite the input",
            group="output",
        )
    )
    add(
        Case(
            "maps OUT exists",
            maps + ["out.h5", "--model", "roi"],
            "bad",
            "--overwrite",
            setup=_existing("out.h5"),
            group="output",
            fast=True,
        )
    )
    add(
        Case(
            "maps OUT exists --overwrite",
            maps + ["out.h5", "--model", "roi", "--overwrite"],
            "good",
            setup=_existing("out.h5"),
            may_change=("out.h5",),
            group="output",
        )
    )
    add(
        Case(
            "maps OUT read-only --overwrite",
            maps + ["out.h5", "--model", "roi", "--overwrite"],
            "bad",
            "read-only",
            setup=_existing("out.h5", mode=0o444),
            group="output",
            fast=True,
        )
    )
    add(Case("maps OUT is a folder", maps + [str(k), "--model", "roi"], "bad", "", group="output"))
    add(
        Case(
            "maps OUT in a missing folder",
            maps + ["no/out.h5", "--model", "roi"],
            "bad",
            "does not exist",
            group="output",
        )
    )
    add(
        Case(
            "maps OUT in a read-only folder",
            maps + ["ro/out.h5", "--model", "roi"],
            "bad",
            "not writable",
            setup=_readonly_folder,
            group="output",
        )
    )
    add(
        Case(
            "maps OUT name of 248 characters",
            maps + ["x" * 245 + ".h5", "--model", "roi"],
            "good",
            group="output",
            fast=True,
        )
    )
    add(
        Case(
            "maps OUT name of 300 characters",
            maps + ["x" * 297 + ".h5", "--model", "roi"],
            "bad",
            "too long",
            group="output",
        )
    )
    add(Case("maps OUT wrong suffix", maps + ["out.png", "--model", "roi"], "bad", ".h5", group="output"))
    add(
        Case(
            "cluster OUT exists",
            som[:5] + ["--param", "rows=2", "--param", "cols=2"],
            "bad",
            "--overwrite",
            setup=_existing("out.h5"),
            group="output",
        )
    )
    add(
        Case(
            "probabilities OUT exists",
            ["probabilities", c("good.h5"), "out.h5"],
            "bad",
            "--overwrite",
            setup=_existing("out.h5"),
            group="output",
        )
    )
    add(
        Case(
            "diffraction OUT exists",
            diff[:2] + ["out.h5", "--model", "analytic"],
            "bad",
            "--overwrite",
            setup=_existing("out.h5"),
            group="output",
            fast=True,
        )
    )
    add(
        Case(
            "diffraction OUT read-only --overwrite",
            diff[:2] + ["out.h5", "--model", "analytic", "--overwrite"],
            "bad",
            "read-only",
            setup=_existing("out.h5", mode=0o444),
            group="output",
        )
    )
    add(
        Case(
            "simulate OUT exists",
            ["simulate", "painting", "out.h5", "--height", "4", "--width", "4", "--channels", "64"],
            "bad",
            "--overwrite",
            setup=_existing("out.h5"),
            group="output",
        )
    )
    add(
        Case(
            "simulate radiographs into a non-empty folder",
            ["simulate", "radiographs", "."],
            "bad",
            "not an empty",
            setup=_existing("keep.txt"),
            group="output",
        )
    )
    # classify-image --cam
    cls = ["classify-image", "--device", "cpu"]
    add(
        Case(
            "classify-image FOLDER --cam FOLDER",
            cls + [c("images"), "--cam", c("images")],
            "bad",
            "input image",
            group="output",
            fast=True,
        )
    )
    add(
        Case(
            "classify-image FOLDER --cam FOLDER --overwrite",
            cls + [c("images"), "--cam", c("images"), "--overwrite"],
            "bad",
            "input image",
            group="output",
        )
    )
    add(
        Case(
            "classify-image --cam an existing map",
            cls + [c("radiograph.png"), "--cam", "."],
            "bad",
            "--overwrite",
            setup=_existing("radiograph.png"),
            group="output",
            fast=True,
        )
    )
    add(
        Case(
            "classify-image --cam a read-only folder",
            cls + [c("radiograph.png"), "--cam", "ro"],
            "bad",
            "not writable",
            setup=_readonly_folder,
            group="output",
        )
    )
    add(
        Case(
            "classify-image --cam a file",
            cls + [c("radiograph.png"), "--cam", c("notes.txt")],
            "bad",
            "folder",
            group="output",
        )
    )
    add(Case("classify-image --cam new folder", cls + [c("radiograph.png"), "--cam", "cams"], "good", group="output"))
    # train: the user's files beside the model
    small = [
        "--param",
        "n_train=64",
        "--param",
        "n_val=32",
        "--param",
        f"n_channels={C}",
        "--param",
        f"gain_kev={GAIN}",
        "--model-param",
        "hidden=8",
        "--device",
        "cpu",
        "--epochs",
        "1",
    ]
    add(
        Case(
            "train beside the user's .csv and .resume",
            ["train", "maps", "m.safetensors", *small],
            "bad",
            "not written by a training run",
            setup=_user_run_files,
            group="output",
            fast=True,
            timeout=120,
        )
    )
    add(
        Case(
            "train beside the user's files --overwrite",
            ["train", "maps", "m.safetensors", *small, "--overwrite"],
            "bad",
            "not written by a training run",
            setup=_user_run_files,
            group="output",
            timeout=120,
        )
    )
    add(
        Case(
            "train over a non-model file",
            ["train", "maps", "m.safetensors", *small, "--overwrite"],
            "bad",
            "not a model",
            setup=_existing("m.safetensors"),
            group="output",
            timeout=120,
        )
    )
    # -- model files -----------------------------------------------------------------------------------
    for f, needle in (
        ("maps-3outputs.safetensors", "outputs"),
        ("maps-wrongchannels.safetensors", "n_channels"),
        ("maps-as-images.safetensors", "images"),
        ("evil.pt", "evil.pt"),
        ("evil.pkl", "evil.pkl"),
        ("evil.safetensors", "evil.safetensors"),
        ("garbage.safetensors", "garbage.safetensors"),
        ("empty.safetensors", "empty.safetensors"),
        ("badcard", "badcard"),
        ("missing.safetensors", "missing"),
    ):
        add(
            Case(
                f"maps --model {f}",
                ["maps", c("good.h5"), "out.h5", "--model", c(f), "--device", "cpu"],
                "bad",
                needle,
                group="model",
                fast=f in ("maps-3outputs.safetensors", "evil.pt"),
            )
        )
        if f not in ("maps-wrongchannels.safetensors",):
            add(
                Case(
                    f"classify-image --model {f}",
                    cls + [c("radiograph.png"), "--model", c(f)],
                    "bad",
                    needle if f != "maps-3outputs.safetensors" else "maps",
                    group="model",
                )
            )
    add(
        Case(
            "maps --model maps-ok.safetensors",
            ["maps", c("good.h5"), "out.h5", "--model", c("maps-ok.safetensors"), "--device", "cpu"],
            "good",
            group="model",
            fast=True,
        )
    )
    for f in ("evil.pt", "garbage.safetensors", "radiograph.png"):
        add(
            Case(
                f"train images --model-param weights={f}",
                [
                    "train",
                    "images",
                    "m",
                    "--model",
                    "resnet18",
                    "--model-param",
                    f"weights={c(f)}",
                    "--param",
                    f"root={c('dataset')}",
                    "--epochs",
                    "1",
                ],
                "bad",
                f,
                group="model",
                timeout=120,
            )
        )
    # -- images ------------------------------------------------------------------------------------------
    for f, expect in (
        ("radiograph.png", "good"),
        ("image.npy", "good"),
        ("image-nan.npy", "bad"),
        ("image-tiny.npy", "bad"),
        ("image-3d.npy", "bad"),
        ("broken.png", "bad"),
        ("fifo.png", "bad"),
        ("garbage.npy", "bad"),
        ("object.npy", "bad"),
        ("notes.txt", "bad"),
        ("missing.png", "bad"),
    ):
        add(
            Case(
                f"classify-image {f}",
                cls + [c(f)],
                expect,
                f if expect == "bad" else "",
                group="image",
                fast=f in ("fifo.png", "object.npy"),
            )
        )
        add(
            Case(
                f"diffraction {f}",
                ["diffraction", c(f), "out.h5", "--model", "analytic", "--span", "2"],
                expect if f != "image-3d.npy" else "bad",
                f if expect == "bad" else "",
                group="image",
            )
        )
    for f, needle in (("diff-strspan.h5", "span"), ("diff-badspan.h5", "span")):
        add(
            Case(
                f"diffraction {f}",
                ["diffraction", c(f), "out.h5", "--model", "analytic"],
                "bad",
                needle,
                group="image",
                fast=f == "diff-strspan.h5",
            )
        )
    # -- training from cubes -------------------------------------------------------------------------
    for f, needle in (("nan.h5", "nan.h5"), ("inf.h5", "inf.h5"), ("neg.h5", "neg.h5")):
        for stride in ("1", "10"):
            add(
                Case(
                    f"train maps cubes {f} stride {stride}",
                    [
                        "train",
                        "maps",
                        "m",
                        "--source",
                        "cubes",
                        "--param",
                        f"cubes={c(f)}",
                        "--param",
                        f"stride={stride}",
                        "--epochs",
                        "1",
                        "--device",
                        "cpu",
                    ],
                    "bad",
                    needle,
                    group="train",
                    timeout=120,
                    fast=f == "neg.h5" and stride == "10",
                )
            )
    return out
