"""SCAN — Van Gansbeke, Vandenhende, Georgoulis, Proesmans, Van Gool, ECCV 2020.

"SCAN: Learning to Classify Images without Labels". Three stages, one run:

1. Pretext (``pretext_epochs``): instance contrast, NT-Xent on the projector outputs
   of two views (SCAN's SimCLR pretext task).
2. Clustering (the rest of ``train.epochs``): at the switch, the ``n_neighbours``
   nearest neighbours of every sample are mined once, by cosine similarity of the
   clean images' embeddings (:func:`mine_neighbours`), and kept for the run. Each
   step then takes an augmented view of every sample of the batch (the anchor) and
   an augmented view of one of its neighbours drawn at random, and trains the
   cluster heads with the SCAN loss (eq. 2, :class:`~contraclust.losses.SCANLoss`):
   ``-log <p(anchor), p(neighbour)>`` plus ``entropy_weight`` times the negative
   entropy of the mean prediction.
3. Self-labelling: the loop's ``train.self_label_epochs`` (SCAN's Sec. 2.3,
   :class:`~contraclust.losses.SelfLabelLoss`), with the chosen head.

Prediction: argmax of the cluster head whose SCAN loss is the lowest (SCAN trains
``n_heads`` heads and keeps the one with the lowest loss; no labels are involved),
or k-means on the backbone feature.

Where the neighbours' images come from. SCAN's data set returns an anchor and a
random neighbour as one pair, so both go through the network together. Our loop
draws batches of samples; a neighbour is seldom in the same batch (with 20
neighbours and batches of 256 from 10,000 samples, half a neighbour per sample on
average). So the method asks the loop for them: the base class's
``use_sample_views`` hook hands over a callable that returns one augmented view of
the samples at given training-set indices, made by the loop's own augmentation and
augmentation generator, so a resumed run still draws the same views. The other
choices — keeping a bank of the neighbours' predictions (no gradient through the
neighbour, which SCAN has) or restricting neighbours to the batch (mostly none) —
change the loss; fetching keeps it as published.

Where the pieces come from. The paper: the three stages, eq. 2, mining in the
pretext embedding, several heads and the lowest-loss one kept. The authors' code:
entropy of the anchors' mean prediction, entropy weight 5, 20 neighbours, linear
heads on the backbone feature, the whole network updated in stage 2 (an option
freezes the backbone: ``update_backbone``), mining on the pretext model's
normalised output (``mining_space: projection``). Ours: one run for the three
stages, the switch counted in epochs, mining in blocks of rows on the training
device (never an N x N matrix), each head's loss followed as an exponential
moving average of the training loss (the authors evaluate it on a separate pass).

Data-parallel training: NT-Xent and the entropy term gather over the global batch;
every process mines on the full data and rank 0's neighbours are broadcast, so all
hold the same table; the heads' losses are averaged over the processes, so all
choose the same head.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

from contraclust.checks import (
    check_choice,
    check_epochs,
    check_fraction,
    check_int,
    check_number,
)
from contraclust.errors import ConfigError
from contraclust.losses import NTXentLoss, SCANLoss
from contraclust.losses.distributed import all_reduce_sum, is_distributed, world_size
from contraclust.methods.base import (
    ClusteringMethod,
    late_schedule,
    register_method,
    schedule_epochs,
)
from contraclust.models import ProjectionHead

log = logging.getLogger("contraclust")

MINING_SPACES = ("projection", "backbone")
#: Largest similarity block of the mining, in elements (256 MiB of float32).
MINING_BLOCK_ELEMENTS = 2**26

Encode = Callable[[Callable[[Tensor], Tensor]], Tensor]
SampleViews = Callable[[Tensor], Tensor]


def _similarity_block(queries: Tensor, keys: Tensor) -> Tensor:
    """Cosine similarities of the (normalised) ``queries`` with every key."""
    return queries @ keys.T


@torch.no_grad()
def mine_neighbours(
    features: Tensor, k: int, max_block_elements: int = MINING_BLOCK_ELEMENTS
) -> Tensor:
    """The ``k`` nearest neighbours of every row of ``features`` (N x d), itself excluded.

    Nearest by cosine similarity, most similar first; returns an N x k int64 tensor
    on the device of ``features``. The rows are processed in blocks of at most
    ``max_block_elements`` similarities (at least one row), each reduced by top-k
    at once, so memory is O(N d + N k + block), never N x N.
    """
    n = features.shape[0]
    check_int("n_neighbours", k, 1)
    if k >= n:
        raise ConfigError(
            f"n_neighbours ({k}) must be smaller than the number of samples ({n}); "
            f"set params.n_neighbours to {max(1, n - 1)} or fewer"
        )
    z = F.normalize(features.float(), dim=1)
    rows_per_block = max(1, min(n, max_block_elements // n))
    out = torch.empty(n, k, dtype=torch.long, device=z.device)
    for start in range(0, n, rows_per_block):
        sims = _similarity_block(z[start : start + rows_per_block], z)
        rows = torch.arange(sims.shape[0], device=z.device)
        sims[rows, start + rows] = float("-inf")  # a sample is not its own neighbour
        out[start : start + sims.shape[0]] = sims.topk(k, dim=1).indices
    return out


@dataclass
class SCANParams:
    """SCAN's hyper-parameters (defaults: the authors' configurations, except the
    pretext's length)."""

    #: Epochs of instance contrast before the neighbours are mined (fractions allowed),
    #: or a share of the run written ``"P%"``. The default is a share, so that a run
    #: sized by a time budget keeps both stages however few its epochs (in a run of
    #: 50 epochs, 10). The authors' share, 500 of 550 epochs, leaves a short run's
    #: clustering stage too few steps (BENCHMARKS.md, "Third SCAN pass").
    pretext_epochs: float | str = "20%"
    #: NT-Xent temperature of the pretext stage (SCAN's SimCLR configs: 0.1).
    instance_temperature: float = 0.1
    #: Neighbours mined per sample (SCAN: 20).
    n_neighbours: int = 20
    #: Where neighbours are mined: ``projection`` (SCAN: the pretext model's
    #: normalised output) or ``backbone`` (the feature the heads see).
    mining_space: str = "projection"
    #: Weight of the entropy of the mean prediction (SCAN: 5.0).
    entropy_weight: float = 5.0
    #: Cluster heads trained side by side; the one with the lowest loss predicts
    #: (SCAN: 10 in its configs; 1 is the cheapest).
    n_heads: int = 1
    #: Update the backbone in the clustering stage (SCAN: true); false trains the
    #: heads alone on the frozen pretext features (one process only).
    update_backbone: bool = True
    #: Momentum of the moving average of each head's loss that picks the best head.
    head_loss_momentum: float = 0.99

    def __post_init__(self) -> None:
        check_epochs("pretext_epochs", self.pretext_epochs)
        check_number("instance_temperature", self.instance_temperature, 0.0)
        check_int("n_neighbours", self.n_neighbours, 1)
        check_choice("mining_space", self.mining_space, MINING_SPACES)
        check_number("entropy_weight", self.entropy_weight, 0.0, strict=False)
        check_int("n_heads", self.n_heads, 1)
        if not isinstance(self.update_backbone, bool):
            raise ConfigError(
                f"update_backbone must be true or false, got {self.update_backbone!r}"
            )
        check_fraction("head_loss_momentum", self.head_loss_momentum)


