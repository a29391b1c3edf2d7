"""Binary lattices, their correlation (CFS) encoding and their diffuse-scattering images
(docs/dev/contracts.md section 5; study 004).

A lattice is an N x N periodic occupancy ``x[y, x]`` in {0, 1}. Its encoding is the vector of
pair-correlation coefficients ``a(dx, dy) = (<x_i x_(i+r)> - m^2) / (m (1 - m))`` over the
offsets of a span S (``dy`` outer, ``dx`` inner, (0, 0) skipped; D = S^2 - 1), with m the
lattice's concentration. Its diffraction image is the mean over lots of
``|FFT2(x_lot - m)|^2 / L^2``, each lot an L x L window at a random position (periodic wrap),
zero frequency at (L//2, L//2).

Lattices are made by a Monte Carlo of an Ising-like model with one pair coupling per encoding
offset: heat-bath updates on sublattices (sites a multiple of p >= S apart never interact, so
each sublattice is updated at once), a whole batch of lattices per tensor operation (a GPU makes
thousands together), and optionally feedback on the couplings (``J_r += gain * (target_r - a_r)``)
and on a field that holds the concentration, until every measured coefficient is within the
tolerance of its target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import XrayAtlasError

__all__ = [
    "SPANS",
    "offsets",
    "correlations",
    "diffraction_image",
    "simulate_lattices",
    "iter_lattices",
    "LatticeBatch",
    "random_couplings",
    "analytic_encoding",
    "make_dataset",
    "save_dataset",
    "load_dataset",
]

#: Spans of the correlation function (CFS) the project supports, and their encoding length.
SPANS = {2: 3, 3: 8, 4: 15}


def _check_span(span: int) -> int:
    if span not in SPANS:
        raise XrayAtlasError(f"span={span!r} must be one of {', '.join(map(str, SPANS))}")
    return int(span)


def offsets(span: int) -> list[tuple[int, int]]:
    """The encoding's offsets (dx, dy) in contract order: dy outer, dx inner, (0, 0) skipped."""
    s = _check_span(span)
    return [(dx, dy) for dy in range(s) for dx in range(s) if (dx, dy) != (0, 0)]


def _as_tensor(lattices):
    import torch

    t = lattices if isinstance(lattices, torch.Tensor) else torch.from_numpy(np.asarray(lattices))
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[1] != t.shape[2]:
        raise XrayAtlasError(f"lattices: expected (N, N) or (B, N, N) square lattices, got shape {tuple(t.shape)}")
    return t.float()


def correlations(lattices, span: int):
    """Measured encoding of each lattice: (B, D) float64 numpy (or (D,) for one lattice).

    A lattice that is all 0 or all 1 has no defined correlation: its coefficients are 0.
    """
    one = np.ndim(lattices) == 2
    x = _as_tensor(lattices).double()
    a = _correlations(x, span).cpu().numpy()
    return a[0] if one else a


def _correlations(x, span: int):
    """(B, N, N) occupancies (float) -> (B, D) coefficients, in the tensor's dtype and device."""
    import torch

    m = x.mean(dim=(1, 2))
    var = (m * (1 - m)).clamp_min(1e-12)
    cols = []
    for dx, dy in offsets(span):
        # x_(i+r): dx columns right, dy rows down, periodic
        pair = (x * torch.roll(x, shifts=(-dy, -dx), dims=(1, 2))).mean(dim=(1, 2))
        cols.append((pair - m * m) / var)
    a = torch.stack(cols, dim=1)
    return a * ((m > 0) & (m < 1))[:, None]


