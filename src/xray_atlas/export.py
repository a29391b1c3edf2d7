"""Result files out of xray-atlas: TIFF images, figures, an overview sheet and spectra tables.

A result file (docs/dev/contracts.md section 3) is HDF5, which image viewers, GIS and spreadsheets
do not open. :func:`export_result` writes what they do open, into a folder:

* ``tiff``: one float32 TIFF per map or probability, ``<line or symbol>.tif``, holding exactly
  the stored values, with the pixel size in the TIFF resolution tags (pixels per centimetre,
  ``ResolutionUnit`` CENTIMETER: ImageJ/Fiji show it in cm) and in the GeoTIFF
  ``ModelPixelScale``/``ModelTiepoint`` tags (millimetres, for GDAL and QGIS); a cluster result
  adds ``clusters.tif`` (int32: cluster k is value k, as the spectra tables and napari number
  them; 0 is noise, the file's -1), a result of a fit-based map model ``reduced_chi2.tif`` (its
  fit's reduced chi-square, ``/fit/reduced_chi2``, float32, NaN where not defined);
* ``png``: one figure per map or probability, ``<line or symbol>.png``, in the element's colour
  with a colour bar in the map's units, a scale bar and a title; ``clusters.png`` for clusters;
  and the overview sheet;
* ``sheet``: the overview sheet alone, ``overview.png`` and ``overview.pdf``: every map on one
  page with its title and colour bar, under a header naming the file, model and units;
* ``csv``: ``cluster_spectra.csv`` (the mean spectrum of each cluster) and
  ``region_spectra.csv`` (named region or pinned-pixel spectra), one column per spectrum beside
  an ``energy_kev`` column (``channel`` when the result has no energy axis);
* ``rgb``: an RGB composite of three maps or probabilities given as ``lines`` (red, green, blue;
  ``none`` leaves a channel black), ``rgb_<red>_<green>_<blue>.png`` and ``.tif``: 8-bit RGB at
  one pixel per map pixel, each channel from the 1st to the 99th percentile of its map
  (``percentiles``; :func:`xray_atlas.compare.rgb_composite`), the pixel size in the PNG's
  ``pHYs`` chunk and in the TIFF's tags as above.

Several formats may go into one folder in one call (napari's export folder writer does).
:func:`write_map` writes one map to a file of any name (napari's ``.tif``/``.png`` writers),
:func:`write_rgb` one composite and :func:`write_spectra_table` one table.

Every file goes through :mod:`xray_atlas._files`: all destinations are checked before the
first is written, an existing file is replaced only with ``overwrite``, each file appears
complete under its name or not at all, with the umask's mode. A failed or cancelled export
removes the files it had made (and the folders, if it made them).

matplotlib (Agg, no pyplot) and tifffile are imported only when a file is written.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .colours import element_colour, line_symbol
from .cube import Progress, run_to_end
from .errors import XrayAtlasError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FORMATS",
    "ResultSet",
    "Exported",
    "read_result",
    "output_names",
    "iter_export",
    "export_result",
    "write_tiff",
    "write_map",
    "write_rgb",
    "rgb_description",
    "write_spectra_table",
    "value_label",
    "scale_bar_length",
]

#: Export formats: what each writes is in the module's docstring.
FORMATS = ("tiff", "png", "sheet", "csv", "rgb")

#: Percentile of a map's values at the top of its colour scale: one hot pixel (a pile-up spike,
#: a dust grain) would otherwise leave the rest of the map black.
TOP_PERCENTILE = 99.5

_SAFE = re.compile(r"[^A-Za-z0-9._()+-]")  # a map's name in a file name (napari layer names may hold any)
# Figure geometry, inches: A4, the sheet's header, page margins, a colour bar and its gap, the
# room right of an image for its colour bar, ticks and label, the title band above an image,
# the gap between two cells of the sheet (small: the sheet's panels)
_A4 = (210 / 25.4, 297 / 25.4)
_HEADER_IN = 0.45
_MARGIN_IN = 0.25
_BAR_IN, _BAR_GAP_IN = 0.1, 0.06
_RIGHT_IN, _RIGHT_SMALL_IN = 1.05, 0.8
_TITLE_IN, _TITLE_SMALL_IN = 0.35, 0.25
_GAP_IN = 0.12


def _by_element(name: str) -> tuple[int, str]:
    """Sort key: atomic number, then the name (``S-K`` before ``Pb-L``); other names last."""
    from .physics.lines import atomic_number

    try:
        return atomic_number(line_symbol(name)), name
    except Exception:  # noqa: BLE001 - not an element's name
        return 1000, name


@dataclass(frozen=True)
class ResultSet:
    """What an export draws from: a result file's contents, or a viewer's layers.

    Parameters
    ----------
    maps : dict
        Line family -> (H, W) map (net counts, or counts per second: ``units``).
    probabilities : dict
        Element symbol -> (H, W) probabilities in [0, 1].
    labels : (H, W) int array, optional
        Cluster labels in the file's convention: 0..K-1, -1 for noise.
    cluster_spectra : (K, C) array, optional
        Mean spectrum of each cluster.
    region_spectra : dict
        Name -> (C,) spectrum of a region or pinned pixel.
    energy : (C,) array, optional
        Energy of each channel of the spectra, keV.
    model : str
        The model or method that made the result.
    source : str
        The file (or cube) the result came from, for titles.
    units : str, optional
        ``"counts"`` or ``"counts/s"`` (root attr ``units``); None: net counts.
    pixel_size_um : float, optional
        Side of a pixel in micrometres, when known.
    path : Path, optional
        The result file itself: never written over.
    reduced_chi2 : (H, W) array, optional
        The fit's reduced chi-square of each pixel (``/fit/reduced_chi2`` of a fit-based map
        model's result).
    """

    maps: dict = field(default_factory=dict)
    probabilities: dict = field(default_factory=dict)
    labels: np.ndarray | None = None
    cluster_spectra: np.ndarray | None = None
    region_spectra: dict = field(default_factory=dict)
    energy: np.ndarray | None = None
    model: str = ""
    source: str = ""
    units: str | None = None
    pixel_size_um: float | None = None
    path: Path | None = None
    reduced_chi2: np.ndarray | None = None

    @property
    def images(self) -> list[tuple[str, str, np.ndarray]]:
        """(kind, name, array) of every map, then every probability, each by atomic number."""
        return [("map", k, self.maps[k]) for k in sorted(self.maps, key=_by_element)] + [
            ("probability", k, self.probabilities[k]) for k in sorted(self.probabilities, key=_by_element)
        ]

    def has_spectra(self) -> bool:
        return self.cluster_spectra is not None or bool(self.region_spectra)


@dataclass
class Exported:
    """What :func:`export_result` wrote: the folder, the files in writing order, and notes
    (what the export could not do: no pixel size, no energy axis)."""

    folder: Path
    files: list[Path]
    notes: list[str] = field(default_factory=list)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _pixel_size(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def read_result(path: str | os.PathLike) -> ResultSet:
    """Read what can be exported from a result file (docs/dev/contracts.md section 3).

    Reads ``/maps``, ``/probabilities``, ``/labels``, ``/cluster_spectra``, ``/region_spectra``,
    ``/fit/reduced_chi2``, ``/energy`` (or the root attrs ``energy_offset_kev``/``energy_gain_kev``) and the root attrs
    ``model``, ``units`` and ``pixel_size_um`` (each optional).

    Raises
    ------
    XrayAtlasError
        A missing or unreadable file, a spectral cube instead of a result, a result with
        nothing to export, or datasets of the wrong shape; the message names the file.
    """
    import h5py

    from ._files import check_input

    path = check_input(path)
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise XrayAtlasError("not a readable HDF5 result file", path=path) from None
    with f:
        if isinstance(f.get("spectra"), h5py.Dataset) and f["spectra"].ndim == 3:
            raise XrayAtlasError(
                "is a spectral cube, not a result file: run xray-atlas maps, probabilities or "
                "cluster on it, then export their result",
                path=path,
            )

        def group(name: str, ndim: int) -> dict[str, np.ndarray]:
            g = f.get(name)
            if not isinstance(g, h5py.Group):
                return {}
            out = {}
            for key, ds in g.items():
                if not isinstance(ds, h5py.Dataset):
                    continue
                arr = np.asarray(ds[()])
                if arr.ndim != ndim or arr.dtype.kind not in "fiu":
                    raise XrayAtlasError(
                        f"/{name}/{key} must be a {ndim}-D numeric dataset, got {arr.dtype} {arr.shape}", path=path
                    )
                out[key] = arr
            return out

        def dataset(name: str, ndim: int, kinds: str = "fiu") -> np.ndarray | None:
            ds = f.get(name)
            if not isinstance(ds, h5py.Dataset):
                return None
            arr = np.asarray(ds[()])
            if arr.ndim != ndim or arr.dtype.kind not in kinds:
                raise XrayAtlasError(
                    f"/{name} must be a {ndim}-D {'integer' if kinds == 'iu' else 'numeric'} "
                    f"dataset, got {arr.dtype} {arr.shape}",
                    path=path,
                )
            return arr

        maps, probs = group("maps", 2), group("probabilities", 2)
        chi2 = dataset("fit/reduced_chi2", 2, "f")
        labels = dataset("labels", 2, "iu")
        cluster_spectra = dataset("cluster_spectra", 2)
        regions = group("region_spectra", 1)
        energy = dataset("energy", 1)
        attrs = dict(f.attrs)
    shapes = {a.shape for a in (*maps.values(), *probs.values())} | ({labels.shape} if labels is not None else set())
    if chi2 is not None:
        shapes.add(chi2.shape)
    if len(shapes) > 1:
        raise XrayAtlasError(f"its maps have different shapes: {sorted(shapes)}", path=path)
    if any(0 in s for s in shapes):
        raise XrayAtlasError("its maps are empty (0 pixels)", path=path)
    if not (maps or probs or labels is not None or cluster_spectra is not None or regions):
        raise XrayAtlasError(
            "holds no maps, probabilities, clusters or spectra to export (a result file of "
            "xray-atlas maps, probabilities or cluster holds them)",
            path=path,
        )
    spectra = ([cluster_spectra] if cluster_spectra is not None else []) + list(regions.values())
    channels = {s.shape[-1] for s in spectra}
    if len(channels) > 1:
        raise XrayAtlasError(f"its spectra have different channel counts: {sorted(channels)}", path=path)
    if energy is None and "energy_gain_kev" in attrs and channels:
        offset, gain = float(attrs.get("energy_offset_kev", 0.0)), float(attrs["energy_gain_kev"])
        energy = offset + gain * np.arange(channels.pop())
    elif energy is not None and channels and energy.shape[0] not in channels:
        raise XrayAtlasError(f"/energy has {energy.shape[0]} channels and the spectra {channels.pop()}", path=path)
    units = _text(attrs["units"]) if "units" in attrs else None
    return ResultSet(
        maps=maps,
        probabilities=probs,
        labels=labels,
        cluster_spectra=cluster_spectra,
        region_spectra=regions,
        energy=energy,
        model=_text(attrs.get("model", "")),
        source=path.name,
        units=units,
        pixel_size_um=_pixel_size(attrs.get("pixel_size_um")),
        path=path,
        reduced_chi2=chi2,
    )


def value_label(kind: str, units: str | None = None) -> str:
    """The colour bar's label: ``probability``, ``net counts`` or ``net counts/s``."""
    if kind == "probability":
        return "probability"
    if units in (None, "", "counts"):
        return "net counts"
    if units == "counts/s":
        return "net counts/s"
    return units


