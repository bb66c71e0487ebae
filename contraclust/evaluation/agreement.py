"""Agreement between partitions of the same samples, with no labels.

Several trainings of one method that differ only by their seed give partitions that
agree where the data's structure is clear and differ where the training went astray.
:func:`central_partition` keeps the partition that agrees most with the others (the
medoid under the adjusted Rand index), a label-free choice: a partition that one
seed got wrong agrees with none of the others, while the good ones agree with each
other. The mean agreement itself says how stable the clusters are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import adjusted_rand_score

__all__ = ["Agreement", "central_partition"]


@dataclass(frozen=True)
class Agreement:
    """The pairwise ARI of the partitions and the one chosen."""

    #: ``(R, R)`` adjusted Rand index between partitions i and j (1 on the diagonal).
    ari: np.ndarray
    #: Index of the partition with the highest mean ARI to the others.
    chosen: int

    @property
    def mean_to_others(self) -> np.ndarray:
        """Each partition's mean ARI to the other partitions."""
        r = len(self.ari)
        return (self.ari.sum(axis=1) - 1.0) / max(1, r - 1)

    @property
    def mean(self) -> float:
        """The mean ARI over all pairs: 1 when every partition is the same."""
        r = len(self.ari)
        if r < 2:
            return 1.0
        return float((self.ari.sum() - r) / (r * (r - 1)))


def central_partition(partitions: Sequence[np.ndarray]) -> Agreement:
    """The partition (of two or more, each an array of cluster ids of the same samples)
    that agrees most with the others; ties go to the first."""
    if len(partitions) < 2:
        raise ValueError("central_partition needs at least two partitions")
    sizes = {len(p) for p in partitions}
    if len(sizes) != 1:
        raise ValueError(f"the partitions cover different numbers of samples: {sorted(sizes)}")
    r = len(partitions)
    ari = np.eye(r)
    for i in range(r):
        for j in range(i + 1, r):
            ari[i, j] = ari[j, i] = adjusted_rand_score(partitions[i], partitions[j])
    score = (ari.sum(axis=1) - 1.0) / (r - 1)
    return Agreement(ari=ari, chosen=int(np.argmax(score)))
