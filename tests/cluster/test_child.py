"""Clustering in a child process (cluster.iter_cluster_in_child): the napari dock's way, which
keeps UMAP's and HDBSCAN's GIL-holding loops out of napari's process (docs/benchmarks.md)."""

import multiprocessing as mp

import numpy as np
import pytest

from xray_atlas._processes import cube_source
from xray_atlas.cluster import iter_cluster, iter_cluster_in_child
from xray_atlas.cube import SpectralCube, run_to_end
from xray_atlas.errors import XrayAtlasError
from xray_atlas.io import read
from xray_atlas.physics.painting import synthetic_painting


@pytest.fixture(scope="module")
def painting():
    return synthetic_painting(20, 24, seed=5)


def _jobs():
    return [p for p in mp.active_children() if p.name == "xray-atlas-job"]


def test_the_child_labels_as_the_thread_does_from_hdf5_and_npy(painting, tmp_path):
    h5 = tmp_path / "p.h5"
    painting.write(h5)
    npy = tmp_path / "p.npy"
    np.save(npy, painting.counts)
    kw = {"method": "som", "seed": 3, "rows": 2, "cols": 2, "epochs": 2}
    for path, kind in ((h5, "hdf5"), (npy, "memmap")):
        cube = read(path)
        assert cube_source(cube).kind == kind  # the child opens the file again: nothing copied
        here = run_to_end(iter_cluster(cube, **kw))
        there = run_to_end(iter_cluster_in_child(cube, **kw))
        np.testing.assert_array_equal(there.labels, here.labels)
        np.testing.assert_allclose(there.spectra, here.spectra, rtol=1e-6)
        cube.close()
    assert not _jobs()


def test_closing_the_generator_ends_the_child(painting):
    steps = iter_cluster_in_child(SpectralCube(painting.counts), "som", rows=2, cols=2, epochs=2)
    next(steps)  # the child has started and reported
    assert len(_jobs()) == 1
    steps.close()
    assert not _jobs()


def test_bad_parameters_fail_before_any_process_and_unpicklable_counts_stay_here(painting):
    with pytest.raises(XrayAtlasError, match="rows=0"):
        iter_cluster_in_child(SpectralCube(painting.counts), "som", rows=0)
    with pytest.raises(XrayAtlasError, match="nice"):
        iter_cluster_in_child(SpectralCube(painting.counts), "som", nice=40)
    import dask.array as da

    local = da.from_array(painting.counts, chunks=(5, 24, painting.counts.shape[2])).map_blocks(lambda b: b + 0)
    steps = iter_cluster_in_child(SpectralCube(local), "som", rows=2, cols=2, epochs=2)
    result = run_to_end(steps)  # a dask graph over a local function cannot pickle: run on this thread
    assert result.labels.shape == (20, 24) and not _jobs()
