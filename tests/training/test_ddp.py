"""Data-parallel training (issue 33): real torch.distributed process groups on the CPU (gloo,
two processes), started by ``xray-atlas train --ddp 2``, or joining from the environment as
torchrun's workers do."""

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from xray_atlas import XrayAtlasError
from xray_atlas.cli import main
from xray_atlas.io.hdf5 import write_cube
from xray_atlas.training import make_config, train
from xray_atlas.training.distributed import check_processes
from xray_atlas.training.sources import _in_memory_batches, n_batches


def _cube(tmp_path):
    """12 x 16 pixels of 128 channels whose reference maps are sums over channel windows:
    192 pixels, 48 for validation, 144 for training = 4 batches of 32 and one of 16, which
    split evenly over two processes, so that two train exactly like one."""
    rng = np.random.default_rng(5)
    counts = rng.poisson(rng.uniform(1, 20, size=(12, 16, 1)), size=(12, 16, 128)).astype(np.uint16)
    maps = {
        "Fe-K": counts[..., 60:70].sum(-1).astype(np.float32),
        "Pb-L": counts[..., 100:115].sum(-1).astype(np.float32),
    }
    path = tmp_path / "cube.h5"
    write_cube(path, counts, energy_offset_kev=0.0, energy_gain_kev=0.16, maps=maps)
    return path


