"""Data-parallel training on dask.distributed and data in shards (gdsl/tools/distributed.py,
gdsl run --workers / --scheduler / --data DIR|GLOB): the params of serial training to 1e-12
relative in float64, on 2 worker processes on 127.0.0.1 (one cluster for the module, started
and closed here) and on the threaded scheduler; a worker killed mid-epoch; shards read by the
workers or streamed; models that sharding would change refused at their line; the CLI.

The reference is serial training (gdsl.tools.train.train, which knows nothing of workers or
shards) on the same data in one array or one file."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from typing import ClassVar

import numpy as np
import pytest
from helpers import ROOT

from gdsl.cli import main
from gdsl.errors import GdslError
from gdsl.tools import data as D
from gdsl.tools import distributed
from gdsl.tools.train import train as serial_train

SOFTMAX = str(ROOT / "models" / "linear_softmax.gdsl")
MLP2 = str(ROOT / "models" / "mlp2.gdsl")
SUM_OVER_N = """input x[d, n]
input y[C, n]
param W[C, d] ~ normal(0, 0.01)
param b[C, 1] ~ zeros

s = W @ x + b
p = softmax(s)
J = xent(p, y) + 0.001 * sum(s)
loss J
"""
BATCH_STATISTICS = SUM_OVER_N.replace("s = W @ x + b", "mu = mean(x, axis=1, keepdims=True)\n"
                                      "s = W @ (x - mu) + b").replace(" + 0.001 * sum(s)", "")


@pytest.fixture(scope="module")
def cluster():
    """2 worker processes on 127.0.0.1, for the whole module; closed at its end."""
    with distributed.Cluster(workers=2) as c:
        yield c


@pytest.fixture
def scheduler(cluster):
    """The cluster's address, with both workers up (a test may have killed one: its nanny
    starts another)."""
    cluster.client.wait_for_workers(2, timeout=60)
    return cluster.cluster.scheduler_address


def assert_same_params(got: dict, want: dict, rtol: float = 1e-12) -> None:
    assert set(got) == set(want)
    for k, w in want.items():
        assert np.max(np.abs(np.asarray(got[k]) - w)) <= rtol * np.max(np.abs(w)), k


def assert_same_history(got: list, want: list, rtol: float = 1e-12) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for k in ("train_loss", "train_cost", "val_loss", "val_cost"):
            assert g[k] == pytest.approx(w[k], rel=rtol), (g["epoch"], k)
        # (accuracies too: the workers' are combined as the example-weighted mean)
        for k in ("train_accuracy", "val_accuracy"):
            assert g[k] == pytest.approx(w[k], rel=rtol), (g["epoch"], k)


def digits_shards(tmp_path, kind: str, sizes=(600, 600, 597)) -> tuple[str, str]:
    """The digits in one file and cut into files of ``sizes`` examples in a directory, in
    order (.npz arrays named like the model's inputs, or .csv rows with a label column)."""
    t = D.digits()
    X, y = t.X, t.y
    folder = tmp_path / f"shards-{kind}"
    folder.mkdir()
    cuts = np.cumsum([0, *sizes])
    assert cuts[-1] == len(y)

    def write(path, rows):
        if kind == "npz":
            np.savez(path, x=X[rows], y=y[rows])
        else:
            header = ",".join([f"p{j}" for j in range(X.shape[1])] + ["label"])
            np.savetxt(path, np.column_stack([X[rows], y[rows]]), fmt="%.17g", delimiter=",",
                       header=header, comments="")

    whole = tmp_path / f"all.{kind}"
    write(whole, slice(None))
    for k in range(len(sizes)):
        write(folder / f"part{k}.{kind}", slice(cuts[k], cuts[k + 1]))
    return str(whole), str(folder)


# -- the same params as serial training ---------------------------------------------------------

def test_two_worker_processes_train_as_serial_training_does(scheduler):
    want = serial_train(MLP2, epochs=2, seed=3)
    got = distributed.train(MLP2, scheduler=scheduler, epochs=2, seed=3)
    assert_same_params(got.params, want.params)
    assert_same_history(got.history, want.history)
    assert got.workers_lost == []


def test_threaded_scheduler_trains_as_serial_training_does():
    want = serial_train(SOFTMAX, epochs=3, seed=5, batch_size=64, optimizer="adam", lr=0.01)
    got = distributed.train(SOFTMAX, workers=2, processes=False, epochs=3, seed=5,
                            batch_size=64, optimizer="adam", lr=0.01)
    assert_same_params(got.params, want.params)
    assert_same_history(got.history, want.history)


# -- faults ---------------------------------------------------------------------------------------

def test_worker_killed_mid_epoch_is_survived_with_the_same_params(scheduler, cluster, tmp_path,
                                                                  capsys, monkeypatch):
    """gdsl run --scheduler ... --save: a worker process killed (SIGKILL) after the 5th step
    of the first epoch; the lost shard is placed again, the step computed again; the saved
    params (over an older file) are serial training's."""
    want = serial_train(SOFTMAX, epochs=2, seed=3)
    combine, calls = distributed._combine, []

    def combine_then_kill(*args):
        calls.append(1)
        if len(calls) == 5:
            pids = cluster.client.run(os.getpid)
            os.kill(pids[min(pids)], signal.SIGKILL)
        return combine(*args)

    monkeypatch.setattr(distributed, "_combine", combine_then_kill)
    save = tmp_path / "params.npz"
    save.write_bytes(b"old")
    code = main(["run", SOFTMAX, "--scheduler", scheduler, "--epochs", "2", "--seed", "3",
                 "--save", str(save), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "gdsl: warning: lost worker" in err and "Traceback" not in err
    with np.load(save) as saved:
        assert_same_params(dict(saved), want.params)
    records = [json.loads(line) for line in out.splitlines()]
    assert_same_history(records, want.history)


class ClosesItsWorker(distributed.Shard):
    """A shard whose first making closes the worker making it (for worker threads; defined
    here so that dask passes it by reference and ``made`` is this module's)."""

    made: ClassVar[list] = []

    def __init__(self, *args, **kwargs):
        from distributed import get_worker
        worker = get_worker()
        self.made.append(worker.address)
        if len(self.made) == 1:
            worker.loop.add_callback(worker.close)
            time.sleep(0.5)         # (closing while the shard is being made)
        super().__init__(*args, **kwargs)


def test_worker_lost_while_the_shards_are_placed(monkeypatch):
    """The first worker (a thread) to make a shard closes while making it: the shard is made
    again on the other worker, and training is serial training's."""
    monkeypatch.setattr(distributed, "Shard", ClosesItsWorker)
    monkeypatch.setattr(ClosesItsWorker, "made", [])
    want = serial_train(SOFTMAX, epochs=2, seed=3)
    got = distributed.train(SOFTMAX, workers=2, processes=False, epochs=2, seed=3)
    made = ClosesItsWorker.made
    assert len(made) == 3 and made[2] != made[0]
    assert_same_params(got.params, want.params)


def test_no_worker_left_stops_cleanly_and_keeps_the_old_save(tmp_path, capsys, monkeypatch):
    """The only worker (a thread) closed mid-epoch: gdsl waits WAIT seconds for another, then
    stops with one error; the --save file is the old one."""
    monkeypatch.setattr(distributed, "WAIT", 0.5)
    with distributed.Cluster(workers=1, processes=False) as one:
        combine, calls = distributed._combine, []

        def combine_then_close(*args):
            calls.append(1)
            if len(calls) == 5:
                (worker,) = one.cluster.workers.values()
                one.cluster.sync(worker.close)
            return combine(*args)

        monkeypatch.setattr(distributed, "_combine", combine_then_close)
        save = tmp_path / "params.npz"
        save.write_bytes(b"old")
        code = main(["run", SOFTMAX, "--scheduler", one.cluster.scheduler_address,
                     "--epochs", "2", "--save", str(save)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "no worker is left" in err and "nothing was saved" in err and "Traceback" not in err
    assert save.read_bytes() == b"old" and os.listdir(tmp_path) == ["params.npz"]


# -- data in shards -------------------------------------------------------------------------------

def test_npz_shards_read_by_the_workers_train_as_the_whole_file(scheduler, tmp_path):
    whole, folder = digits_shards(tmp_path, "npz")
    want = serial_train(SOFTMAX, whole, epochs=2, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # (no shard lost, nothing to warn about)
        got = distributed.train(SOFTMAX, folder, scheduler=scheduler, epochs=2, seed=1)
    assert (got.n_train, got.n_val) == (want.n_train, want.n_val) == (1438, 359)
    assert_same_params(got.params, want.params)
    assert_same_history(got.history, want.history)


def test_csv_shards_streamed_without_workers(tmp_path, capsys):
    """Streamed one shard at a time: full-batch descent is serial training's on the whole
    file (the batch's mean summed in another order: 1e-12); mini-batches from a glob that
    matches one shard are serial training's on that file."""
    whole, folder = digits_shards(tmp_path, "csv")
    settings = {"epochs": 2, "seed": 2, "batch_size": 2000, "lr": 0.5}
    want = serial_train(SOFTMAX, whole, **settings)
    got = distributed.train(SOFTMAX, folder, **settings)
    assert got.data_source == "3 shards"
    assert_same_params(got.params, want.params)
    assert_same_history(got.history, want.history)

    one = os.path.join(folder, "part0.csv")
    want = serial_train(SOFTMAX, one, epochs=2, seed=2, batch_size=32)
    steps = []
    got = distributed.train(SOFTMAX, os.path.join(folder, "*0.csv"), epochs=2, seed=2,
                            batch_size=32, on_step=lambda e, s: steps.append((e, s)))
    assert len(steps) == 2 * -(-480 // 32)         # 600 examples, 120 held out
    assert_same_params(got.params, want.params)

    code = main(["run", SOFTMAX, "--data", folder, "--epochs", "1", "--batch-size", "2000"])
    out, err = capsys.readouterr()
    assert code == 0 and "on 3 shards: 1438 training / 359 validation" in out, err


def test_class_names_in_shards_are_refused(tmp_path):
    """Each shard numbered its own class names in sorted order: a shard without `cat` had
    dog = 0, and a separable set trained to 64%. Class names in shards are one error."""
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "a.csv").write_text("u,v,label\n1,0,cat\n0,1,dog\n1,1,emu\n")
    (folder / "b.csv").write_text("u,v,label\n0,1,dog\n1,1,emu\n")
    with pytest.raises(GdslError, match="class names in shards \\(cat, dog, emu\\)"):
        distributed.train(SOFTMAX, str(folder), epochs=1)


# -- models that sharding would change; the CLI's errors ------------------------------------------

@pytest.mark.parametrize("text, line, col, what", [
    (SUM_OVER_N, 8, 26, "this reduces over the examples without averaging them"),
    (BATCH_STATISTICS, 7, 9, "a statistic of the batch is used per example"),
], ids=["sum over n", "batch statistics"])
def test_model_sharding_would_change_is_refused_at_its_line(tmp_path, text, line, col, what):
    model = tmp_path / "model.gdsl"
    model.write_text(text)
    with pytest.raises(GdslError) as e:
        distributed.train(str(model), workers=2, processes=False, epochs=1)
    message = e.value.render()
    assert f"{model}:{line}:{col}: error: {what}" in message
    assert "train without --workers" in message


def test_cli_refuses_a_sum_over_the_examples_at_its_line(scheduler, tmp_path, capsys):
    model = tmp_path / "sum.gdsl"
    model.write_text(SUM_OVER_N)
    save = tmp_path / "p.npz"
    code = main(["run", str(model), "--scheduler", scheduler, "--save", str(save)])
    _, err = capsys.readouterr()
    assert code == 1 and f"{model}:8:26: error:" in err and "Traceback" not in err
    assert not save.exists()


def test_cli_errors_dask_missing_scheduler_unreachable_no_shards(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)       # (import distributed fails)
    assert main(["run", SOFTMAX, "--workers", "2"]) == 1
    _, err = capsys.readouterr()
    assert "needs dask.distributed" in err and "pip install 'gdsl[dask]'" in err
    monkeypatch.delitem(sys.modules, "distributed")

    with socket.socket() as s:          # a port with no scheduler behind it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(distributed, "CONNECT", 0.5)
    assert main(["run", SOFTMAX, "--scheduler", f"tcp://127.0.0.1:{port}"]) == 1
    _, err = capsys.readouterr()
    assert f"--scheduler tcp://127.0.0.1:{port}: cannot reach a dask scheduler" in err

    assert main(["run", SOFTMAX, "--data", str(tmp_path / "none" / "*.npz")]) == 1
    _, err = capsys.readouterr()
    assert "no data files match" in err and "Traceback" not in err


def test_cli_end_to_end_with_two_worker_processes(tmp_path, capsys):
    """`python -m gdsl run MODEL --workers 2`: its own cluster, the records and the saved
    params of serial `gdsl run`."""
    args = [SOFTMAX, "--epochs", "2", "--seed", "4", "--json"]
    assert main(["run", *args, "--save", str(tmp_path / "serial.npz")]) == 0
    want = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "gdsl", "run", *args, "--workers", "2",
                        "--save", str(tmp_path / "workers.npz")],
                       capture_output=True, text=True, timeout=120, env=env, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert_same_history([json.loads(line) for line in p.stdout.splitlines()], want)
    with np.load(tmp_path / "serial.npz") as a, np.load(tmp_path / "workers.npz") as b:
        assert_same_params(dict(b), dict(a))
