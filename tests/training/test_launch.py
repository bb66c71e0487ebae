"""Which process is global rank 0, read from the launcher before Fabric starts.

Only that process may lock and write the run directory; the rank must be right for
Fabric's own launcher, a launch by hand on several nodes, torchrun and SLURM's srun.
"""

from __future__ import annotations

import os

import pytest

from contraclust.training.loop import launched_rank

#: Every variable through which a launcher or a cluster names a process's rank.
LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "GROUP_RANK", "NODE_RANK", "WORLD_SIZE")
LAUNCH_VARIABLES += ("TORCHELASTIC_RUN_ID",)


@pytest.fixture
def unlaunched(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment of a command typed by hand, outside any cluster."""
    for name in list(os.environ):
        if name in LAUNCH_VARIABLES or name.startswith(("SLURM_", "LSB_", "JSM_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "devices", "rank"),
    [
        ({}, 1, 0),
        # a process Fabric started on node 0
        ({"NODE_RANK": "0", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}, 2, 1),
        # the first process of node 1, started by hand (its LOCAL_RANK is not set)
        ({"NODE_RANK": "1"}, 2, 2),
        ({"GROUP_RANK": "1", "LOCAL_RANK": "1"}, 4, 5),
        # torchrun: RANK is the global rank
        ({"TORCHELASTIC_RUN_ID": "7", "RANK": "3", "LOCAL_RANK": "1", "GROUP_RANK": "1"}, 2, 3),
        # srun: SLURM_PROCID is the global rank
        (
            {
                "SLURM_NTASKS": "4",
                "SLURM_NTASKS_PER_NODE": "2",
                "SLURM_JOB_NAME": "fit",
                "SLURM_PROCID": "2",
                "SLURM_LOCALID": "0",
            },
            2,
            2,
        ),
    ],
)
def test_launched_rank(
    unlaunched: pytest.MonkeyPatch, env: dict[str, str], devices: int, rank: int
) -> None:
    for name, value in env.items():
        unlaunched.setenv(name, value)
    assert launched_rank(devices) == rank


def test_only_the_first_process_of_node_0_is_rank_0(unlaunched: pytest.MonkeyPatch) -> None:
    """Without the devices per node the number may be off, never whether it is 0."""
    ranks = {}
    for node in range(3):
        for local in range(4):
            unlaunched.setenv("NODE_RANK", str(node))
            unlaunched.setenv("LOCAL_RANK", str(local))
            ranks[node, local] = (launched_rank(4), launched_rank() == 0)
    assert sorted(r for r, _ in ranks.values()) == list(range(12))
    assert [key for key, (_, zero) in ranks.items() if zero] == [(0, 0)]
