import os
import stat

import numpy as np
import pytest

from xray_atlas._cache import cache_dir, cached_arrays


@pytest.fixture()
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_arrays_are_computed_once_then_read(cache_home):
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(5.0), "b": np.eye(2)}

    first = cached_arrays("demo", ("x", 1), compute)
    second = cached_arrays("demo", ("x", 1), compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(second["a"], first["a"])
    np.testing.assert_array_equal(second["b"], np.eye(2))
    assert str(cache_dir()).startswith(str(cache_home))
    assert not list((cache_dir() / "demo").glob("*.part"))  # written atomically, nothing left over


def test_another_key_or_a_broken_file_computes_again(cache_home):
    cached_arrays("demo", ("x", 1), lambda: {"a": np.zeros(3)})
    assert cached_arrays("demo", ("x", 2), lambda: {"a": np.ones(3)})["a"].sum() == 3
    (path,) = [p for p in (cache_dir() / "demo").glob("*.npz") if np.load(p)["a"].sum() == 0]
    path.write_bytes(b"not an npz")
    assert cached_arrays("demo", ("x", 1), lambda: {"a": np.full(3, 2.0)})["a"].sum() == 6
    assert np.load(path)["a"].sum() == 6  # replaced


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_cache_still_answers(cache_home):
    cache_home.mkdir()
    cache_home.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert cached_arrays("demo", ("x",), lambda: {"a": np.ones(2)})["a"].sum() == 2
    finally:
        cache_home.chmod(stat.S_IRWXU)


def test_tube_spectrum_from_the_cache_is_spekpys(cache_home):
    # SpekPy itself, run here, is the reference
    from xray_atlas.physics.tube import Tube, _run_spekpy, _spekpy, tube_spectrum

    _spekpy.cache_clear()
    k, f = tube_spectrum(Tube(kv=35.0), de=0.2)
    assert len(list((cache_dir() / "tube").glob("*.npz"))) == 1
    _spekpy.cache_clear()
    k2, f2 = tube_spectrum(Tube(kv=35.0), de=0.2)  # read back from the file
    ref = _run_spekpy("Rh", 35.0, 100.0, 20.0, (), 0.2)
    np.testing.assert_array_equal(k2, ref["k"])
    np.testing.assert_allclose(f2, ref["f"] * 1e4 * 0.6, rtol=1e-12)
    np.testing.assert_array_equal(f2, f)