def scale_bar_length(pixel_size_um: float, width_px: int, *, fraction: float = 0.2) -> tuple[float, str]:
    """A round scale bar length (1, 2 or 5 times a power of ten) of at most ``fraction`` of the
    image's width: (micrometres, label in um or mm)."""
    target = max(pixel_size_um, fraction * width_px * pixel_size_um)
    base = 10 ** math.floor(math.log10(target))
    length = max(m * base for m in (1, 2, 5) if m * base <= target)
    label = f"{length / 1000:g} mm" if length >= 1000 else f"{length:g} \u00b5m"
    return length, label


def _file_stem(name: str) -> str:
    stem = _SAFE.sub("_", name).strip("._") or "map"
    return stem


def _select(result: ResultSet, lines: Sequence[str] | None) -> list[tuple[str, str, np.ndarray]]:
    images = result.images
    if lines is None:
        return images
    by_name: dict[str, list] = {}
    for item in images:
        by_name.setdefault(item[1].lower(), []).append(item)
    chosen, unknown = [], []
    for ln in lines:
        hits = by_name.get(str(ln).strip().lower())
        if hits is None:
            unknown.append(str(ln))
        else:
            chosen += [h for h in hits if h not in chosen]
    if unknown:
        held = ", ".join(name for _, name, _ in images) or "no maps or probabilities"
        raise XrayAtlasError(f"lines: {', '.join(unknown)} not in the result (it holds {held})", path=result.path)
    return chosen


