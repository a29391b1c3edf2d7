"""SpectralCube: photon counts of an (H, W, C) scan that stay on disk, with their energy axis.

A cube wraps any lazy array with ``shape``, ``dtype`` and numpy-style slicing: an h5py
dataset, a numpy memmap, a zarr array or a dask array. Nothing here reads more than one
tile of whole spectra at a time, so the peak memory of every operation is bounded by
``tile_bytes``, not by the size of the cube.

Long operations are generators (``iter_*``) that yield :class:`Progress` after each tile
and return their result; the plain methods run them to the end. The napari layer drives
the generators on a worker thread, which gives it progress and a cancel point per tile
without moving any computation out of the core.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import XrayAtlasError

__all__ = ["SpectralCube", "Progress", "run_to_end", "linear_energy", "check_energy"]

#: Default number of bytes of spectra read at once (one tile of whole rows).
TILE_BYTES = 64 * 2**20
#: Largest value a channel of one pixel may hold: far above any detector (about 1e6 counts/s
#: for hours), far below what scaled or corrupt data show (issue 27: counts x 1e30 gave zero maps).
MAX_COUNTS = 1e12
#: Metadata that hold a time per pixel: one number, or an (H, W) array.
PER_PIXEL = ("live_time_s", "real_time_s")
#: What elemental maps of a cube hold (result files' root attribute ``units``, docs/dev/contracts.md
#: section 3): net counts, or net counts per second of each pixel's live time.
MAP_UNITS = ("counts", "counts/s")


@dataclass(frozen=True)
class Progress:
    """Progress of a streamed operation: ``done`` out of ``total`` units (tiles)."""

    done: int
    total: int
    what: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


def run_to_end(steps: Generator[Progress, None, Any], progress: Callable[[Progress], None] | None = None) -> Any:
    """Drive an ``iter_*`` generator to its end and return its result.

    Parameters
    ----------
    steps : generator
        A generator that yields :class:`Progress` and returns a result.
    progress : callable, optional
        Called with each :class:`Progress`.
    """
    while True:
        try:
            step = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(step)


def check_energy(energy: np.ndarray, n_channels: int, source: str) -> np.ndarray:
    """Check an energy axis in keV: (C,), finite, strictly increasing; return it as float64."""
    energy = np.asarray(energy, dtype=np.float64)
    if energy.ndim != 1 or energy.shape[0] != n_channels:
        raise XrayAtlasError(f"{source} has shape {energy.shape}, expected ({n_channels},) to match the channel axis")
    if not np.all(np.isfinite(energy)):
        raise XrayAtlasError(f"{source} contains non-finite values")
    if n_channels > 1 and not np.all(np.diff(energy) > 0):
        raise XrayAtlasError(f"{source} is not strictly increasing")
    if energy[-1] > 1000.0:
        raise XrayAtlasError(f"{source} reaches {energy[-1]:.4g}; energies must be in keV (is it in eV?)")
    return energy


def linear_energy(offset_kev: float, gain_kev: float, n_channels: int, *, source: str = "calibration") -> np.ndarray:
    """Energy axis ``E[i] = offset + gain * i`` in keV, checked.

    Parameters
    ----------
    offset_kev, gain_kev : float
        Energy of channel 0 and keV per channel.
    n_channels : int
        Number of channels.
    source : str
        Where the numbers came from, used in error messages.
    """
    try:
        offset_kev = float(offset_kev)
        gain_kev = float(gain_kev)
    except (TypeError, ValueError):
        raise XrayAtlasError(f"{source}: offset and gain must be numbers, got {offset_kev!r}, {gain_kev!r}") from None
    if not (np.isfinite(offset_kev) and np.isfinite(gain_kev)):
        raise XrayAtlasError(f"{source}: offset {offset_kev} and gain {gain_kev} must be finite")
    if gain_kev <= 0:
        raise XrayAtlasError(f"{source}: gain must be > 0 keV per channel, got {gain_kev}")
    if gain_kev > 1.0:
        raise XrayAtlasError(f"{source}: gain {gain_kev} keV per channel is implausible (is it in eV?)")
    return offset_kev + gain_kev * np.arange(n_channels, dtype=np.float64)


class SpectralCube:
    """An (H, W, C) cube of photon counts with its energy axis, read lazily.

    Parameters
    ----------
    counts : array-like
        Lazy (H, W, C) array of counts: h5py dataset, numpy (mem)map, zarr or dask array.
        The channel axis is last.
    energy : (C,) array, optional
        Energy of each channel in keV. Wins over ``offset_kev``/``gain_kev``.
    offset_kev, gain_kev : float, optional
        Linear calibration ``E[i] = offset + gain * i``.
    metadata : dict, optional
        Acquisition metadata in the names of docs/dev/contracts.md section 2: ``pixel_size_um`` (µm),
        ``live_time_s`` and ``real_time_s`` (seconds per pixel: a number, or an (H, W) array
        when the file records each pixel's), ``tube_kv``, ``title`` ... (docs/formats.md lists
        what each reader takes).
    reference_maps : dict, optional
        Line name -> lazy (H, W) array of reference net counts (``/maps`` in HDF5 files).
    path : str, optional
        The file the cube was read from, used in messages.
    name : str, optional
        A short display name.
    closer : callable, optional
        Called by :meth:`close` (closes the underlying file).

    Notes
    -----
    Without any calibration the cube is *uncalibrated*: :attr:`energy` then holds channel
    numbers and :attr:`calibrated` is False.
    """

    def __init__(
        self,
        counts: Any,
        *,
        energy: np.ndarray | None = None,
        offset_kev: float | None = None,
        gain_kev: float | None = None,
        metadata: dict | None = None,
        reference_maps: dict | None = None,
        path: str | os.PathLike | None = None,
        name: str | None = None,
        closer: Callable[[], None] | None = None,
    ):
        self.path = None if path is None else os.fspath(path)
        shape = tuple(getattr(counts, "shape", ()))
        if len(shape) != 3:
            raise XrayAtlasError(
                f"counts are {len(shape)}-D with shape {shape}; a spectral cube is 3-D (height, width, channels)",
                path=self.path,
            )
        dtype = np.dtype(counts.dtype)
        if dtype.kind not in "uif":
            raise XrayAtlasError(f"counts have dtype {dtype}; expected integer or float counts", path=self.path)
        if min(shape) < 1 or shape[2] < 2:
            raise XrayAtlasError(
                f"counts have shape {shape}; need at least 1 x 1 pixels and 2 channels", path=self.path
            )
        self._counts = counts
        self.shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.dtype = dtype
        n_channels = shape[2]
        try:
            if energy is not None:
                self._energy = check_energy(energy, n_channels, "energy axis")
                self.calibrated = True
            elif offset_kev is not None or gain_kev is not None:
                if offset_kev is None or gain_kev is None:
                    raise XrayAtlasError("calibration needs both energy offset and gain")
                self._energy = linear_energy(offset_kev, gain_kev, n_channels)
                self.calibrated = True
            else:
                self._energy = np.arange(n_channels, dtype=np.float64)
                self.calibrated = False
        except XrayAtlasError as err:
            if self.path and not str(err).startswith(self.path):
                raise XrayAtlasError(str(err), path=self.path) from None
            raise
        self._energy.setflags(write=False)
        self.metadata = dict(metadata or {})
        for key in PER_PIXEL:
            value = self.metadata.get(key)
            if value is not None and np.ndim(value) >= 2 and tuple(np.shape(value)) != shape[:2]:
                raise XrayAtlasError(
                    f"{key} has shape {tuple(np.shape(value))}; expected one number or the pixels' {shape[:2]}",
                    path=self.path,
                )
        self.reference_maps = dict(reference_maps or {})
        self.name = name or (os.path.basename(self.path) if self.path else "cube")
        self._closer = closer

    # -- basic properties -------------------------------------------------------------
    @property
    def counts(self) -> Any:
        """The wrapped lazy (H, W, C) array."""
        return self._counts

    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def n_channels(self) -> int:
        return self.shape[2]

    @property
    def energy(self) -> np.ndarray:
        """(C,) energy of each channel in keV (channel numbers when uncalibrated)."""
        return self._energy

    @property
    def energy_offset_kev(self) -> float:
        """Energy of channel 0 (least-squares line through the energy axis)."""
        return float(self._linear()[0])

    @property
    def energy_gain_kev(self) -> float:
        """keV per channel (least-squares line through the energy axis)."""
        return float(self._linear()[1])

    def _linear(self) -> tuple[float, float]:
        ch = np.arange(self.n_channels, dtype=np.float64)
        gain, offset = np.polyfit(ch, self._energy, 1)
        return offset, gain

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    # -- acquisition metadata ---------------------------------------------------------------
    @property
    def pixel_size_um(self) -> float | None:
        """Step between neighbouring pixels in µm (between columns; ``metadata["pixel_size_y_um"]``
        holds the rows' step when it differs), from the file; None when the file states none."""
        value = self.metadata.get("pixel_size_um")
        try:
            v = float(np.asarray(value).reshape(-1)[0])
        except (TypeError, ValueError, IndexError):
            return None
        return v if np.isfinite(v) and v > 0 else None

    @property
    def live_time_s(self) -> Any:
        """Live time of each pixel in seconds, as the file states it: a float when every pixel
        has the same (single spectra, fixed dwell), an (H, W) array when the file records each
        pixel's (lazy: an HDF5 or Zarr dataset, readable while the cube is open), None when the
        file states none. :meth:`live_time_map` gives it as an (H, W) array in memory."""
        value = self.metadata.get("live_time_s")
        if value is None or np.ndim(value) >= 2:
            return value
        try:
            return float(np.asarray(value).reshape(-1)[0])
        except (TypeError, ValueError, IndexError):
            return None

    def live_time_map(self) -> np.ndarray | None:
        """(H, W) float64 live time of every pixel in seconds, read into memory (a single value
        broadcast to every pixel), or None when the file states no live time."""
        value = self.live_time_s
        if value is None:
            return None
        if np.ndim(value) < 2:
            return np.full((self.height, self.width), float(value))
        try:
            block = value[...]
            if hasattr(block, "compute"):  # dask
                block = block.compute()
            return np.asarray(block, dtype=np.float64)
        except (OSError, KeyError, RuntimeError, ValueError) as err:
            reason = " ".join(str(err).split())[:200] or type(err).__name__
            raise XrayAtlasError(f"could not read the live time per pixel ({reason})", path=self.path) from None

    def __repr__(self) -> str:
        cal = f"{self._energy[0]:.3f}-{self._energy[-1]:.3f} keV" if self.calibrated else "uncalibrated"
        return f"SpectralCube({self.name!r}, shape={self.shape}, dtype={self.dtype}, {cal})"

    def close(self) -> None:
        """Close the underlying file, if any."""
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> SpectralCube:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def with_calibration(self, *, offset_kev: float, gain_kev: float) -> SpectralCube:
        """The same counts with a new linear energy calibration (the file is not touched)."""
        return SpectralCube(
            self._counts,
            offset_kev=offset_kev,
            gain_kev=gain_kev,
            metadata=self.metadata,
            reference_maps=self.reference_maps,
            path=self.path,
            name=self.name,
        )

    # -- energy <-> channel -------------------------------------------------------------
    def channel_of(self, energy_kev: float | np.ndarray) -> np.ndarray | float:
        """Fractional channel index of ``energy_kev`` (keV), by interpolation of the axis.

        Raises
        ------
        XrayAtlasError
            If the cube is uncalibrated or an energy lies outside the axis.
        """
        self._need_calibration("energy_kev")
        e = np.asarray(energy_kev, dtype=np.float64)
        lo, hi = self._energy[0], self._energy[-1]
        if np.any(~np.isfinite(e)) or np.any(e < lo) or np.any(e > hi):
            raise XrayAtlasError(
                f"energy_kev={energy_kev} lies outside the calibrated range {lo:.3f}-{hi:.3f} keV",
                path=self.path,
            )
        ch = np.interp(e, self._energy, np.arange(self.n_channels, dtype=np.float64))
        return float(ch) if ch.ndim == 0 else ch

    def energy_of(self, channel: float | np.ndarray) -> np.ndarray | float:
        """Energy in keV of a (fractional) channel index."""
        c = np.asarray(channel, dtype=np.float64)
        if np.any(c < 0) or np.any(c > self.n_channels - 1):
            raise XrayAtlasError(f"channel={channel} lies outside 0-{self.n_channels - 1}", path=self.path)
        e = np.interp(c, np.arange(self.n_channels, dtype=np.float64), self._energy)
        return float(e) if e.ndim == 0 else e

    def channel_slice(self, e_min_kev: float, e_max_kev: float) -> slice:
        """Channels whose energy lies in ``[e_min_kev, e_max_kev]`` (keV; channels if uncalibrated)."""
        if not e_max_kev > e_min_kev:
            raise XrayAtlasError(f"energy window {e_min_kev}-{e_max_kev}: the upper edge must exceed the lower")
        # an edge that falls on a channel's energy includes that channel, despite rounding
        eps = 1e-6 * float(self._energy[1] - self._energy[0])
        lo = int(np.searchsorted(self._energy, e_min_kev - eps, side="left"))
        hi = int(np.searchsorted(self._energy, e_max_kev + eps, side="right"))
        if hi <= lo:
            unit = "keV" if self.calibrated else "channels"
            raise XrayAtlasError(
                f"energy window {e_min_kev:.4g}-{e_max_kev:.4g} {unit} holds no channel "
                f"(axis {self._energy[0]:.4g}-{self._energy[-1]:.4g})",
                path=self.path,
            )
        return slice(lo, hi)

    def _need_calibration(self, parameter: str) -> None:
        if not self.calibrated:
            raise XrayAtlasError(f"{parameter}: the cube has no energy calibration; set one first", path=self.path)

    # -- reading -----------------------------------------------------------------------
    def _read(self, index: tuple) -> np.ndarray:
        try:
            block = self._counts[index]
            if hasattr(block, "compute"):  # dask
                block = block.compute()
            return np.asarray(block)
        except (OSError, KeyError, RuntimeError) as err:
            # h5py raises OSError/KeyError for damaged chunks, zarr and dask their own
            reason = " ".join(str(err).split())[:200] or type(err).__name__
            raise XrayAtlasError(
                f"could not read counts ({reason}); truncated or corrupt file?", path=self.path
            ) from None

    def pixel(self, y: int, x: int) -> np.ndarray:
        """The spectrum (C,) of pixel (y, x), read alone from disk."""
        y, x = self._check_pixel(y, x)
        return self._read((y, x, slice(None)))

    def _check_pixel(self, y: Any, x: Any) -> tuple[int, int]:
        try:
            y, x = int(y), int(x)
        except (TypeError, ValueError):
            raise XrayAtlasError(f"pixel ({y!r}, {x!r}) must be integer indices") from None
        if not (0 <= y < self.height and 0 <= x < self.width):
            raise XrayAtlasError(f"pixel (y={y}, x={x}) lies outside the {self.height} x {self.width} cube")
        return y, x

    def tile_rows(self, tile_bytes: int = TILE_BYTES) -> int:
        """Rows per tile so that one tile of whole spectra holds about ``tile_bytes`` bytes.

        Rounded to the chunk height of chunked storage so that each chunk is read once.
        """
        row_bytes = self.width * self.n_channels * self.dtype.itemsize
        rows = max(1, int(tile_bytes // max(row_bytes, 1)))
        chunks = getattr(self._counts, "chunks", None)
        chunk_rows = None
        if isinstance(chunks, tuple) and chunks and chunks[0]:
            first = chunks[0]
            chunk_rows = int(first[0] if isinstance(first, tuple) else first)  # dask: tuple of tuples
        if chunk_rows and chunk_rows > 0:
            rows = max(chunk_rows, (rows // chunk_rows) * chunk_rows)
        return min(rows, self.height)

    def iter_tiles(
        self, channels: slice = slice(None), *, tile_bytes: int = TILE_BYTES, every: int = 1, rows: slice | None = None
    ) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(rows, block)`` over the cube; ``block`` is (rows, W, channels) in memory.
        With ``every`` > 1 only every ``every``-th tile is read (an even sample of the cube).
        ``rows`` (a slice of whole rows) limits the tiles to a block of the cube's rows, the
        first tile starting at its first row."""
        for r, block, _ in self.iter_tiles_with_halo(0, channels, tile_bytes=tile_bytes, every=every, rows=rows):
            yield r, block

    def check_rows(self, rows: slice | None) -> slice:
        """``rows`` as a block of this cube's rows (``slice(a, b)``, 0 <= a < b <= height, step
        1), all rows for None; anything else is refused naming ``rows``."""
        h = self.height
        if rows is None:
            return slice(0, h)
        if not (
            isinstance(rows, slice)
            and rows.step in (None, 1)
            and isinstance(rows.start, (int, np.integer))
            and isinstance(rows.stop, (int, np.integer))
            and 0 <= rows.start < rows.stop <= h
        ):
            raise XrayAtlasError(f"rows={rows!r} must be a slice of the cube's rows 0 to {h}")
        return slice(int(rows.start), int(rows.stop))

    def iter_tiles_with_halo(
        self,
        halo: int,
        channels: slice = slice(None),
        *,
        tile_bytes: int = TILE_BYTES,
        every: int = 1,
        rows: slice | None = None,
    ) -> Iterator[tuple[slice, np.ndarray, int]]:
        """Yield ``(rows, block, lead)``: as :meth:`iter_tiles`, with up to ``halo`` more rows
        read above and below (fewer at the cube's edges, and read beyond the edges of
        ``rows``); ``block[lead:lead + len(rows)]`` are the tile's own rows."""
        if halo < 0:
            raise XrayAtlasError(f"halo={halo} must be >= 0 rows")
        if not (isinstance(every, (int, np.integer)) and every >= 1):
            raise XrayAtlasError(f"every={every!r} must be a positive integer")
        rows = self.check_rows(rows)
        first, last = int(rows.start), int(rows.stop)
        step = self.tile_rows(tile_bytes)
        for r0 in range(first, last, step * every):
            rows = slice(r0, min(r0 + step, last))
            read = slice(max(r0 - halo, 0), min(rows.stop + halo, self.height))
            block = self._read((read, slice(None), channels))
            self._check_values(block, read)
            yield rows, block, r0 - read.start

    def _check_values(self, block: np.ndarray, rows: slice) -> None:
        if block.dtype.kind == "f":
            bad = ~np.isfinite(block)
            if bad.any():
                y, x, c = np.argwhere(bad)[0]
                raise XrayAtlasError(
                    f"counts contain NaN or infinite values (first at pixel y={y + rows.start}, x={x}, channel {c})",
                    path=self.path,
                )
        if block.dtype.kind in "if" and block.size and float(block.max()) > MAX_COUNTS:
            y, x, c = np.argwhere(block > MAX_COUNTS)[0]
            raise XrayAtlasError(
                f"counts of {float(block[y, x, c]):.3g} at pixel y={y + rows.start}, x={x}, channel {c} are not photon "
                f"counts (at most {MAX_COUNTS:.0e} per channel); the file holds scaled or corrupt data",
                path=self.path,
            )
        if block.dtype.kind in "if":
            neg = block < 0
            if neg.any():
                y, x, c = np.argwhere(neg)[0]
                raise XrayAtlasError(
                    f"counts contain negative values (first at pixel y={y + rows.start}, x={x}, channel {c})",
                    path=self.path,
                )

    def iter_pixel_map(
        self,
        reduce: Callable[[np.ndarray], np.ndarray],
        *,
        channels: slice = slice(None),
        dtype: Any = np.float32,
        what: str = "map",
        out: np.ndarray | None = None,
        tile_bytes: int = TILE_BYTES,
    ) -> Generator[Progress, None, np.ndarray]:
        """Stream the cube and build an (H, W) map with ``reduce(block) -> (rows, W)``.

        Yields :class:`Progress` after each tile and returns the map. ``out`` may be given
        to fill a visible array in place (napari shows the painting as it is read).
        """
        if out is None:
            out = np.zeros((self.height, self.width), dtype=dtype)
        elif out.shape != (self.height, self.width):
            raise XrayAtlasError(f"out has shape {out.shape}, expected {(self.height, self.width)}")
        step = self.tile_rows(tile_bytes)
        total = -(-self.height // step)
        for i, (rows, block) in enumerate(self.iter_tiles(channels, tile_bytes=tile_bytes)):
            out[rows] = reduce(block)
            yield Progress(i + 1, total, what)
        return out

    def iter_total_counts(self, **kwargs: Any) -> Generator[Progress, None, np.ndarray]:
        """Total counts per pixel, streamed; see :meth:`iter_pixel_map`."""
        return self.iter_pixel_map(_sum_last, what="total counts", **kwargs)

    def total_counts(self, **kwargs: Any) -> np.ndarray:
        """(H, W) total counts of each pixel (float32), streamed over tiles."""
        return run_to_end(self.iter_total_counts(**kwargs))

    def iter_window_sum(
        self, e_min_kev: float, e_max_kev: float, **kwargs: Any
    ) -> Generator[Progress, None, np.ndarray]:
        """Counts per pixel summed over an energy window, reading only its channels."""
        channels = self.channel_slice(e_min_kev, e_max_kev)
        return self.iter_pixel_map(_sum_last, channels=channels, what="window sum", **kwargs)

    def window_sum(self, e_min_kev: float, e_max_kev: float, **kwargs: Any) -> np.ndarray:
        """(H, W) counts summed over ``[e_min_kev, e_max_kev]`` (keV; channels if uncalibrated)."""
        return run_to_end(self.iter_window_sum(e_min_kev, e_max_kev, **kwargs))

    def iter_spectrum_stats(self, *, tile_bytes: int = TILE_BYTES) -> Generator[Progress, None, dict]:
        """Sum and maximum spectrum over all pixels, streamed.

        Returns
        -------
        dict
            ``{"sum": (C,) float64, "max": (C,) float64}``.
        """
        total = np.zeros(self.n_channels, dtype=np.float64)
        peak = np.zeros(self.n_channels, dtype=np.float64)
        step = self.tile_rows(tile_bytes)
        n = -(-self.height // step)
        for i, (_, block) in enumerate(self.iter_tiles(tile_bytes=tile_bytes)):
            flat = block.reshape(-1, self.n_channels)
            total += flat.sum(axis=0, dtype=np.float64)
            np.maximum(peak, flat.max(axis=0), out=peak)
            yield Progress(i + 1, n, "sum spectrum")
        return {"sum": total, "max": peak}

    def spectrum_stats(self, **kwargs: Any) -> dict:
        """Sum and maximum spectrum of the cube; see :meth:`iter_spectrum_stats`."""
        return run_to_end(self.iter_spectrum_stats(**kwargs))

    def iter_region_stats(self, mask: np.ndarray, *, tile_bytes: int = TILE_BYTES) -> Generator[Progress, None, dict]:
        """Mean and standard deviation spectrum of the pixels where ``mask`` is True.

        Only the rows and columns of the mask's bounding box are read.

        Returns
        -------
        dict
            ``{"mean": (C,), "std": (C,), "n_pixels": int}``.
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.height, self.width):
            raise XrayAtlasError(f"mask has shape {mask.shape}, expected {(self.height, self.width)}")
        rows_any = np.flatnonzero(mask.any(axis=1))
        if rows_any.size == 0:
            raise XrayAtlasError("mask selects no pixel")
        cols_any = np.flatnonzero(mask.any(axis=0))
        r0, r1 = int(rows_any[0]), int(rows_any[-1]) + 1
        c0, c1 = int(cols_any[0]), int(cols_any[-1]) + 1
        row_bytes = (c1 - c0) * self.n_channels * self.dtype.itemsize
        step = max(1, int(tile_bytes // max(row_bytes, 1)))
        s1 = np.zeros(self.n_channels, dtype=np.float64)
        s2 = np.zeros(self.n_channels, dtype=np.float64)
        n = 0
        starts = range(r0, r1, step)
        for i, a in enumerate(starts):
            b = min(a + step, r1)
            sub = mask[a:b, c0:c1]
            if not sub.any():
                continue
            rows = slice(a, b)
            block = self._read((rows, slice(c0, c1), slice(None)))
            self._check_values(block, rows)
            sel = block[sub].astype(np.float64)
            s1 += sel.sum(axis=0)
            s2 += np.square(sel).sum(axis=0)
            n += sel.shape[0]
            yield Progress(i + 1, len(starts), "region spectrum")
        mean = s1 / n
        var = np.maximum(s2 / n - mean**2, 0.0)
        return {"mean": mean, "std": np.sqrt(var), "n_pixels": n}

    def region_stats(self, mask: np.ndarray, **kwargs: Any) -> dict:
        """Mean and std spectrum over a boolean (H, W) mask; see :meth:`iter_region_stats`."""
        return run_to_end(self.iter_region_stats(mask, **kwargs))


def _sum_last(block: np.ndarray) -> np.ndarray:
    return block.sum(axis=-1, dtype=np.float64)
