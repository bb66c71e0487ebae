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
    k = centers.shape[0]
    labels = labels.clone()
    sizes = torch.bincount(labels, minlength=k)
    emptied = [c for c in range(k) if sizes[c] < below * len(h) / k]
    centers = centers.detach().double().cpu().clone()
    h = h.double()
    # Cluster -> (separation of its two halves, members, 2-means labels).
    cuts: dict[int, tuple[float, Tensor, Tensor]] = {}

    def cut(c: int) -> None:
        members = (labels == c).nonzero().squeeze(1)
        if c not in cuts and c not in emptied and len(members) >= 4:
            halves = two_means(z[members], seed)
            cuts[c] = (bisection_separation(z[members], halves), members, halves)

    merged = False
    if not emptied and merge_confusion > 0:
        confusion, a, b = most_confused_pair(h, labels, centers, assign)
        if confusion >= merge_confusion:
            union = ((labels == a) | (labels == b)).nonzero().squeeze(1)
            together = bisection_separation(z[union], two_means(z[union], seed))
            for c in range(k):
                if c not in (a, b):
                    cut(c)
            if cuts and max(v[0] for v in cuts.values()) > together:
                merged = True
                labels[labels == b] = a
                centers[a] = h[union].mean(dim=0)
                emptied = [b]
                log.info(
                    "cluster repair: clusters %d and %d look like one class "
                    "(confusion %.2f): merged, to re-seed %d",
                    a,
                    b,
                    confusion,
                    b,
                )
    reseeded = 0
    for target in emptied:
        for c in range(k):
            cut(c)
        if not cuts:
            break
        source = max(cuts, key=lambda c: cuts[c][0])
        _, members, halves = cuts.pop(source)
        moved = members[halves == 1]
        labels[moved] = target
        centers[source] = h[members[halves == 0]].mean(dim=0)
        centers[target] = h[moved].mean(dim=0)
        reseeded += 1
        log.info(
            "cluster repair: re-seeded cluster %d with half of cluster %d (%d samples)",
            target,
            source,
            len(moved),
        )
    return Repair(centers, reseeded, merged)