def _plan(result: ResultSet, format: str | Sequence[str], lines: Sequence[str] | None) -> list[tuple[str, str, Any]]:
    """(file name, what, item) of every file the export writes, in writing order."""
    formats = [format] if isinstance(format, str) else list(format)
    if not formats:
        raise XrayAtlasError(f"format: choose one or more of {', '.join(FORMATS)}")
    plan = [item for f in dict.fromkeys(formats) for item in _plan_one(result, f, lines)]
    names = [p[0] for p in plan]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise XrayAtlasError(f"two maps would be written to the same file: {', '.join(twice)}", path=result.path)
    return plan


def _plan_one(result: ResultSet, format: str, lines: Sequence[str] | None) -> list[tuple[str, str, Any]]:
    if format not in FORMATS:
        raise XrayAtlasError(f"format={format!r}: choose one of {', '.join(FORMATS)}")
    if lines is not None and not lines:
        lines = None
    if format == "rgb":
        channels = _rgb_channels(result, lines)
        stem = "rgb_" + "_".join(_file_stem(item[1]) if item else "none" for item in channels)
        return [(stem + ".png", "rgb", channels), (stem + ".tif", "rgb", channels)]
    if format == "csv":
        if lines is not None:
            raise XrayAtlasError("lines selects maps and probabilities; the csv format writes spectra")
        plan = []
        if result.cluster_spectra is not None:
            plan.append(("cluster_spectra.csv", "cluster spectra", None))
        if result.region_spectra:
            plan.append(("region_spectra.csv", "region spectra", None))
        if not plan:
            raise XrayAtlasError(
                "nothing to export as csv: the result holds no spectra (cluster means or regions); "
                "choose tiff, png or sheet for its maps",
                path=result.path,
            )
        return plan
    images = _select(result, lines)
    clusters = result.labels is not None and lines is None
    chi2 = format == "tiff" and result.reduced_chi2 is not None and lines is None
    if not images and not clusters and not chi2:
        raise XrayAtlasError(
            f"nothing to export as {format}: the result holds no maps, probabilities or clusters; "
            "choose csv for its spectra",
            path=result.path,
        )
    suffix = {"tiff": ".tif", "png": ".png"}.get(format)
    plan = []
    if suffix:
        plan += [(_file_stem(name) + suffix, kind, (kind, name, arr)) for kind, name, arr in images]
        if clusters:
            plan.append(("clusters" + suffix, "clusters", None))
        if chi2:  # its values, for GIS and ImageJ
            plan.append(("reduced_chi2.tif", "chi2", None))
    if format in ("png", "sheet"):
        plan += [("overview.png", "sheet", (images, clusters)), ("overview.pdf", "sheet", (images, clusters))]
    return plan


_NO_CHANNEL = ("none", "-", "")


def _rgb_channels(result: ResultSet, lines: Sequence[str] | None) -> list[tuple[str, str, np.ndarray] | None]:
    """The (kind, name, array) of the red, green and blue maps; None for a black channel."""
    hint = "give three maps or probabilities, red, green and blue, e.g. Pb-L,Hg-L,Cu-K ('none' leaves a channel black)"
    if lines is None or len(lines) != 3:
        raise XrayAtlasError(
            f"lines: the rgb format takes exactly three: {hint}; got {'none' if lines is None else len(lines)}",
            path=result.path,
        )
    by_name: dict[str, tuple[str, str, np.ndarray]] = {}
    for item in result.images:
        by_name.setdefault(item[1].lower(), item)
    out: list[tuple[str, str, np.ndarray] | None] = []
    unknown = []
    for ln in lines:
        key = str(ln).strip().lower()
        if key in _NO_CHANNEL:
            out.append(None)
        elif key in by_name:
            out.append(by_name[key])
        else:
            unknown.append(str(ln))
    if unknown:
        held = ", ".join(name for _, name, _ in result.images) or "no maps or probabilities"
        raise XrayAtlasError(f"lines: {', '.join(unknown)} not in the result (it holds {held})", path=result.path)
    if all(c is None for c in out):
        raise XrayAtlasError(f"lines: all three channels are 'none': {hint}")
    return out


