"""Cluster repair (contraclust.methods.repair) on made-up feature sets."""

from __future__ import annotations

import pytest
import torch
from helpers import one_class_in_two_and_two_in_one

from contraclust.losses import student_t_assignment
from contraclust.methods.repair import bisection_separation, repair_centers


def student_t(h: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    return student_t_assignment(h, centers, 1.0)


def test_bisection_separation_tells_two_groups_from_one() -> None:
    gen = torch.Generator().manual_seed(0)
    one = torch.randn(2000, 8, generator=gen, dtype=torch.float64)
    # Halves of one Gaussian, cut through its mean: about 2.7 (1.6 / 0.6).
    halves = (one[:, 0] > 0).long()
    assert 2.3 < bisection_separation(one, halves) < 3.1
    two = one.clone()
    two[:1000, 0] += 10.0
    groups = (torch.arange(2000) < 1000).long()
    assert bisection_separation(two, groups) > 9.0
    assert bisection_separation(one, torch.zeros(2000, dtype=torch.long)) == 0.0


def test_an_emptied_cluster_takes_the_second_half_of_the_cluster_of_two() -> None:
    centers = torch.zeros(3, 4)
    h, z, labels = one_class_in_two_and_two_in_one(centers, 3)
    # Cluster 0 emptied: its members (half of the blob) go to cluster 1.
    labels[labels == 0] = 1
    repair = repair_centers(h, z, labels, centers, student_t, below=0.1, seed=0)
    assert repair.reseeded == 1 and not repair.merged
    # The pair at (20, -3) and (20, 3) is split, not the blob: its halves lie further apart.
    found = sorted(repair.centers[:, :2].tolist(), key=lambda c: (round(c[0]), c[1]))
    expected = [[0.8, 0.0], [20.0, -3.0], [20.0, 3.0]]
    torch.testing.assert_close(
        torch.tensor(found)[1:], torch.tensor(expected)[1:], atol=0.2, rtol=0
    )
    assert repair.centers.dtype == torch.float64
    torch.testing.assert_close(centers[0, :2], torch.tensor([-0.8, 0.0]))  # input untouched


def test_nothing_moves_without_an_emptied_cluster_or_a_merge() -> None:
    centers = torch.zeros(3, 4)
    h, z, labels = one_class_in_two_and_two_in_one(centers, 3)
    repair = repair_centers(h, z, labels, centers, student_t, below=0.1, seed=0)
    assert repair.reseeded == 0 and not repair.merged
    torch.testing.assert_close(repair.centers.float(), centers, atol=0, rtol=0)


@pytest.mark.parametrize("merge_confusion", [0.0, 0.15, 0.99])
def test_a_class_cut_in_two_is_merged_to_split_a_cluster_of_two(merge_confusion: float) -> None:
    centers = torch.zeros(3, 4)
    h, z, labels = one_class_in_two_and_two_in_one(centers, 3)
    before = centers.clone()
    repair = repair_centers(
        h, z, labels, centers, student_t, below=0.1, merge_confusion=merge_confusion, seed=0
    )
    if merge_confusion in (0.0, 0.99):  # off, or a threshold above the confusion
        assert repair.reseeded == 0 and not repair.merged
        torch.testing.assert_close(repair.centers.float(), before, atol=0, rtol=0)
        return
    assert repair.reseeded == 1 and repair.merged
    found = sorted(repair.centers[:, :2].tolist(), key=lambda c: (round(c[0]), c[1]))
    expected = [[0.0, 0.0], [20.0, -3.0], [20.0, 3.0]]
    torch.testing.assert_close(torch.tensor(found), torch.tensor(expected), atol=0.2, rtol=0)
