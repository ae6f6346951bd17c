"""tf.distribute: two replicas compute the one-device step; checkpoints move between device
counts; two worker processes on 127.0.0.1 train, are interrupted and resume."""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import MNIST_SMALL, ROOT, TINY_RUN

import infogan
from utils import load_dataset, load_generator


def two_replicas():
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def sgd_step(strategy, config, weights=None):
    """Networks (float32, batch norm synchronized over replicas) with plain SGD, so an update
    is exactly -lr * gradient, and their train step under `strategy`."""
    with strategy.scope():
        keras.utils.set_random_seed(0)
        networks = infogan.build_models("float32", strategy.num_replicas_in_sync > 1)
        optimizers = keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1)
        for optimizer, network in zip(optimizers, networks, strict=True):
            optimizer.build(network.trainable_variables)
    if weights is not None:
        for network, values in zip(networks, weights, strict=True):
            network.set_weights(values)
    replica_step = infogan.make_replica_step(*networks, *optimizers, config)
    return networks, infogan.make_train_step(replica_step, strategy)


def test_one_step_on_two_replicas_equals_one_device_step_on_the_global_batch():
    config = infogan.Config(batch_size=32, data=MNIST_SMALL)
    x_train = tf.constant(load_dataset("mnist", MNIST_SMALL)[0])
    seed = tf.constant([11, 12], tf.int32)
    runs, weights = [], None
    for strategy in (tf.distribute.get_strategy(), two_replicas()):
        networks, step = sgd_step(strategy, config, weights)
        weights = [network.get_weights() for network in networks]  # the same start for both
        iterator = infogan.dataset_iterator(strategy, x_train, config, epoch=1)
        losses = {k: v.numpy() for k, v in step(next(iterator), seed).items()}
        after = [w for network in networks for w in network.get_weights()]
        start = [w for values in weights for w in values]
        runs.append((losses, [a - b for a, b in zip(after, start, strict=True)]))
    (one_losses, one_updates), (two_losses, two_updates) = runs
    assert two_losses.keys() == one_losses.keys()
    for name in one_losses:  # the replicas' shares add up to the global batch mean
        np.testing.assert_allclose(two_losses[name], one_losses[name], rtol=1e-4, err_msg=name)
    for one, two in zip(one_updates, two_updates, strict=True):  # to round-off
        np.testing.assert_allclose(two, one, rtol=1e-3, atol=1e-3 * np.abs(one).max() + 1e-9)
    assert max(np.abs(u).max() for u in one_updates) > 0


@pytest.mark.slow
def test_a_mirrored_run_resumes_a_one_device_checkpoint(tmp_path, trained_run, capsys):
    out = str(tmp_path / "run")
    shutil.copytree(trained_run, out)
    infogan.main(["--epochs", "3", "--strategy", "mirrored", "--out", out, *TINY_RUN])
    output = capsys.readouterr().out
    assert "resuming" in output and "on 2 replica(s)" in output
    assert json.load(open(os.path.join(out, "model", "config.json")))["replicas"] == 2
    epochs = pd.read_csv(os.path.join(out, "figures", "losses_per_epoch.csv"))
    assert epochs["epoch"].tolist() == [1, 2, 3]
    load_generator(out)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(out, epochs, ports):
    workers = [f"127.0.0.1:{port}" for port in ports]
    processes = []
    for index in range(len(workers)):
        task = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        environment = {**os.environ, "TF_CONFIG": json.dumps(task)}
        processes.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "infogan.py"), "--strategy", "multiworker",
             "--epochs", str(epochs), "--out", out, *TINY_RUN],
            cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        ))  # fmt: skip
    return processes


def stop(processes):
    for process in processes:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_two_workers_train_are_interrupted_and_resume(tmp_path):
    out = str(tmp_path / "run")
    processes = start_workers(out, 2, free_ports(2))
    deadline = time.monotonic() + 300
    try:
        while not glob.glob(os.path.join(out, "checkpoints", "ckpt-1.index")):
            assert all(p.poll() is None for p in processes), processes[0].stdout.read()
            assert time.monotonic() < deadline, "no checkpoint from the workers in time"
            time.sleep(0.1)
    finally:
        stop(processes)  # both workers killed mid-run
    processes = start_workers(out, 2, free_ports(2))  # the same command again
    try:
        outputs = [p.communicate(timeout=300)[0] for p in processes]
    finally:
        stop(processes)
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert "resuming" in outputs[0] and "on 2 replica(s)" in outputs[0]
    assert "done:" in outputs[0] and "done:" not in outputs[1]  # only the chief writes
    epochs = pd.read_csv(os.path.join(out, "figures", "losses_per_epoch.csv"))
    assert epochs["epoch"].tolist() == [1, 2]
    steps = pd.read_csv(os.path.join(out, "figures", "losses_per_step.csv"))
    assert steps["step"].tolist() == list(range(1, 21))
    # The chief's checkpoint restores into a one-device run.
    infogan.main(["--epochs", "3", "--out", out, *TINY_RUN])
    assert pd.read_csv(os.path.join(out, "figures", "losses_per_epoch.csv"))["epoch"].max() == 3