def output_names(
    result: ResultSet, *, format: str | Sequence[str] = "tiff", lines: Sequence[str] | None = None
) -> list[str]:
    """The names of the files :func:`export_result` would write (to ask before replacing them)."""
    return [name for name, _, _ in _plan(result, format, lines)]


def _prepare_folder(folder: Path) -> list[Path]:
    """Check that ``folder`` is, or can become, a writable folder; the folders to make, deepest
    first (none when it exists)."""
    from ._files import writable

    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise XrayAtlasError("output folder exists and is not a folder", path=folder)
        if not writable(folder):
            raise XrayAtlasError("output folder is not writable", path=folder)
        return []
    missing = [folder]
    while not missing[-1].parent.exists() and missing[-1].parent != missing[-1]:
        missing.append(missing[-1].parent)
    parent = missing[-1].parent
    if not parent.is_dir():
        raise XrayAtlasError("cannot make the output folder here (a file is in its path)", path=folder)
    if not writable(parent):
        raise XrayAtlasError("cannot make the output folder here (not writable)", path=folder)
    return missing


def iter_export(
    result: ResultSet | str | os.PathLike,
    folder: str | os.PathLike,
    *,
    format: str | Sequence[str] = "tiff",
    lines: Sequence[str] | None = None,
    overwrite: bool = False,
    pixel_size_um: float | None = None,
    percentiles: Sequence[float] = (1.0, 99.0),
) -> Generator[Progress, None, Exported]:
    """Export a result into ``folder``, one :class:`~xray_atlas.cube.Progress` per file.

    Everything that can be refused is refused here, before the generator starts and before
    any file is written: the format, ``lines``, an empty result, and every destination
    (existing files without ``overwrite``, read-only files, the result file itself).

    Parameters
    ----------
    result : ResultSet or path-like
        What to export, or a result file (read with :func:`read_result`).
    folder : path-like
        The output folder; made (with its missing parents) when it does not exist.
    format : {"tiff", "png", "sheet", "csv", "rgb"} or a sequence of them
        What to write (see the module's docstring); several formats go into one folder.
    lines : sequence of str, optional
        Maps (``"Fe-K"``) or probabilities (``"Fe"``) to export; all when None. For ``rgb``
        exactly three, red, green and blue (``"none"`` for a black channel).
    overwrite : bool
        Whether existing files in ``folder`` may be replaced.
    pixel_size_um : float, optional
        Pixel side in micrometres, for a result that does not state it (or states it wrong).
    percentiles : (float, float)
        ``rgb``: each channel runs from this low to this high percentile of its map's values
        (default 1st to 99th).

    Returns
    -------
    generator
        Yields Progress; returns an :class:`Exported`.
    """
    from ._files import check_destination

    if not isinstance(result, ResultSet):
        result = read_result(result)
    if pixel_size_um is not None:
        size = _pixel_size(pixel_size_um)
        if size is None:
            raise XrayAtlasError(f"pixel_size_um={pixel_size_um!r} must be a number > 0")
        result = _replace(result, pixel_size_um=size)
    plan = _plan(result, format, lines)
    if any(what == "rgb" for _, what, _ in plan):
        from .compare import check_percentiles

        percentiles = check_percentiles(percentiles)
    folder = Path(os.fspath(folder))
    make = _prepare_folder(folder)
    inputs = (result.path,) if result.path is not None else ()
    if not make:  # (a folder still to make holds nothing to replace)
        for name, _, _ in plan:
            check_destination(folder / name, inputs=inputs, overwrite=overwrite)
    return _run(result, folder, plan, make=make, inputs=inputs, overwrite=overwrite, percentiles=percentiles)


def _replace(result: ResultSet, **changes: Any) -> ResultSet:
    from dataclasses import replace

    return replace(result, **changes)


def _run(
    result: ResultSet,
    folder: Path,
    plan: list,
    *,
    make: list[Path],
    inputs: tuple,
    overwrite: bool,
    percentiles: Sequence[float] = (1.0, 99.0),
) -> Generator[Progress, None, Exported]:
    from ._files import check_destination

    made: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)  # the umask's modes, as any new folder
    except OSError as err:
        raise XrayAtlasError(f"cannot make the output folder ({err.strerror or err})", path=folder) from None
    notes = []
    spectra = {"cluster spectra", "region spectra"}
    if result.pixel_size_um is None and any(what not in spectra for _, what, _ in plan):
        notes.append(
            "the result does not state its pixel size: the figures have no scale bar and the TIFFs no resolution"
        )
    if result.energy is None and any(what in spectra for _, what, _ in plan):
        notes.append(
            "the result has no energy axis (/energy): the spectra tables have a channel column instead of energy_kev"
        )
    done: list[Path] = []
    try:
        for i, (name, what, item) in enumerate(plan):
            path = check_destination(folder / name, inputs=inputs, overwrite=overwrite)
            new = not path.exists()
            _write(path, what, item, result, percentiles=percentiles)
            if new:
                made.append(path)
            done.append(path)
            yield Progress(i + 1, len(plan), f"export {name}")
    except BaseException:
        for path in made:
            with contextlib.suppress(OSError):
                path.unlink()
        for path in make:  # deepest first; a folder someone else filled meanwhile stays
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return Exported(folder, done, notes)


