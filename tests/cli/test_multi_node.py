"""Two "nodes" on one machine: `fit --num-nodes 2 --devices 1`, started as two separate
commands with NODE_RANK 0 and 1 (what a user types on two machines), one gloo process
each, talking over 127.0.0.1.

Both nodes get the same --out, as on a shared filesystem. The reference is the
single-node run with `--devices 2`: the same two processes, numbered the same way,
so the weights must agree to the last bit on CPU. The last tests check the option
and what a resumed run takes from its checkpoint, without training.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from contraclust.cli import build_config, build_parser
from contraclust.config import RunConfig
from contraclust.training.checkpoint import FORMAT, FORMAT_VERSION, read_checkpoint, save_checkpoint
from contraclust.training.loop import RESUME_SETTINGS, keep_run_settings
from contraclust.training.rundir import LAST

COMMON = ["digits", "--method", "cc", "--device", "cpu", "--batch-size", "128"]
COMMON += ["--quiet", "--no-report", "--eval-every", "0"]
#: Seconds one launch may take before its processes are killed.
LAUNCH_TIMEOUT = 300
#: Variables through which a launcher or a cluster names a process's rank; a test run
#: inside a SLURM job or under torchrun must not lend them to the commands it starts.
LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "GROUP_RANK", "NODE_RANK", "WORLD_SIZE")
LAUNCH_VARIABLES += ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now.

    The nodes are separate commands, so node 1 must know the port before node 0
    listens on it; another program could take it in between (unlikely in a test).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in LAUNCH_VARIABLES and not k.startswith(("SLURM_", "LSB_", "JSM_"))
    }
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def node_command(args: list[str], node: int, nodes: int, port: int, torchrun: bool) -> list[str]:
    """``contraclust fit ARGS`` as node ``node`` starts it: by hand, or under torchrun."""
    command = ["-m", "contraclust.cli", "fit", *args]
    if torchrun:
        launcher = ["-m", "torch.distributed.run", "--nnodes", str(nodes)]
        launcher += ["--nproc-per-node", "1", "--node-rank", str(node)]
        launcher += ["--master-addr", "127.0.0.1", "--master-port", str(port)]
        command = [*launcher, *command]
    return [sys.executable, *command]


def launch(
    args: list[str], workdir: Path, nodes: int = 1, torchrun: bool = False
) -> list[tuple[int, str]]:
    """Run ``contraclust fit ARGS`` once per node, all at once; (status, output) per node.

    By hand, each node is told its NODE_RANK and node 0's address and port; torchrun
    is given them as options instead. Each node runs in its own empty working
    directory, which must stay empty: a node writes only to --out. When one node
    fails the others are stopped (they would wait for it until the timeout).
    """
    port = free_port()
    procs, logs = [], []
    for node in range(nodes):
        cwd = workdir / f"node{node}"
        cwd.mkdir(parents=True)
        logs.append(workdir / f"node{node}.log")
        env = {}
        if nodes > 1 and not torchrun:
            env = {"NODE_RANK": str(node), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        with logs[-1].open("w") as log:
            procs.append(
                subprocess.Popen(
                    node_command(args, node, nodes, port, torchrun),
                    cwd=cwd,
                    env=clean_env(**env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    try:
        while any(p.poll() is None for p in procs):
            if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    for node in range(nodes):
        assert not any((workdir / f"node{node}").iterdir()), f"node {node} wrote outside --out"
    return [(p.returncode, log.read_text()) for p, log in zip(procs, logs, strict=True)]


def assert_ok(results: list[tuple[int, str]]) -> None:
    for node, (status, output) in enumerate(results):
        assert status == 0, f"node {node} exited with {status}:\n{output[-3000:]}"


def weights(run: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run / "model.ckpt")["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=0, rtol=0, msg=key)


@pytest.fixture(scope="module")
def one_node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: 2 epochs on one node of two processes."""
    work = tmp_path_factory.mktemp("one-node")
    out = work / "run"
    assert_ok(launch([*COMMON, "--devices", "2", "--epochs", "2", "--out", str(out)], work))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["by hand", "torchrun"])
def test_two_nodes_train_the_weights_of_one_node_and_write_once(
    one_node: Path, tmp_path: Path, launcher: str
) -> None:
    out = tmp_path / "run"
    args = [*COMMON, "--devices", "1", "--num-nodes", "2", "--epochs", "2", "--out", str(out)]
    results = launch(args, tmp_path, nodes=2, torchrun=launcher == "torchrun")
    assert_ok(results)
    assert "Starting with 2 processes" in results[0][1]
    assert_same_weights(one_node, out)
    assert (out / "assignments.csv").read_text() == (one_node / "assignments.csv").read_text()
    # Written by global rank 0 alone: the same files as one node, no lock left, every
    # log line once, and the summary printed by node 0 only.
    assert sorted(os.listdir(out)) == sorted(os.listdir(one_node))
    assert not (out / ".lock").exists()
    lines = (out / "train.log").read_text().splitlines()
    assert sum(f"INFO run {out}:" in line for line in lines) == 1
    assert [sum(f"epoch {e}/2 " in line for line in lines) for e in (1, 2)] == [1, 1]
    assert results[0][1].count("cc on digits: ACC") == 1
    assert "ACC" not in results[1][1]
    assert "num_nodes: 2" in (out / "config.yaml").read_text()
    assert "num_nodes: 1" in (one_node / "config.yaml").read_text()


@pytest.mark.slow
def test_resume_on_two_nodes_repeats_the_uninterrupted_run(one_node: Path, tmp_path: Path) -> None:
    """Stopped after epoch 1 and resumed on two nodes (the processes come from the
    checkpoint: neither --devices nor --num-nodes is given again)."""
    out = tmp_path / "run"
    args = [*COMMON, "--devices", "1", "--num-nodes", "2", "--epochs", "1", "--out", str(out)]
    assert_ok(launch(args, tmp_path / "first", nodes=2))
    ranks = read_checkpoint(out / "checkpoints" / "last.ckpt")["rng"]["ranks"]
    assert len(ranks["aug"]) == 2 and not torch.equal(ranks["aug"][0], ranks["aug"][1])
    args = ["--out", str(out), "--resume", "--epochs", "2", "--quiet", "--no-report"]
    assert_ok(launch(args, tmp_path / "resumed", nodes=2))
    assert_same_weights(one_node, out)
    with (out / "metrics.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


def test_num_nodes_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(["fit", "--num-nodes", "2"]).num_nodes == 2
    assert parser.parse_args(["fit"]).num_nodes is None  # the config's 1 then applies
    with pytest.raises(SystemExit):
        parser.parse_args(["fit", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--num-nodes N machines of the run" in help_text
    assert "NODE_RANK, MASTER_ADDR and MASTER_PORT (default: 1)" in help_text


@pytest.mark.parametrize(
    ("given", "processes"), [([], (2, 3)), (["--devices", "4", "--num-nodes", "1"], (4, 1))]
)
def test_resume_keeps_the_processes_unless_given(
    tmp_path: Path, given: list[str], processes: tuple[int, int]
) -> None:
    saved = RunConfig.from_dict({"train": {"devices": 2, "num_nodes": 3}})
    (tmp_path / LAST).parent.mkdir()
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": saved.to_dict()}
    save_checkpoint(state, tmp_path / LAST)
    args = build_parser().parse_args(["fit", "--out", str(tmp_path), "--resume", *given])
    cfg = build_config(args)
    keep_run_settings(cfg, tmp_path, {n for n in RESUME_SETTINGS if getattr(args, n) is not None})
    assert (cfg.train.devices, cfg.train.num_nodes) == processes