def diffraction_image(lattices, *, lot: int | None = None, n_lots: int = 1, rng=None):
    """Lot-averaged diffraction image of each lattice: (B, L, L) float32 numpy (or (L, L)).

    Parameters
    ----------
    lattices : (N, N) or (B, N, N) array of 0/1
    lot : int, optional
        Side L of a lot (window); default the whole lattice (then the image is exactly the
        Fourier transform of the lattice's periodic pair correlations).
    n_lots : int
        Lots averaged per image; each lot starts at a random position, with periodic wrap.
        With ``lot`` omitted and one lot, the window is the lattice itself.
    rng : int or Generator, optional
        Seed for the lot positions.
    """
    import torch

    one = np.ndim(lattices) == 2
    x = _as_tensor(lattices)
    b, n, _ = x.shape
    lot = n if lot is None else int(lot)
    if not (2 <= lot <= n):
        raise XrayAtlasError(f"lot={lot} must lie between 2 and the lattice size {n}")
    if n_lots < 1:
        raise XrayAtlasError(f"n_lots={n_lots} must be >= 1")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if lot == n and n_lots == 1:
        starts = np.zeros((b, 1, 2), np.int64)
    else:
        starts = gen.integers(0, n, size=(b, n_lots, 2))
    img = _image(x, lot, torch.from_numpy(starts).to(x.device)).cpu().numpy()
    return img[0] if one else img


def _image(x, lot: int, starts):
    """x (B, N, N) float, starts (B, K, 2) lot origins (y, x) -> (B, L, L) float32 image."""
    import torch

    b, n, _ = x.shape
    m = x.mean(dim=(1, 2))
    ar = torch.arange(lot, device=x.device)
    rows = (starts[..., 0, None] + ar) % n  # (B, K, L)
    cols = (starts[..., 1, None] + ar) % n
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    lots = x[bi, rows[..., :, None], cols[..., None, :]] - m[:, None, None, None]  # (B, K, L, L)
    power = torch.fft.fft2(lots).abs().square().mean(dim=1) / lot**2
    return torch.fft.fftshift(power, dim=(-2, -1)).float()


def analytic_encoding(image, span: int, *, window: str = "lot") -> np.ndarray:
    """The encoding read straight from a clean image: its inverse Fourier transform is the
    lots' circular pair correlation (Wiener-Khinchin), divided by its value at r = 0.

    Parameters
    ----------
    image : (L, L) or (B, L, L) array
        Diffraction image(s) with zero frequency at (L//2, L//2), any positive scale.
    span : int
    window : {"lot", "periodic"}
        ``"lot"``: lots are windows of a larger lattice, so a pair at offset r is inside a lot
        (L - |dx|)(L - |dy|) / L^2 of the time and the value is divided by that; ``"periodic"``:
        the image is of a whole periodic lattice (exact: the identity to rounding).

    Returns
    -------
    (D,) or (B, D) float64
    """
    img = np.asarray(image, dtype=np.float64)
    one = img.ndim == 2
    img = img[None] if one else img
    if img.ndim != 3 or img.shape[1] != img.shape[2]:
        raise XrayAtlasError(f"image: expected a square 2-D image, got shape {np.shape(image)}")
    if window not in ("lot", "periodic"):
        raise XrayAtlasError(f"window={window!r}; choose lot or periodic")
    a = pair_correlations(img, offsets(span), window=window)
    return a[0] if one else a


def pair_correlations(img: np.ndarray, offs, *, window: str = "lot") -> np.ndarray:
    """(B, len(offs)) correlations of (B, L, L) images at offsets (dx, dy), normalised by r = 0
    (and by the share of pairs inside a lot for ``window="lot"``); 0 where the image is empty."""
    L = img.shape[-1]
    corr = np.fft.ifft2(np.fft.ifftshift(img, axes=(-2, -1))).real  # (B, L, L), [dy, dx]
    c0 = corr[:, 0, 0]
    out = []
    for dx, dy in offs:
        v = corr[:, dy % L, dx % L] / np.where(c0 > 0, c0, 1.0)
        if window == "lot":
            v = v * L * L / ((L - abs(dx)) * (L - abs(dy)))
        out.append(np.where(c0 > 0, v, 0.0))
    return np.stack(out, axis=1)