def export_result(
    result: ResultSet | str | os.PathLike,
    folder: str | os.PathLike,
    *,
    format: str | Sequence[str] = "tiff",
    lines: Sequence[str] | None = None,
    overwrite: bool = False,
    pixel_size_um: float | None = None,
    percentiles: Sequence[float] = (1.0, 99.0),
) -> Exported:
    """Export a result into ``folder``; see :func:`iter_export` for the parameters."""
    return run_to_end(
        iter_export(
            result,
            folder,
            format=format,
            lines=lines,
            overwrite=overwrite,
            pixel_size_um=pixel_size_um,
            percentiles=percentiles,
        )
    )


# -- writers ------------------------------------------------------------------------------------


def _write(path: Path, what: str, item: Any, result: ResultSet, *, percentiles: Sequence[float] = (1.0, 99.0)) -> None:
    if what == "rgb":
        _write_composite(path, item, result, percentiles)
    elif what in ("map", "probability"):
        _write_map(path, result, *item)
    elif what == "clusters":
        _write_map(path, result, "clusters", "clusters", result.labels)
    elif what == "chi2":
        _write_map(path, result, "chi2", "reduced_chi2", result.reduced_chi2)
    elif what == "sheet":
        _save(_sheet_figure(result, *item), path, path.suffix.lstrip("."))
    elif what == "cluster spectra":
        write_spectra_table(path, result, which="clusters", overwrite=True)
    elif what == "region spectra":
        write_spectra_table(path, result, which="regions", overwrite=True)
    else:  # pragma: no cover - _plan makes only the kinds above
        raise AssertionError(what)


def _write_composite(path: Path, channels: list, result: ResultSet, percentiles: Sequence[float]) -> None:
    from .compare import rgb_composite

    names = [c[1] if c else None for c in channels]
    composite = rgb_composite(*(c[2] if c else None for c in channels), percentiles=percentiles)
    text = rgb_description(
        names,
        composite.limits,
        units=value_label("map", result.units),
        kinds=[c[0] if c else None for c in channels],
        model=result.model,
        source=result.source,
        pixel_size_um=result.pixel_size_um,
        percentiles=percentiles,
    )
    write_rgb(path, composite.rgb, pixel_size_um=result.pixel_size_um, description=text, overwrite=True)


def write_map(path: str | os.PathLike, result: ResultSet, name: str | None = None, *, overwrite: bool = False) -> Path:
    """Write one map of ``result``: its values as a TIFF (``.tif``, ``.tiff``; float32 maps,
    int32 clusters, the pixel size in the tags) or its figure (``.png``, ``.pdf``, ``.svg``).

    Parameters
    ----------
    path : path-like
        The file; its suffix chooses TIFF or figure.
    result : ResultSet
    name : str, optional
        A map (``"Fe-K"``), a probability (``"Fe"``) or ``"clusters"``; may be left out when
        the result holds one.
    overwrite : bool
        Whether an existing file may be replaced (a read-only one never is).
    """
    items = {n: (k, a) for k, n, a in result.images}
    if result.labels is not None:
        items.setdefault("clusters", ("clusters", result.labels))
    if result.reduced_chi2 is not None:
        items.setdefault("reduced_chi2", ("chi2", result.reduced_chi2))
    if name is None:
        if len(items) != 1:
            raise XrayAtlasError(f"name: the result holds {len(items)} maps; say which to write")
        name = next(iter(items))
    if name not in items:
        raise XrayAtlasError(f"name: {name!r} is not in the result (it holds {', '.join(items) or 'no maps'})")
    path = Path(os.fspath(path))
    if path.suffix.lower() not in (".tif", ".tiff", ".png", ".pdf", ".svg"):
        raise XrayAtlasError("a map is written as .tif or .tiff (values) or .png, .pdf or .svg (figure)", path=path)
    from ._files import check_destination

    check_destination(path, inputs=(result.path,) if result.path else (), overwrite=overwrite)
    kind, arr = items[name]
    if kind == "chi2" and path.suffix.lower() not in (".tif", ".tiff"):
        raise XrayAtlasError("the fit's reduced chi-square is written as a TIFF of its values (.tif)", path=path)
    _write_map(path, result, kind, name, arr)
    return path