def _log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_two_cpu_processes_train_like_one(tmp_path, capsys):
    cube = _cube(tmp_path)
    settings = dict(
        source="cubes",
        epochs=2,
        batch_size=32,
        device="cpu",
        seed=3,
        lr=3e-3,
        source_params={"cubes": str(cube), "stride": 1, "val_fraction": 0.25},
        model_params={"hidden": (32,)},
    )
    one = train(make_config("maps", **settings), tmp_path / "one", remember=False)
    two = tmp_path / "two"
    status = main(
        [
            "train",
            "maps",
            str(two),
            "--source",
            "cubes",
            "--param",
            f"cubes={cube}",
            "--param",
            "stride=1",
            "--param",
            "val_fraction=0.25",
            "--model-param",
            "hidden=32",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--seed",
            "3",
            "--lr",
            "3e-3",
            "--ddp",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert status == 0, err
    # rank 0 alone wrote: one model, one state, one log line per epoch (a second writer adds lines)
    assert sorted(os.listdir(two)) == ["card.json", "model.safetensors", "resume.safetensors", "training.csv"]
    rows = _log(two / "training.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # the same global batches, split in two, averaged by DDP: the same run (float rounding aside)
    a, b = load_file(one.path / "model.safetensors"), load_file(two / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6)
    for e, r in zip(one.result.history, rows):
        assert float(r["train_loss"]) == pytest.approx(e.train_loss, rel=1e-5)
        assert float(r["val_loss"]) == pytest.approx(e.val_loss, rel=1e-5)
        assert float(r["metric_pearson"]) == pytest.approx(e.metrics["pearson"], rel=1e-4)
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    card = json.loads((two / "card.json").read_text())
    assert card["training"]["processes"] == 2 and card["training"]["batch_size"] == 32
    # the model is one that --model takes
    assert main(["maps", str(cube), str(tmp_path / "maps.h5"), "--model", str(two), "--device", "cpu"]) == 0
    import h5py

    with h5py.File(tmp_path / "maps.h5") as f:
        assert f["maps/Fe-K"].shape == (12, 16)


# Two ranks joining from the environment as torchrun's workers do (env://, RANK, WORLD_SIZE,
# LOCAL_RANK, MASTER_ADDR/PORT, and TORCHELASTIC_USE_AGENT_STORE: the store is the launcher's).
# torchrun itself is not run here: its store listens on every interface (docs/training.md);
# this launcher holds it on 127.0.0.1, as xray-atlas train --ddp does.
_RANKS_SCRIPT = textwrap.dedent("""
    import json, os, socket, sys
    from datetime import timedelta

    import numpy as np
    import torch
    import torch.multiprocessing as mp


    def rank_main(rank, port, out):
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), TORCHELASTIC_USE_AGENT_STORE="True",
                          TORCHELASTIC_RESTART_COUNT="0")
        torch.set_num_threads(1)
        from safetensors.torch import save_file
        from xray_atlas.training.distributed import join_from_environment, leave
        from xray_atlas.training.loop import fit
        from xray_atlas.training.sources import _in_memory_batches

        ranks = join_from_environment("cpu")
        rng = np.random.default_rng(0)
        x = rng.normal(size=(90, 8)).astype(np.float32)
        y = (x @ rng.normal(size=(8, 2))).astype(np.float32)
        torch.manual_seed(rank)  # other starting weights on each rank: DDP must give all rank 0's
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.Tanh(),
                                    torch.nn.Dropout(0.2), torch.nn.Linear(16, 2))
        val = [(torch.from_numpy(x[i:i + 10]), torch.from_numpy(y[i:i + 10])) for i in range(0, 30, 10)]
        res = fit(model, lambda e: _in_memory_batches(x[30:], y[30:], e, 16, 0, rank=ranks.rank, world=ranks.world),
                  lambda: val, loss_fn=lambda p, t: ((p - t) ** 2).mean(), epochs=3, device="cpu", seed=0, ranks=ranks)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/rank{ranks.rank}.safetensors",
                  metadata={"history": json.dumps([[e.train_loss, e.val_loss] for e in res.history])})
        leave()


    if __name__ == "__main__":
        from torch.distributed import TCPStore

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        store = TCPStore("127.0.0.1", port, None, True, timeout=timedelta(seconds=60), wait_for_workers=False,
                         master_listen_fd=sock.detach(), use_libuv=True)
        mp.start_processes(rank_main, args=(port, sys.argv[1]), nprocs=2, start_method="spawn")
""")


def test_ranks_joined_from_the_environment_end_with_the_same_model(tmp_path):
    """Two ranks that join through env:// (torchrun's way), each starting from other weights,
    with dropout drawing differently on each and BatchNorm statistics of its own share: they
    end with rank 0's weights and buffers exactly, and the same losses."""
    from xray_atlas.training.distributed import _loopback_interface

    script = tmp_path / "ranks.py"
    script.write_text(_RANKS_SCRIPT)
    env = dict(os.environ)
    if _loopback_interface():
        env["GLOO_SOCKET_IFNAME"] = _loopback_interface()
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    from safetensors import safe_open

    states, histories = [], []
    for r in (0, 1):
        with safe_open(str(tmp_path / f"rank{r}.safetensors"), framework="pt") as f:
            states.append({k: f.get_tensor(k) for k in f.keys()})
            histories.append(json.loads(f.metadata()["history"]))
    assert "1.running_mean" in states[0]
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    assert histories[0] == histories[1] and len(histories[0]) == 3
    assert histories[0][2][0] < histories[0][0][0]  # it learnt


def test_shares_of_a_batch_cover_it_once():
    x = np.arange(50, dtype=np.float32)[:, None]
    y = np.arange(50)
    whole = [yb.numpy() for _, yb in _in_memory_batches(x, y, 2, 8, 7)]
    assert [len(b) for b in whole] == [8] * 6 + [2]
    # a last batch of 2 items cannot feed 3 ranks: left out, as every rank must take each step
    assert n_batches(50, 8, 1) == 7 and n_batches(50, 8, 2) == 7 and n_batches(50, 8, 3) == 6
    for world in (2, 3):
        shares = [
            [yb.numpy() for _, yb in _in_memory_batches(x, y, 2, 8, 7, rank=r, world=world)] for r in range(world)
        ]
        assert [len(s) for s in shares] == [n_batches(50, 8, world)] * world
        for i in range(n_batches(50, 8, world)):
            parts = [s[i] for s in shares]
            assert sorted(np.concatenate(parts)) == sorted(whole[i])  # each item once, by one rank
            assert min(map(len, parts)) >= 1 and max(map(len, parts)) - min(map(len, parts)) <= 1


def test_impossible_process_counts_are_refused(tmp_path, capsys, monkeypatch):
    with pytest.raises(XrayAtlasError, match="ddp=3: one process per GPU, and this machine has 2 CUDA GPUs"):
        check_processes(3, "cuda", gpus=2)
    assert check_processes(2, "cuda", gpus=2) == 2 and check_processes(4, "cpu", gpus=0) == 4
    with pytest.raises(XrayAtlasError, match="not on Apple's MPS"):
        check_processes(2, "mps", gpus=0)
    cube = _cube(tmp_path)
    base = ["train", "maps", str(tmp_path / "m"), "--source", "cubes", "--param", f"cubes={cube}", "--device", "cpu"]
    for extra, message in (
        (["--ddp", "0"], "ddp=0: give the number of training processes"),
        (["--ddp", "2", "--batch-size", "1"], "batch_size=1 is smaller than the 2 training processes"),
    ):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    # refused inside the processes, once each has its data: all stop, one line is reported
    tiny = tmp_path / "tiny.h5"
    counts = np.random.default_rng(0).poisson(5, size=(1, 2, 64)).astype(np.uint16)  # 1 pixel to train on
    write_cube(
        tiny, counts, energy_offset_kev=0.0, energy_gain_kev=0.3, maps={"Fe-K": counts.sum(-1).astype(np.float32)}
    )
    assert (
        main(
            [
                "train",
                "maps",
                str(tmp_path / "m"),
                "--source",
                "cubes",
                "--param",
                f"cubes={tiny}",
                "--param",
                "stride=1",
                "--param",
                "val_fraction=0.05",
                "--device",
                "cpu",
                "--ddp",
                "2",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "xray-atlas train: error: too little training data for 2 processes: each needs a share of a batch"
    ), err
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(base + ["--ddp", "2"]) == 2
    assert "under torchrun leave it out" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