@dataclass
class LatticeBatch:
    """Lattices made by :func:`simulate_lattices`.

    Attributes
    ----------
    lattices : (B, N, N) uint8
    encoding : (B, D) float64, measured on each lattice (the label, docs/dev/contracts.md section 5)
    target : (B, D) float64 or None, the targets of the feedback
    couplings : (B, D) float64, the final pair couplings
    converged : (B,) bool, every coefficient within the tolerance of its target (all True
        without targets)
    sweeps : int, Monte Carlo sweeps run
    """

    lattices: np.ndarray
    encoding: np.ndarray
    target: np.ndarray | None
    couplings: np.ndarray
    converged: np.ndarray
    sweeps: int

    @property
    def error(self) -> np.ndarray:
        """(B,) largest |measured - target| (NaN without targets)."""
        if self.target is None:
            return np.full(len(self.encoding), np.nan)
        return np.abs(self.encoding - self.target).max(axis=1)


def random_couplings(span: int, n: int, rng=None, *, scale: float | None = None) -> np.ndarray:
    """(n, D) pair couplings that give varied, mostly short-ranged order: each offset's
    coupling is normal with a standard deviation that falls with distance, and the whole
    vector is shrunk when its total strength would freeze the lattice."""
    d = np.array([np.hypot(dx, dy) for dx, dy in offsets(span)])
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    sd = (0.35 if scale is None else scale) / d
    j = gen.normal(0.0, 1.0, size=(n, len(d))) * sd
    total = np.abs(j).sum(axis=1, keepdims=True)
    limit = 0.6  # above ~0.9 in sum|J| the lattice orders in long domains (2-D Ising: 4 x 0.22)
    return j * np.minimum(1.0, limit / np.maximum(total, 1e-12))


def _period(n: int, span: int) -> int:
    """Smallest divisor p >= span of n: sites p apart in both directions never interact."""
    for p in range(span, n + 1):
        if n % p == 0:
            return p
    return n  # pragma: no cover - p = n always divides


def simulate_lattices(**kwargs) -> LatticeBatch:
    """Monte Carlo lattices, either at fixed couplings or steered to target encodings; the
    parameters are those of :func:`iter_lattices`."""
    from ..cube import run_to_end

    return run_to_end(iter_lattices(**kwargs))