def _write_map(path: Path, result: ResultSet, kind: str, name: str, arr: np.ndarray) -> None:
    """One map to a checked destination: TIFF of the values or figure, by suffix."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt in ("tif", "tiff"):
        data = _cluster_image(arr) if kind == "clusters" else np.asarray(arr, dtype=np.float32)
        write_tiff(
            path, data, pixel_size_um=result.pixel_size_um, description=_description(result, kind, name), overwrite=True
        )
    else:
        _save(_map_figure(result, kind, name, np.asarray(arr)), path, fmt, tight=0.08)


def _description(result: ResultSet, kind: str, name: str) -> str:
    what = {
        "map": value_label("map", result.units),
        "probability": "probability",
        "clusters": "cluster k = k, 0 = noise",
        "chi2": "the fit's reduced chi-square, about 1 within Poisson noise, NaN not defined",
    }[kind]
    text = f"xray-atlas {kind} {name} ({what})"
    if result.model:
        text += f"; model {result.model}"
    if result.source:
        text += f"; from {result.source}"
    if result.pixel_size_um:
        text += f"; pixel {result.pixel_size_um:g} um"
    return text.encode("ascii", "replace").decode("ascii")  # TIFF ASCII tag


def _cluster_image(labels: np.ndarray) -> np.ndarray:
    """Clusters 1..K, 0 for noise (the file's 0..K-1 and -1)."""
    lab = np.asarray(labels).astype(np.int32)
    return np.where(lab >= 0, lab + 1, 0).astype(np.int32)


def write_tiff(
    path: str | os.PathLike,
    image: np.ndarray,
    *,
    pixel_size_um: float | None = None,
    description: str = "",
    overwrite: bool = False,
) -> Path:
    """Write one 2-D image as a TIFF of its own dtype (float32 maps are stored bit for bit).

    With ``pixel_size_um`` the pixel size goes into the baseline resolution tags (XResolution,
    YResolution in pixels per centimetre, ResolutionUnit CENTIMETER: ImageJ/Fiji, GIMP and
    tifffile read them) and into the GeoTIFF tags ModelPixelScale (millimetres per pixel) and
    ModelTiepoint (pixel (0, 0) at (0, 0) mm), from which GDAL, and so QGIS, place the image.
    """
    import tifffile

    from ._files import atomic_file, check_destination

    arr = np.asarray(image)
    if arr.ndim != 2:
        raise XrayAtlasError(f"a TIFF map must be 2-D, got shape {arr.shape}", path=path)
    path = check_destination(path, overwrite=overwrite)
    with atomic_file(path, suffix=".tif", what="TIFF") as tmp:
        tifffile.imwrite(
            tmp,
            arr,
            photometric="minisblack",
            description=description or None,
            metadata=None,
            software="xray-atlas",
            **_tiff_resolution(pixel_size_um),
        )
    return path


def _tiff_resolution(pixel_size_um: float | None) -> dict[str, Any]:
    """tifffile keywords for the pixel size: resolution tags (per cm) and GeoTIFF tags (mm)."""
    import tifffile

    size = _pixel_size(pixel_size_um)
    if size is None:
        return {}
    per_cm = 1e4 / size
    mm = size / 1000.0
    return dict(
        resolution=(per_cm, per_cm),
        resolutionunit=tifffile.RESUNIT.CENTIMETER,
        extratags=[(33550, "d", 3, (mm, mm, 0.0), True), (33922, "d", 6, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0), True)],
    )


def write_rgb(
    path: str | os.PathLike,
    rgb: np.ndarray,
    *,
    pixel_size_um: float | None = None,
    description: str = "",
    overwrite: bool = False,
) -> Path:
    """Write an RGB composite (:func:`xray_atlas.compare.rgb_composite`) as an 8-bit RGB PNG or
    TIFF, one image pixel per map pixel.

    With ``pixel_size_um`` a PNG gets its ``pHYs`` chunk (pixels per metre: Pillow, GIMP and
    Fiji read it as dpi) and a TIFF the resolution and GeoTIFF tags of :func:`write_tiff`.
    ``description`` goes into the PNG's ``Description`` text and the TIFF's ImageDescription.

    Parameters
    ----------
    path : path-like
        ``.png``, ``.tif`` or ``.tiff``.
    rgb : (H, W, 3) uint8 array
    pixel_size_um : float, optional
    description : str
    overwrite : bool
        Whether an existing file may be replaced (a read-only one never is).
    """
    from ._files import atomic_file, check_destination

    path = Path(os.fspath(path))
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        raise XrayAtlasError(f"rgb must be an (H, W, 3) uint8 array, got {arr.dtype} {arr.shape}", path=path)
    fmt = path.suffix.lower()
    if fmt not in (".png", ".tif", ".tiff"):
        raise XrayAtlasError("an RGB composite is written as .png, .tif or .tiff", path=path)
    path = check_destination(path, overwrite=overwrite)
    text = description.encode("ascii", "replace").decode("ascii")
    if fmt == ".png":
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Software", "xray-atlas")
        if text:
            info.add_text("Description", text)
        size = _pixel_size(pixel_size_um)
        extra = {"dpi": (25400.0 / size,) * 2} if size is not None else {}
        with atomic_file(path, suffix=".png", what="PNG") as tmp:
            Image.fromarray(np.ascontiguousarray(arr), "RGB").save(tmp, format="PNG", pnginfo=info, **extra)
    else:
        import tifffile

        with atomic_file(path, suffix=".tif", what="TIFF") as tmp:
            tifffile.imwrite(
                tmp,
                arr,
                photometric="rgb",
                description=text or None,
                metadata=None,
                software="xray-atlas",
                **_tiff_resolution(pixel_size_um),
            )
    return path


def rgb_description(
    names: Sequence[str | None],
    limits: Sequence[tuple[float, float] | None],
    *,
    units: str = "net counts",
    kinds: Sequence[str | None] | None = None,
    model: str = "",
    source: str = "",
    pixel_size_um: float | None = None,
    percentiles: Sequence[float] | None = None,
) -> str:
    """What a composite file says about itself: each channel's map and limits, the model, the
    source and the pixel size (the PNG's Description, the TIFF's ImageDescription)."""
    parts = []
    for i, (colour, name, lim) in enumerate(zip(("red", "green", "blue"), names, limits)):
        if name is None or lim is None:
            parts.append(f"{colour} none")
            continue
        unit = "probability" if kinds is not None and kinds[i] == "probability" else units
        parts.append(f"{colour} {name} {lim[0]:.4g} to {lim[1]:.4g} {unit}")
    text = "xray-atlas RGB composite: " + ", ".join(parts)
    if percentiles is not None:
        text += f" (limits: percentiles {percentiles[0]:g} to {percentiles[1]:g})"
    if model:
        text += f"; model {model}"
    if source:
        text += f"; from {source}"
    if pixel_size_um:
        text += f"; pixel {pixel_size_um:g} um"
    return text


