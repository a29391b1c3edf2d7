"""Nothing of the user's is ever lost (issue 27): outputs never replace inputs or files a run
did not write, existing results are replaced only with --overwrite (a read-only one never),
and files written honour the umask."""

import os
import shutil
import stat
import subprocess
import sys

import numpy as np

EXE = shutil.which("xray-atlas") or os.path.join(os.path.dirname(sys.executable), "xray-atlas")


def run(*args, **kw):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=120, **kw)


def assert_one_line_error(res, *needles):
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert res.stdout == "" and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _radiographs(folder, n=2):
    from xray_atlas.imagesets import write_image

    folder.mkdir()
    rng = np.random.default_rng(0)
    return [write_image(folder / f"r{i}", (rng.random((24, 24)) * 60000).astype(np.uint16)) for i in range(n)]


def test_cam_never_writes_over_the_input_radiographs(tmp_path):
    folder = tmp_path / "scans"
    files = _radiographs(folder)
    before = {f: f.read_bytes() for f in files}
    for cam in (folder, "."):
        for extra in ((), ("--overwrite",)):  # not even with --overwrite
            res = run("classify-image", folder, "--cam", cam, *extra, cwd=folder)
            assert_one_line_error(res, "--cam", "would replace the input image")
    assert {f: f.read_bytes() for f in files} == before
    assert sorted(folder.iterdir()) == sorted(files)


def test_cam_follows_the_overwrite_policy(tmp_path):
    files = _radiographs(tmp_path / "scans")
    cams = tmp_path / "cams"
    assert run("classify-image", *files, "--cam", cams).returncode == 0
    old = (cams / "r0.png").read_bytes()
    assert_one_line_error(run("classify-image", *files, "--cam", cams), "r0.png", "--overwrite")
    res = run("classify-image", *files, "--cam", cams, "--overwrite")
    assert res.returncode == 0, res.stderr
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:  # refused by its mode, even for root
        assert_one_line_error(run("classify-image", *files, "--cam", ro), "--cam", "not writable")
    finally:
        ro.chmod(0o755)
    assert (cams / "r0.png").read_bytes() == old  # the same model and image give the same map


def test_train_keeps_the_users_csv_and_resume_files(tmp_path):
    out = tmp_path / "m.safetensors"
    mine = {tmp_path / "m.csv": b"sample,Pb\n1,2\n", tmp_path / "m.resume": b"my notes"}
    for p, data in mine.items():
        p.write_bytes(data)
    small = [
        "--param",
        "n_train=64",
        "--param",
        "n_val=32",
        "--param",
        "n_channels=256",
        "--param",
        "gain_kev=0.08",
        "--model-param",
        "hidden=8",
        "--device",
        "cpu",
        "--epochs",
        "1",
    ]
    for extra in ((), ("--overwrite",)):
        assert_one_line_error(run("train", "maps", out, *small, *extra), "not written by a training run")
    assert {p: p.read_bytes() for p in mine} == mine and not out.exists()


def test_train_needs_overwrite_for_an_earlier_runs_log(tmp_path):
    out = tmp_path / "m.safetensors"
    log = tmp_path / "m.csv"
    log.write_text("epoch,epochs,train_loss,val_loss,lr\n1,1,0.5,0.5,0.001\n")
    assert_one_line_error(run("train", "maps", out, "--epochs", "1"), "earlier run's training log", "--overwrite")
    assert log.exists()


def test_results_are_refused_unless_overwrite_and_never_when_read_only(tmp_path):
    cube = tmp_path / "p.h5"
    res = run("simulate", "painting", cube, "--height", 6, "--width", 6, "--channels", 512)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "maps.h5"
    assert run("maps", cube, out, "--model", "roi").returncode == 0
    first = out.read_bytes()
    assert_one_line_error(run("maps", cube, out, "--model", "lsq"), "maps.h5", "exists", "--overwrite")
    assert out.read_bytes() == first
    assert run("maps", cube, out, "--model", "lsq", "--overwrite").returncode == 0
    assert out.read_bytes() != first
    out.chmod(0o444)
    kept = out.read_bytes()
    assert_one_line_error(run("maps", cube, out, "--model", "roi", "--overwrite"), "read-only")
    assert out.read_bytes() == kept and _mode(out) == 0o444
    assert_one_line_error(run("simulate", "painting", cube, "--height", 4), "p.h5", "--overwrite")


def test_written_files_honour_the_umask(tmp_path):
    def run_umask(mask, *args):
        return subprocess.run(
            [EXE, *map(str, args)], capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(mask)
        )

    for mask in (0o022, 0o002, 0o077):
        cube = tmp_path / f"p{mask:o}.h5"
        assert (
            run_umask(mask, "simulate", "painting", cube, "--height", 4, "--width", 4, "--channels", 256).returncode
            == 0
        )
        assert _mode(cube) == 0o666 & ~mask
        out = tmp_path / f"m{mask:o}.h5"
        assert run_umask(mask, "maps", cube, out, "--model", "roi").returncode == 0
        assert _mode(out) == 0o666 & ~mask


def test_model_files_honour_the_umask(tmp_path):
    import torch

    from xray_atlas.models import ModelCard, save_model

    old = os.umask(0o022)
    try:
        model = torch.nn.Linear(2, 2)
        card = ModelCard("x", {}, "maps")
        save_model(tmp_path / "m.safetensors", model, card)
        save_model(tmp_path / "folder", model, card)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "m.safetensors") == 0o644
    assert _mode(tmp_path / "folder") == 0o755 and _mode(tmp_path / "folder" / "card.json") == 0o644