@register_method
class SCAN(ClusteringMethod):
    name = "scan"
    summary = "SCAN (Van Gansbeke et al. 2020): instance contrast, then neighbours agree"
    Params = SCANParams
    n_views = 2

    params: SCANParams

    @classmethod
    def check_schedule(cls, params: SCANParams, epochs: int) -> None:
        start = schedule_epochs(params.pretext_epochs, epochs)
        if start >= epochs:
            raise ConfigError(late_schedule("scan", "pretext_epochs", start, epochs))

    def build(self) -> None:
        p, model, dim = self.params, self.model_config, self.feature_dim
        self.instance_head = ProjectionHead(dim, model.hidden_dim, model.projection_dim)
        self.heads = nn.ModuleList(nn.Linear(dim, self.n_clusters) for _ in range(p.n_heads))
        self.instance_loss = NTXentLoss(p.instance_temperature, gather_distributed=True)
        self.scan_loss = SCANLoss(p.entropy_weight, gather_distributed=True)
        #: Moving average of each head's SCAN loss; the lowest predicts.
        self.register_buffer("head_losses", torch.zeros(p.n_heads))
        #: The mined neighbours (N x k), empty before the switch. Saved in the
        #: checkpoint as the module's extra state, not as a buffer: DDP would
        #: broadcast a buffer at every step, and all processes hold the same table.
        self.neighbours = torch.empty(0, p.n_neighbours, dtype=torch.long)
        #: Whether the current step is of the clustering stage (set by ``on_step``).
        self.clustering = False
        self._best_head: int | None = None
        self._sample_views: SampleViews | None = None

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> Tensor:
        return self.neighbours.detach().cpu()

    def set_extra_state(self, state: Tensor) -> None:
        self.neighbours = state.clone()

    def _load_from_state_dict(self, *args: object, **kwargs: object) -> None:
        super()._load_from_state_dict(*args, **kwargs)  # type: ignore[arg-type]
        self._best_head = None

    # ------------------------------------------------------------------ set-up
    def use_sample_views(self, sample_views: SampleViews) -> None:
        self._sample_views = sample_views

    def on_fit_start(self, encode: Encode, resumed: bool) -> None:
        if self.params.n_neighbours >= self.n_samples:
            raise ConfigError(
                f"n_neighbours ({self.params.n_neighbours}) must be smaller than the number "
                f"of samples ({self.n_samples}); set params.n_neighbours to "
                f"{max(1, self.n_samples - 1)} or fewer"
            )
        if not self.params.update_backbone and is_distributed():
            raise ConfigError(
                "scan with update_backbone: false trains on one process only (DDP needs a "
                "gradient for every parameter); use --devices 1 or update_backbone: true"
            )

    def on_step(self, step: int, epoch: int) -> None:
        """The clustering stage starts at ``pretext_epochs``; its first step mines the
        neighbours (a resumed run finds them in its checkpoint)."""
        self.clustering = step >= self.step_at(self.params.pretext_epochs)
        if self.clustering and self.neighbours.numel() == 0:
            self.mine()

    @torch.no_grad()
    def mine(self) -> None:
        """Mine the neighbours of every sample in the current embedding (clean data)."""
        space = self.params.mining_space
        device = self.head_losses.device
        features = self.data_pass(lambda x: self.kmeans_features(x, space)).to(device)
        table = mine_neighbours(features, self.params.n_neighbours)
        if is_distributed():
            # Processes may round differently on a GPU: rank 0's table is everyone's.
            dist.broadcast(table, src=0)
        self.neighbours = table
        log.info("SCAN: mined %d neighbours of %d samples", table.shape[1], table.shape[0])

    # ------------------------------------------------------------------ training
    def training_loss(self, views: list[Tensor], clean: Tensor, index: Tensor) -> dict[str, Tensor]:
        if self.clustering:
            return self._clustering_loss(views[0], index)
        return self._pretext_loss(views)

    def _pretext_loss(self, views: list[Tensor]) -> dict[str, Tensor]:
        h = self.backbone(torch.cat(views, dim=0))
        z1, z2 = self.instance_head(h).chunk(2)
        instance = self.instance_loss(z1, z2)
        # The heads join the graph with weight 0: DDP wants a gradient for every
        # parameter at every step.
        unused = sum(head(h).sum() for head in self.heads)
        return {"loss": instance + 0.0 * unused, "instance": instance.detach()}

    def _clustering_loss(self, anchors: Tensor, index: Tensor) -> dict[str, Tensor]:
        if self._sample_views is None:
            raise RuntimeError(
                "SCAN needs the neighbours' images: the training loop must call "
                "use_sample_views before the first step"
            )
        if self.neighbours.device != index.device:
            self.neighbours = self.neighbours.to(index.device)
        # One random neighbour per sample, drawn by torch's generator (in the checkpoint).
        pick = torch.randint(self.neighbours.shape[1], (len(index),)).to(index.device)
        neighbour_views = self._sample_views(self.neighbours[index, pick])
        both = torch.cat([anchors, neighbour_views], dim=0)
        frozen = not self.params.update_backbone
        h = self._frozen_features(both) if frozen else self.backbone(both)
        losses, consistency, entropy = [], [], []
        for head in self.heads:
            p, q = F.softmax(head(h).float(), dim=1).chunk(2)
            terms = self.scan_loss.parts(p, q)
            losses.append(terms["consistency"] - self.scan_loss.entropy_weight * terms["entropy"])
            consistency.append(terms["consistency"].detach())
            entropy.append(terms["entropy"].detach())
        per_head = torch.stack(losses)
        self._follow_head_losses(per_head.detach())
        unused = self.instance_head(h).sum()
        return {
            "loss": per_head.sum() + 0.0 * unused,
            "consistency": torch.stack(consistency).mean(),
            "entropy": torch.stack(entropy).mean(),
        }

    def _frozen_features(self, x: Tensor) -> Tensor:
        # Eval mode: the frozen backbone's BatchNorm statistics stay those of the pretext.
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad():
                return self.backbone(x)
        finally:
            self.backbone.train(was_training)

    @torch.no_grad()
    def _follow_head_losses(self, per_head: Tensor) -> None:
        if not self.training or len(self.heads) == 1:
            return
        per_head = all_reduce_sum(per_head) / world_size()
        m = self.params.head_loss_momentum
        # The average starts at the first value (a zero buffer: no step yet); no
        # branch on the device's values, so no synchronisation.
        moved = m * self.head_losses + (1.0 - m) * per_head
        self.head_losses.copy_(torch.where(self.head_losses == 0, per_head, moved))
        self._best_head = None

    def best_head(self) -> int:
        """Index of the head with the lowest moving-average loss (0 before any)."""
        if self._best_head is None:
            self._best_head = int(self.head_losses.argmin()) if len(self.heads) > 1 else 0
        return self._best_head

    # ------------------------------------------------------------------ read-outs
    def cluster_probs(self, x: Tensor) -> Tensor:
        return F.softmax(self.heads[self.best_head()](self.backbone(x)).float(), dim=1)