def write_spectra_table(
    path: str | os.PathLike, result: ResultSet, *, which: str = "clusters", overwrite: bool = False
) -> Path:
    """Write the cluster means (``which="clusters"``) or the region spectra (``"regions"``) as
    CSV: an ``energy_kev`` column (``channel`` without an energy axis), then one column per
    spectrum (``cluster 1`` ... ``cluster K``, numbered as napari shows them, or the regions'
    names). Values are written with 9 significant digits, so float32 spectra read back exactly.
    """
    from ._files import check_destination

    if which == "clusters":
        if result.cluster_spectra is None:
            raise XrayAtlasError("the result holds no cluster spectra", path=result.path)
        spectra = np.asarray(result.cluster_spectra, dtype=np.float32)
        names = [f"cluster {k + 1}" for k in range(spectra.shape[0])]
    elif which == "regions":
        if not result.region_spectra:
            raise XrayAtlasError("the result holds no region spectra", path=result.path)
        names = list(result.region_spectra)
        spectra = np.stack([np.asarray(result.region_spectra[n], dtype=np.float32) for n in names])
    else:
        raise XrayAtlasError(f"which={which!r}: choose 'clusters' or 'regions'")
    if result.energy is not None and np.asarray(result.energy).shape[0] != spectra.shape[1]:
        raise XrayAtlasError(
            f"the energy axis has {np.asarray(result.energy).shape[0]} channels and the spectra {spectra.shape[1]}",
            path=result.path,
        )
    path = check_destination(path, overwrite=overwrite)
    _write_csv(path, result.energy, names, spectra)
    return path


def _write_csv(path: Path, energy: np.ndarray | None, names: list[str], spectra: np.ndarray) -> None:
    import csv

    from ._files import atomic_file

    spectra = np.asarray(spectra, dtype=np.float32)
    n = spectra.shape[1]
    with atomic_file(path, suffix=".csv", what="table") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["energy_kev" if energy is not None else "channel", *names])
            axis = (
                [f"{e:.6f}" for e in np.asarray(energy, dtype=np.float64)]
                if energy is not None
                else [str(i) for i in range(n)]
            )
            # %.9g: every float32 value reads back to the same float32
            for i in range(n):
                w.writerow([axis[i], *(f"{v:.9g}" for v in spectra[:, i])])


# -- figures ------------------------------------------------------------------------------------


def _save(fig: Figure, path: Path, fmt: str, *, tight: float | None = None) -> None:
    """Render ``fig`` atomically; ``tight``: trim the figure to its drawing plus this margin
    (inches), for a single map (a sheet keeps its page size)."""
    from ._files import atomic_file

    meta = {"Software": "xray-atlas"} if fmt == "png" else {"Creator": "xray-atlas", "CreationDate": None}
    with atomic_file(path, suffix=f".{fmt}", what="figure") as tmp:
        fig.savefig(
            tmp,
            format=fmt,
            dpi=150 if fmt == "png" else 200,
            metadata=meta,
            **({} if tight is None else {"bbox_inches": "tight", "pad_inches": tight}),
        )


def _colormap(name: str) -> Any:
    from matplotlib.colors import LinearSegmentedColormap

    sym = line_symbol(name)
    return LinearSegmentedColormap.from_list(f"xray-atlas {sym}", [(0.0, 0.0, 0.0), element_colour(sym)])


def _limits(kind: str, arr: np.ndarray) -> tuple[float, float, str]:
    """Colour scale (low, high, colour bar extension): probabilities 0..1; maps from 0 (or
    their minimum above 0) to the TOP_PERCENTILE, with arrows where values lie beyond."""
    if kind == "probability":
        return 0.0, 1.0, "neither"
    a = np.asarray(arr, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if not finite.size:
        return 0.0, 1.0, "neither"
    low = 0.0
    high = float(np.percentile(finite, TOP_PERCENTILE))
    if high <= low:
        high = float(finite.max()) if finite.max() > low else low + 1.0
    below, above = bool(finite.min() < low), bool(finite.max() > high)
    return (
        low,
        high,
        {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[(below, above)],
    )


def _panel(
    fig: Figure,
    x: float,
    y: float,
    iw: float,
    ih: float,
    result: ResultSet,
    kind: str,
    name: str,
    arr: np.ndarray,
    *,
    small: bool,
) -> Any:
    """One map with its image's lower left corner at (x, y) inches, ``iw`` x ``ih`` inches: its
    colours, a colour bar as tall as the image beside it, a scale bar, no ticks (pixels mean
    nothing). Places are computed, not left to a layout engine, so that nothing overlaps and
    every colour bar matches its map. Returns the image's axes."""
    fs = 6.5 if small else 9
    W, H = fig.get_size_inches()
    ax = fig.add_axes((x / W, y / H, iw / W, ih / H))
    cax = fig.add_axes(((x + iw + _BAR_GAP_IN) / W, y / H, (_BAR_IN if small else 1.4 * _BAR_IN) / W, ih / H))
    if kind == "clusters":
        im, ticks, labels = _cluster_artist(ax, arr)
        cbar = fig.colorbar(im, cax=cax)
        cbar.set_ticks(ticks, labels=labels)
        cbar.set_label("cluster (0: noise)", fontsize=fs)
    else:
        low, high, extend = _limits(kind, arr)
        im = ax.imshow(arr, cmap=_colormap(name), vmin=low, vmax=high, interpolation="nearest", aspect="auto")
        cbar = fig.colorbar(im, cax=cax, extend=extend)
        cbar.set_label(value_label(kind, result.units), fontsize=fs)
    cbar.ax.tick_params(labelsize=fs)
    cbar.ax.yaxis.get_offset_text().set_fontsize(fs)
    ax.set_xticks([])
    ax.set_yticks([])
    if result.pixel_size_um:
        _scale_bar(ax, result.pixel_size_um, arr.shape, fontsize=fs)
    return ax


def _cluster_artist(ax: Any, labels: np.ndarray) -> tuple[Any, list[int], list[str]]:
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm, ListedColormap

    img = _cluster_image(labels)
    k = int(img.max())
    base = colormaps["tab20"] if k > 10 else colormaps["tab10"]
    colours = [(0.82, 0.82, 0.82)] + [base(i % base.N)[:3] for i in range(k)]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-0.5, k + 1.5), cmap.N)
    im = ax.imshow(img, cmap=cmap, norm=norm, interpolation="nearest")
    step = max(1, math.ceil((k + 1) / 12))
    ticks = list(range(0, k + 1, step))
    return im, ticks, [str(t) for t in ticks]