def iter_lattices(
    *,
    span: int,
    n: int | None = None,
    target=None,
    couplings=None,
    size: int = 96,
    concentration: float = 0.5,
    sweeps: int = 200,
    tolerance: float = 0.03,
    gain: float = 0.5,
    measure_every: int = 4,
    max_sweeps: int = 3000,
    rng=None,
    device: str = "cpu",
):
    """Generator form of :func:`simulate_lattices`: yields :class:`~xray_atlas.cube.Progress`
    in sweeps (so a worker can cancel between them) and returns the :class:`LatticeBatch`.

    Parameters
    ----------
    span : int
        2, 3 or 4.
    n : int, optional
        Number of lattices (taken from ``target`` or ``couplings`` when given).
    target : (B, D) or (D,) array, optional
        Encodings to reach: couplings start at zero and follow the feedback until every
        coefficient is within ``tolerance`` (or ``max_sweeps``); converged lattices stop
        changing.
    couplings : (B, D) or (D,) array, optional
        Fixed couplings (no feedback); ``sweeps`` heat-bath sweeps from a random start.
    size : int
        Lattice side N (>= 2 x span).
    concentration : float
        Occupied fraction m in (0, 1), held by a field solved at every sublattice update.
    tolerance, gain, measure_every, max_sweeps :
        Feedback settings: largest allowed |a - target|, coupling step per unit error,
        sweeps between measurements, and the cap.
    rng : int or Generator, optional
    device : str
        Torch device ("cpu", "cuda", ...).
    """
    import torch

    from ..cube import Progress

    s = _check_span(span)
    d = SPANS[s]
    if size < 2 * s:
        raise XrayAtlasError(f"size={size} must be at least 2 x span = {2 * s}")
    if not 0 < concentration < 1:
        raise XrayAtlasError(f"concentration={concentration} must lie strictly between 0 and 1")
    if (target is None) == (couplings is None):
        raise XrayAtlasError("give either target (encodings to reach) or couplings, not both or neither")
    given = np.atleast_2d(np.asarray(target if target is not None else couplings, dtype=np.float64))
    if given.shape[1] != d:
        name = "target" if target is not None else "couplings"
        raise XrayAtlasError(f"{name}: span {s} needs {d} values per lattice, got {given.shape[1]}")
    if not np.all(np.isfinite(given)):
        raise XrayAtlasError("target/couplings: values must be finite")
    b = given.shape[0] if n is None else int(n)
    if given.shape[0] not in (1, b):
        raise XrayAtlasError(f"n={n} does not match the {given.shape[0]} rows given")
    given = np.broadcast_to(given, (b, d))
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    tgen = torch.Generator(device=device).manual_seed(int(gen.integers(2**62)))
    dev = torch.device(device)

    p = _period(size, s)
    q = size // p
    offs = offsets(s)
    # neighbours of sublattice (py, px) at +r and -r: (offset, sub-row, sub-col, block shifts y, x)
    neigh = {}
    for py in range(p):
        for px in range(p):
            lst = []
            for k, (dx, dy) in enumerate(offs):
                for sign in (1, -1):
                    yy, xx = py + sign * dy, px + sign * dx
                    lst.append((k, yy % p, xx % p, yy // p, xx // p))
            neigh[py, px] = lst
    n_sites = size * size

    def sweep(spins, J, h) -> None:
        """One heat-bath sweep, sublattice by sublattice, in place."""
        bb = spins.shape[0]
        view = spins.view(bb, q, p, q, p)  # [b, Y, py, X, px] = site (Y p + py, X p + px)
        for (py, px), lst in neigh.items():
            field = torch.zeros((bb, q, q), device=dev)
            for k, sy, sx, by, bx in lst:
                nb = view[:, :, sy, :, sx]
                if by or bx:
                    nb = torch.roll(nb, shifts=(-by, -bx), dims=(1, 2))
                field += J[:, k, None, None] * nb
            # the field that makes this sublattice's expected occupancy the target concentration
            # plus the lattice's current shortfall (a fixed field lets an ordered lattice fill up;
            # making each sublattice repay all of the others' excess would anti-correlate them)
            m_now = (spins.sum(dim=(1, 2)) / n_sites + 1) / 2
            want = (2 * concentration - m_now).clamp(0.02, 0.98)
            for _ in range(4):  # damped Newton steps on h
                pr = torch.sigmoid(2 * (field + h[:, None, None]))
                f = pr.mean(dim=(1, 2)) - want
                df = (2 * pr * (1 - pr)).mean(dim=(1, 2)).clamp_min(1e-3)
                h -= (f / df).clamp(-1.0, 1.0)
            up = torch.rand((bb, q, q), generator=tgen, device=dev) < torch.sigmoid(2 * (field + h[:, None, None]))
            view[:, :, py, :, px] = up.float() * 2 - 1

    fixed = target is None
    spins = (torch.rand((b, size, size), generator=tgen, device=dev) < concentration).float() * 2 - 1
    h = torch.zeros(b, device=dev)
    done = 0
    # nothing here requires grad: no autograd graph is built (and grad mode is thread state,
    # which a generator must not hold across its yields)
    if fixed:
        J = torch.tensor(np.array(given), dtype=torch.float32, device=dev)
        for _ in range(sweeps):
            sweep(spins, J, h)
            done += 1
            if done % measure_every == 0:
                yield Progress(done, sweeps, "sweeps")
        converged = np.ones(b, dtype=bool)
        J_out = np.array(given)
    else:
        J_out = np.zeros((b, d))
        converged = np.zeros(b, dtype=bool)
        live = np.arange(b)  # lattices still steered; converged ones leave the batch
        J, cur = torch.zeros((b, d), device=dev), spins.clone()
        tgt = torch.tensor(np.array(given), dtype=torch.float32, device=dev)
        while done < max_sweeps and live.size:
            for _ in range(measure_every):
                sweep(cur, J, h)
            done += measure_every
            yield Progress(done, max_sweeps, "sweeps")
            x = (cur + 1) / 2
            a = _correlations(x, s)
            m = x.mean(dim=(1, 2))
            ok = ((a - tgt).abs().amax(dim=1) <= tolerance) & ((m - concentration).abs() <= 2.0 / size)
            fin = ok.cpu().numpy()
            last = done >= max_sweeps
            if fin.any() or last:
                leave = np.ones_like(fin) if last else fin
                idx = torch.from_numpy(np.flatnonzero(leave)).to(dev)
                spins[torch.from_numpy(live[leave]).to(dev)] = cur[idx]
                J_out[live[leave]] = J[idx].double().cpu().numpy()
                converged[live[fin]] = True
                keep = torch.from_numpy(np.flatnonzero(~leave)).to(dev)
                live = live[~leave]
                cur, J, tgt, h, a = cur[keep], J[keep], tgt[keep], h[keep], a[keep]
            J += gain * (tgt - a)
    lattices = ((spins + 1) / 2).to(torch.uint8)
    enc = _correlations(lattices.double(), s)
    return LatticeBatch(
        lattices.cpu().numpy(), enc.cpu().numpy(), None if fixed else np.array(given), J_out, converged, done
    )


def make_dataset(
    *,
    span: int,
    n: int,
    size: int = 64,
    lot: int = 32,
    n_lots: int = 32,
    sweeps: int = 150,
    scale: float | None = None,
    seed: int = 0,
    batch: int = 256,
    device: str = "cpu",
    progress=None,
) -> dict:
    """Image/encoding pairs from random couplings: {"images" (n, lot, lot) float32 clean,
    "encoding" (n, D) measured, "couplings" (n, D), "settings"}.

    ``progress(done, total)`` is called after every batch.
    """
    _check_span(span)
    if n < 1:
        raise XrayAtlasError(f"n={n} must be >= 1")
    if not 2 <= lot <= size:
        raise XrayAtlasError(f"lot={lot} must lie between 2 and size={size}")
    rng = np.random.default_rng(seed)
    images, enc, coup = [], [], []
    for a in range(0, n, batch):
        k = min(batch, n - a)
        j = random_couplings(span, k, rng, scale=scale)
        lb = simulate_lattices(span=span, couplings=j, size=size, sweeps=sweeps, rng=rng, device=device)
        images.append(diffraction_image(lb.lattices, lot=lot, n_lots=n_lots, rng=rng).reshape(k, lot, lot))
        enc.append(lb.encoding)
        coup.append(j)
        if progress is not None:
            progress(a + k, n)
    settings = {
        "span": span,
        "n": n,
        "size": size,
        "lot": lot,
        "n_lots": n_lots,
        "sweeps": sweeps,
        "scale": scale if scale is not None else 0.35,
        "seed": seed,
        "concentration": 0.5,
    }
    return {
        "images": np.concatenate(images),
        "encoding": np.concatenate(enc),
        "couplings": np.concatenate(coup),
        "settings": settings,
    }


def save_dataset(path, data: dict) -> None:
    """Write a dataset of :func:`make_dataset` to HDF5 (atomically), settings as root attrs."""
    from ..io.results import atomic_h5

    with atomic_h5(path) as f:
        f.create_dataset("images", data=data["images"], compression="gzip", shuffle=True)
        f.create_dataset("encoding", data=data["encoding"])
        f.create_dataset("couplings", data=data["couplings"])
        for k, v in data["settings"].items():
            f.attrs[k] = v


def load_dataset(path) -> dict:
    """Read a dataset written by :func:`save_dataset`."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {
                "images": f["images"][()],
                "encoding": f["encoding"][()],
                "couplings": f["couplings"][()],
                "settings": {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()},
            }
    except (OSError, KeyError) as err:
        raise XrayAtlasError(f"not a diffraction dataset ({err})", path=path) from None
