"""Cluster repair: new centres for clusters that training has emptied.

A centroid-based method (DEC's loss, DECA) cannot split a cluster by itself: when two
classes share one centre, another centre is often left without samples, and gradient
steps will not bring it back. :func:`repair_centers` gives every emptied cluster half
of the cluster that looks most like two, and can first merge a pair of clusters that
look like one class cut in two, which frees a centre for the same move.

The idea of handing an empty cluster half of a non-empty one is DeepCluster's (Caron
et al. 2018); choosing the cluster to split by how far apart its 2-means halves lie
(:func:`bisection_separation`), and the merge of the most confused pair, are ours.

The functions work on tensors of the whole training set (features ``h`` in the space
of the centres, an embedding ``z`` to cut clusters in, current labels), so any method
with centres can call them from a training hook; DECA does (``reseed_interval_epochs``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

log = logging.getLogger("contraclust")

#: ``assign(h, centers)``: the N x K soft assignment of features to centres.
Assign = Callable[[Tensor, Tensor], Tensor]


def bisection_separation(points: Tensor, halves: Tensor) -> float:
    """How far apart two halves of a cluster lie, in units of their own spread.

    The points are projected on the line through the two halves' means; the result
    is the distance between the projected means over the pooled standard deviation
    of the projections about them (a Fisher ratio in one dimension). 2-means cuts a
    single Gaussian into halves about 2.7 apart on that scale; two well separated
    groups score higher.
    """
    a, b = points[halves == 0], points[halves == 1]
    if len(a) == 0 or len(b) == 0:
        return 0.0
    direction = b.mean(dim=0) - a.mean(dim=0)
    gap = float(direction.norm())
    if gap == 0.0:
        return 0.0
    ta, tb = a @ (direction / gap), b @ (direction / gap)
    spread = ((ta - ta.mean()).pow(2).sum() + (tb - tb.mean()).pow(2).sum()) / len(points)
    return gap / max(float(spread.sqrt()), 1e-12)


def two_means(points: Tensor, seed: int) -> Tensor:
    """Labels (0 or 1) of a 2-means clustering of ``points``."""
    from sklearn.cluster import KMeans

    halves = KMeans(2, n_init=3, random_state=seed).fit(points.numpy()).labels_
    return torch.from_numpy(halves).long()


def most_confused_pair(
    h: Tensor, labels: Tensor, centers: Tensor, assign: Assign
) -> tuple[float, int, int]:
    """The pair of clusters (a, b) whose members give each other the most of q.

    Confusion of (a, b) = mean q_b over the members of a + mean q_a over those of b,
    with ``q = assign(h, centers)``. Two halves of one class score high: their members
    sit between both centres.
    """
    k = centers.shape[0]
    sums = torch.zeros(k, k, dtype=torch.float64)
    for start in range(0, len(h), 4096):
        q = assign(h[start : start + 4096], centers).double()
        sums.index_add_(0, labels[start : start + 4096], q)
    means = sums / torch.bincount(labels, minlength=k).clamp_min(1)[:, None].double()
    mutual = means + means.T
    mutual.fill_diagonal_(-1.0)
    flat = int(mutual.argmax())
    return float(mutual.view(-1)[flat]), flat // k, flat % k


@dataclass
class Repair:
    """What :func:`repair_centers` did."""

    #: The centres after the repair (the input's values where nothing moved).
    centers: Tensor
    #: Clusters given a new centre.
    reseeded: int = 0
    #: True when a pair of clusters was merged to free a centre.
    merged: bool = False


@torch.no_grad()
def repair_centers(
    h: Tensor,
    z: Tensor,
    labels: Tensor,
    centers: Tensor,
    assign: Assign,
    *,
    below: float,
    merge_confusion: float = 0.0,
    seed: int = 0,
) -> Repair:
    """New centres for the emptied clusters of one labelling of the training set.

    Args:
        h: N x d features, in the space of ``centers`` (K x d).
        z: N x e embedding in which clusters are cut in two (2-means).
        labels: the N current cluster labels (argmax of the method's assignment).
        centers: the K current centres (not modified).
        assign: the soft assignment of features to centres (for the merge).
        below: a cluster with fewer than ``below x N / K`` samples counts as emptied.
        merge_confusion: when no cluster is emptied, merge the most confused pair
            (see :func:`most_confused_pair`) if its confusion is at least this value
            and the pair together splits less cleanly than the cluster that looks
            most like two, which then gives its second half to the freed centre
            (0: never merge).
        seed: seed of the 2-means cuts.

    Every emptied cluster takes the second half of the cluster whose 2-means halves in
    ``z`` lie furthest apart (:func:`bisection_separation`); both centres become the
    mean ``h`` of their halves.
    """
    state = _Repairing(h, z, labels, centers, seed, below)
    merged = False
    if not state.emptied and merge_confusion > 0:
        merged = state.merge_most_confused(assign, merge_confusion)
    reseeded = state.reseed_emptied()
    return Repair(state.centers, reseeded, merged)


class _Repairing:
    """The working state of one repair: labels and centres as they change, and the
    2-means cut of each cluster (computed once, when first needed)."""

    def __init__(
        self, h: Tensor, z: Tensor, labels: Tensor, centers: Tensor, seed: int, below: float
    ) -> None:
        self.h, self.z, self.seed = h.double(), z, seed
        self.labels = labels.clone()
        self.k = centers.shape[0]
        sizes = torch.bincount(self.labels, minlength=self.k)
        self.emptied = [c for c in range(self.k) if sizes[c] < below * len(h) / self.k]
        self.centers = centers.detach().double().cpu().clone()
        #: Cluster -> (separation of its two halves, members, 2-means labels).
        self.cuts: dict[int, tuple[float, Tensor, Tensor]] = {}

    def cut(self, c: int) -> None:
        members = (self.labels == c).nonzero().squeeze(1)
        if c not in self.cuts and c not in self.emptied and len(members) >= 4:
            halves = two_means(self.z[members], self.seed)
            self.cuts[c] = (bisection_separation(self.z[members], halves), members, halves)

    def merge_most_confused(self, assign: Assign, threshold: float) -> bool:
        """Merge the most confused pair when its confusion reaches ``threshold`` and it
        splits less cleanly than the cluster that looks most like two; the second
        cluster of the pair is then emptied, to be re-seeded."""
        labels, z = self.labels, self.z
        confusion, a, b = most_confused_pair(self.h, labels, self.centers, assign)
        if confusion < threshold:
            return False
        union = ((labels == a) | (labels == b)).nonzero().squeeze(1)
        together = bisection_separation(z[union], two_means(z[union], self.seed))
        for c in range(self.k):
            if c not in (a, b):
                self.cut(c)
        if not self.cuts or max(v[0] for v in self.cuts.values()) <= together:
            return False
        labels[labels == b] = a
        self.centers[a] = self.h[union].mean(dim=0)
        self.emptied = [b]
        log.info(
            "cluster repair: clusters %d and %d look like one class (confusion %.2f): "
            "merged, to re-seed %d",
            a,
            b,
            confusion,
            b,
        )
        return True

    def reseed_emptied(self) -> int:
        """Each emptied cluster takes the second half of the cluster that looks most
        like two; returns how many were re-seeded."""
        reseeded = 0
        for target in self.emptied:
            for c in range(self.k):
                self.cut(c)
            if not self.cuts:
                break
            source = max(self.cuts, key=lambda c: self.cuts[c][0])
            _, members, halves = self.cuts.pop(source)
            moved = members[halves == 1]
            self.labels[moved] = target
            self.centers[source] = self.h[members[halves == 0]].mean(dim=0)
            self.centers[target] = self.h[moved].mean(dim=0)
            reseeded += 1
            log.info(
                "cluster repair: re-seeded cluster %d with half of cluster %d (%d samples)",
                target,
                source,
                len(moved),
            )
        return reseeded