def _scale_bar(ax: Any, pixel_size_um: float, shape: tuple, *, fontsize: float) -> None:
    from matplotlib.font_manager import FontProperties
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length_um, label = scale_bar_length(pixel_size_um, shape[1])
    bar = AnchoredSizeBar(
        ax.transData,
        length_um / pixel_size_um,
        label,
        "lower right",
        pad=0.3,
        sep=2,
        color="white",
        frameon=True,
        size_vertical=max(shape[0] / 80, 0.6),
        fontproperties=FontProperties(size=fontsize),
        label_top=True,
    )
    bar.patch.set(facecolor="black", alpha=0.55, edgecolor="none")
    ax.add_artist(bar)


def _title(kind: str, name: str, arr: np.ndarray) -> str:
    title = f"P({name})" if kind == "probability" else name
    if kind != "clusters" and not np.nanmax(np.asarray(arr, dtype=np.float64)) > 0:
        title += "  (all 0)"
    return title


def _subtitle(result: ResultSet) -> str:
    return "  \u00b7  ".join(t for t in (f"model {result.model}" if result.model else "", result.source) if t)


def _map_figure(result: ResultSet, kind: str, name: str, arr: np.ndarray) -> Figure:
    from matplotlib.figure import Figure

    arr = np.asarray(arr)
    h, w = arr.shape
    iw = 6.0 - 2 * _MARGIN_IN - _RIGHT_IN  # the image of a 6-inch-wide figure, at most 8 inches tall
    ih = iw * h / w
    if ih > 8.0:
        iw, ih = 8.0 * w / h, 8.0
    fig = Figure(figsize=(iw + 2 * _MARGIN_IN + _RIGHT_IN, ih + 2 * _MARGIN_IN + _TITLE_IN))
    ax = _panel(fig, _MARGIN_IN, _MARGIN_IN, iw, ih, result, kind, name, arr, small=False)
    ax.set_title(_title(kind, name, arr), fontsize=12, fontweight="bold", loc="left")
    ax.set_title(_subtitle(result), fontsize=8, loc="right")
    return fig


def _grid(n: int, aspect: float) -> tuple[tuple[float, float], int, int, float]:
    """Page size (inches), rows, columns and image width (inches) that show ``n`` maps of
    height/width ``aspect`` largest on one A4 page, portrait or landscape."""
    best = None
    for page in (_A4, _A4[::-1]):
        w, h = page[0] - 2 * _MARGIN_IN, page[1] - 2 * _MARGIN_IN - _HEADER_IN
        for cols in range(1, n + 1):
            rows = math.ceil(n / cols)
            side = min(w / cols - _RIGHT_SMALL_IN - _GAP_IN, (h / rows - _TITLE_SMALL_IN - _GAP_IN) / aspect)
            if best is None or side > best[3] + 1e-9:
                best = (page, rows, cols, side)
    return best


def _sheet_figure(result: ResultSet, images: list[tuple[str, str, np.ndarray]], clusters: bool) -> Figure:
    from matplotlib.figure import Figure

    panels = list(images) + ([("clusters", "clusters", result.labels)] if clusters else [])
    h, w = np.asarray(panels[0][2]).shape
    page, rows, cols, iw = _grid(len(panels), h / w)
    ih = iw * h / w
    fig = Figure(figsize=page)
    kinds = {k for k, _, _ in panels}
    units = []
    if "map" in kinds:
        units.append(f"maps in {value_label('map', result.units)}")
    if "probability" in kinds:
        units.append("probabilities 0 to 1")
    size = f"pixel {result.pixel_size_um:g} \u00b5m" if result.pixel_size_um else "pixel size unknown"
    head = "  \u00b7  ".join(
        t
        for t in (
            result.source or "xray-atlas result",
            f"model {result.model}" if result.model else "",
            "; ".join(units),
            f"{w} \u00d7 {h} pixels, {size}",
        )
        if t
    )
    fig.text(0.5, 1 - (_MARGIN_IN + 0.2) / page[1], head, ha="center", va="center", fontsize=10, fontweight="bold")
    # the grid of cells, centred on the page below the header
    cw, ch = iw + _RIGHT_SMALL_IN + _GAP_IN, ih + _TITLE_SMALL_IN + _GAP_IN
    x0 = (page[0] - cols * cw) / 2 + _GAP_IN / 2
    top = page[1] - _MARGIN_IN - _HEADER_IN - ((page[1] - 2 * _MARGIN_IN - _HEADER_IN) - rows * ch) / 2
    for i, (kind, name, arr) in enumerate(panels):
        r, c = divmod(i, cols)
        ax = _panel(
            fig, x0 + c * cw, top - (r + 1) * ch + _GAP_IN / 2, iw, ih, result, kind, name, np.asarray(arr), small=True
        )
        ax.set_title(_title(kind, name, arr), fontsize=9, fontweight="bold", loc="left", pad=3)
    return fig
