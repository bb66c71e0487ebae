"""DECA — Sundareswaran, Herrera-Gerena, Just, Jannesari, arXiv 2109.12714 (2021).

"Cluster Analysis with Deep Embeddings and Contrastive Learning": Contrastive
Clustering's instance head plus DEC's clustering in the backbone space, tied together
by an anchor loss. Every sample is seen three times per step: clean (the "anchor")
and in two augmented views. With ``h`` the backbone feature and ``mu`` the K learnable
centres in that space::

    L_inst   = NT-Xent(z(x1), z(x2)),  z = projector(h)                (tau = 0.5)
    L_clu    = KL(p || q(h(x))),        q = Student-t(h, mu), p = DEC target of q
    L_anchor = KL(c || q(h(x1))) + KL(c || q(h(x2))),  c = q(h(x)) detached
    L        = alpha * L_inst + beta * L_clu + gamma * L_anchor        (all 1)

Prediction: argmax of ``q`` on the clean input (or k-means on ``h``).

Where the pieces come from. The paper: the three losses, their sum, ResNet-34 and
the NMI it reports. The authors' code (a fork of CC's): the per-batch DEC target,
the 512-512-128 projector, Adam 3e-4, batch 128, the k-means initialisation of the
centres on the features of the untrained network, K fixed at 10 (any K here).
Ours: the data-set-level target as an option (``target: dataset``, DEC's own
scheme), the mean over the batch in every KL term, one backbone pass over the 3B
images (BatchNorm sees clean and augmented images together), the re-estimation of
the BatchNorm statistics before the k-means initialisation
(``recalibrate_batchnorm``), the option to run that initialisation after some
epochs of instance contrast instead of on the untrained network
(``kmeans_init_epoch``; results in BENCHMARKS.md), the option to run that k-means
on the normalised projector outputs rather than on the backbone features
(``kmeans_space: projection``; the centres are then the mean features of its clusters),
and the repair of clusters that training has emptied (``reseed_interval_epochs``,
with :mod:`contraclust.methods.repair`).

Schedules are in epochs and run in the training hooks: the k-means start at
``kmeans_init_epoch``, the repair checks every ``reseed_interval_epochs`` after it (and
again after the last step) and the refreshes of the data-set-level target every
``target_update_epochs``.

Data-parallel training: the instance and DEC losses gather over the global batch;
k-means, the BatchNorm re-estimation and the data-set-level target are computed by
every process on the full data (the same result everywhere; the centres are also
broadcast from rank 0 after a k-means in the middle of a run, in case GPU rounding
led the processes' k-means apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

from contraclust.checks import check_choice, check_epochs, check_fraction, check_int, check_number
from contraclust.errors import ConfigError
from contraclust.losses import AnchorLoss, DECLoss, NTXentLoss, dec_target, student_t_assignment
from contraclust.losses.distributed import is_distributed
from contraclust.methods.base import (
    ClusteringMethod,
    Encode,
    late_schedule,
    register_method,
    schedule_epochs,
)
from contraclust.methods.repair import repair_centers
from contraclust.models import ProjectionHead

TARGETS = ("batch", "dataset")
KMEANS_SPACES = ("backbone", "projection")


#: The most repair checks after the last step (see :meth:`DECA.on_fit_end`).
FINAL_CHECKS = 5


@dataclass
class DECAParams:
    """DECA's hyper-parameters (defaults: the paper's and the authors' code's)."""

    #: NT-Xent temperature of the instance head (authors' code: 0.5).
    instance_temperature: float = 0.5
    #: Degrees of freedom of the Student-t kernel of ``q`` (DEC and DECA: 1).
    alpha_t: float = 1.0
    #: Weight alpha of the instance loss (paper: 1).
    instance_weight: float = 1.0
    #: Weight beta of the DEC clustering loss (paper: 1).
    cluster_weight: float = 1.0
    #: Weight gamma of the anchor loss (paper: 1).
    anchor_weight: float = 1.0
    #: DEC target ``p``: ``batch`` recomputes it from each batch (DECA's code);
    #: ``dataset`` computes it over all N samples and refreshes it every
    #: ``target_update_epochs`` (DEC's scheme).
    target: str = "batch"
    #: Epochs between two refreshes of the data-set-level target (``target: dataset``;
    #: a fraction allowed). A refresh is a pass over the data, so its cost is fixed
    #: per epoch whatever the batch size; the target is also refreshed right after the
    #: k-means start and after every repair that moved a centre.
    target_update_epochs: float = 1.0
    #: k-means restarts of the initialisation of the centres.
    kmeans_n_init: int = 10
    #: Epoch at which k-means initialises the centres (ours; a fraction allowed, or a
    #: share of the run's epochs written ``"40%"``).
    #: 0 (DECA): before the first step, on the features of the untrained network.
    #: E > 0: after E epochs of the instance loss alone (the clustering and anchor
    #: losses are weighted 0 until then), so that k-means starts from features that
    #: already mean something; this helps much when the training budget is small.
    #: Must lie within the run's epochs.
    kmeans_init_epoch: float | str = 0.0
    #: Where the k-means of the initialisation runs. ``backbone`` (DECA): on the
    #: backbone features h, whose centres are mu. ``projection`` (ours): on the
    #: L2-normalised outputs of the instance projector, the space the contrastive loss
    #: shapes; mu is then the mean h of each k-means cluster.
    kmeans_space: str = "backbone"
    #: Before a k-means initialisation at step 0, re-estimate the BatchNorm running
    #: statistics on the clean data (ours; at a later step training has set them
    #: already). Without it, the eval-mode features that k-means sees
    #: come from the default statistics (mean 0, variance 1) of a new network, and
    #: their scale can be far from that of the train-mode features the losses see
    #: (10x for ``small_cnn`` on digits), so the centres would start out of place.
    recalibrate_batchnorm: bool = True
    #: Epochs between two checks for clusters that training has emptied, counted from
    #: the k-means start (ours; a fraction allowed; 0, the default and DECA's: never).
    #: A check is a pass over the clean training data; a cluster that holds fewer
    #: than ``reseed_below`` x N / K samples (argmax of q) gets a new centre by
    #: splitting the cluster that looks most like two, cut by 2-means on the
    #: normalised projector outputs (:func:`contraclust.methods.repair.repair_centers`).
    #: DEC cannot split a cluster by itself, so a class pair sharing one centre while
    #: another centre is empty stays that way without it.
    reseed_interval_epochs: float | str = 0.0
    #: Size, as a fraction of the mean cluster size N / K, below which a cluster
    #: counts as emptied at a check (see ``reseed_interval_epochs``).
    reseed_below: float = 0.1
    #: At a check that finds no emptied cluster (see ``reseed_interval_epochs``): merge
    #: the two clusters whose members give each other the most of q (mean q of the
    #: other cluster, summed both ways) when that sum is at least this value and the
    #: two together split less cleanly than the cluster that looks most like two,
    #: which then gives its second half to the freed centre (ours; 0, the default:
    #: never). This handles one class cut in two by the k-means start while two
    #: classes share a centre. At most ``max_merges`` times in a run.
    merge_confusion: float = 0.0
    #: Merges allowed in a run (see ``merge_confusion``). Later in training, classes
    #: drifting between clusters make confused pairs of another kind, which a merge
    #: would join wrongly; one merge repairs the k-means start.
    max_merges: int = 1

    def __post_init__(self) -> None:
        check_number("instance_temperature", self.instance_temperature, 0.0)
        check_number("alpha_t", self.alpha_t, 0.0)
        for name in ("instance_weight", "cluster_weight", "anchor_weight"):
            check_number(name, getattr(self, name), 0.0, strict=False)
        if self.instance_weight + self.cluster_weight + self.anchor_weight == 0.0:
            raise ConfigError(
                "instance_weight, cluster_weight and anchor_weight are all 0; "
                "at least one must be > 0"
            )
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target '{self.target}'; valid: {', '.join(TARGETS)}")
        check_number("target_update_epochs", self.target_update_epochs)
        check_int("kmeans_n_init", self.kmeans_n_init, 1)
        check_epochs("kmeans_init_epoch", self.kmeans_init_epoch)
        check_choice("kmeans_space", self.kmeans_space, KMEANS_SPACES)
        check_epochs("reseed_interval_epochs", self.reseed_interval_epochs)
        check_fraction("reseed_below", self.reseed_below)
        check_number("merge_confusion", self.merge_confusion, 0.0, strict=False)
        check_int("max_merges", self.max_merges, 0)


def _starts_later(epochs: float | str) -> bool:
    """Whether a schedule of ``epochs`` (a number, or ``"P%"``) starts after step 0."""
    return schedule_epochs(epochs, 100) > 0


@register_method
class DECA(ClusteringMethod):
    name = "deca"
    summary = "DECA (Sundareswaran et al. 2021): instance contrast + DEC + anchor loss"
    Params = DECAParams
    n_views = 2
    step_settings: ClassVar[dict[str, str]] = {
        "kmeans_init_step": "kmeans_init_epoch",
        "reseed_interval": "reseed_interval_epochs",
        "target_update_interval": "target_update_epochs",
    }

    params: DECAParams

    @classmethod
    def check_schedule(cls, params: Any, epochs: int) -> None:
        start = schedule_epochs(params.kmeans_init_epoch, epochs)
        if start > 0 and start >= epochs:
            raise ConfigError(late_schedule("deca", "kmeans_init_epoch", start, epochs))
        every = schedule_epochs(params.reseed_interval_epochs, epochs)
        if every > 0 and start + every >= epochs:
            first = f"makes its first check at epoch {start + every:g}, not within"
            raise ConfigError(late_schedule("deca", "reseed_interval_epochs", every, epochs, first))

    def build(self) -> None:
        p, model, dim = self.params, self.model_config, self.feature_dim
        self.instance_head = ProjectionHead(dim, model.hidden_dim, model.projection_dim)
        #: Cluster centres mu in the backbone space; set by k-means at ``kmeans_init_epoch``.
        self.centers = nn.Parameter(torch.zeros(self.n_clusters, dim))
        self.instance_loss = NTXentLoss(p.instance_temperature, gather_distributed=True)
        self.cluster_loss = DECLoss(p.alpha_t, gather_distributed=True)
        self.anchor_loss = AnchorLoss()
        #: Seed of the k-means initialisation, drawn from torch's generator at the start
        #: of a run (kept for an initialisation at ``kmeans_init_epoch`` > 0).
        self.register_buffer("kmeans_seed", torch.zeros((), dtype=torch.long))
        #: Merges made so far (see ``merge_confusion``), in the checkpoint for resume.
        self.register_buffer("merges_done", torch.zeros((), dtype=torch.long))
        #: The data-set-level target (N x K), in the checkpoint as the module's extra
        #: state rather than a buffer: DDP broadcasts buffers at every step, and every
        #: process computes this one identically on the full data anyway.
        self.dataset_target: Tensor | None = None
        #: Whether the clustering and anchor losses count in this step (set by on_step).
        self.clustering = not _starts_later(p.kmeans_init_epoch)

    @property
    def clusters_ready(self) -> bool:
        return self.clustering

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> Tensor:
        if self.dataset_target is None:
            return torch.empty(0)
        return self.dataset_target.detach().cpu()

    def set_extra_state(self, state: Tensor) -> None:
        self.dataset_target = state.clone() if state.numel() else None

    # ------------------------------------------------------------------ set-up
    def on_fit_start(self, encode: Encode, resumed: bool) -> None:
        # On resume the centres and the target come from the checkpoint.
        if resumed:
            return
        # Drawn here, so the run's seed fixes the centres wherever they are initialised.
        self.kmeans_seed.fill_(int(torch.randint(0, 2**31 - 1, ()).item()))
        if self.step_at(self.params.kmeans_init_epoch) == 0:
            if self.params.recalibrate_batchnorm:
                self._recalibrate_batchnorm(encode)
            self._init_centers()

    @torch.no_grad()
    def _recalibrate_batchnorm(self, encode: Encode) -> None:
        """Running statistics of every BatchNorm = averages over the clean data."""
        norms = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches

        def in_train_mode(x: Tensor) -> Tensor:
            # encode() puts the method in eval mode; batch statistics need train mode.
            if len(x) > 1:  # BatchNorm1d cannot take statistics of one sample
                for m in norms:
                    m.train()
                self.backbone(x)
            return x.new_zeros(len(x), 0)

        try:
            encode(in_train_mode)
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum

    @torch.no_grad()
    def _init_centers(self) -> None:
        """k-means on the clean training data (see ``kmeans_space``) sets the centres."""
        from sklearn.cluster import KMeans

        projection = self.params.kmeans_space == "projection"

        def features(x: Tensor) -> Tensor:
            h = self.backbone(x)
            if not projection:
                return h
            return torch.cat([h, F.normalize(self.instance_head(h), dim=1)], dim=1)

        out = self.data_pass(features)
        dim = self.centers.shape[1]
        h, space = (out[:, :dim], out[:, dim:]) if projection else (out, out)
        kmeans = KMeans(
            self.n_clusters, n_init=self.params.kmeans_n_init, random_state=int(self.kmeans_seed)
        )
        kmeans.fit(space.double().numpy())
        if projection:
            labels = torch.from_numpy(kmeans.labels_).long()
            sums = torch.zeros(self.n_clusters, dim, dtype=torch.float64)
            sums.index_add_(0, labels, h.double())
            counts = torch.bincount(labels, minlength=self.n_clusters).clamp_min(1)
            centers = sums / counts[:, None]
        else:
            centers = torch.from_numpy(kmeans.cluster_centers_)
        self.centers.copy_(centers.to(self.centers.device, self.centers.dtype))
        if is_distributed():
            # The processes' features may differ in the last bits (GPU kernels), and
            # k-means could then land elsewhere: rank 0's centres are everyone's.
            dist.broadcast(self.centers.data, src=0)

    @torch.no_grad()
    def reseed_emptied_centers(self, merge: bool = False) -> int:
        """Give every emptied cluster a new centre (see ``reseed_interval_epochs``).

        With ``merge`` and ``merge_confusion`` > 0, a pair of clusters that looks like
        one class cut in two may be merged first when no cluster is emptied, which
        frees a centre (see ``merge_confusion``; counted in ``merges_done``).
        Returns the number of clusters re-seeded. Every process computes the same on
        the full data; rank 0's centres are broadcast all the same (GPU rounding).
        """
        dim = self.centers.shape[1]
        alpha = self.params.alpha_t

        def features(x: Tensor) -> Tensor:
            h = self.backbone(x)
            z = F.normalize(self.instance_head(h), dim=1)
            labels = student_t_assignment(h, self.centers, alpha).argmax(dim=1)
            # float32 holds every cluster index exactly (bf16 would not above 256)
            return torch.cat([h.float(), z.float(), labels[:, None].float()], dim=1)

        out = self.data_pass(features).double()
        repair = repair_centers(
            out[:, :dim],
            out[:, dim:-1],
            out[:, -1].long(),
            self.centers,
            lambda h, mu: student_t_assignment(h, mu, alpha),
            below=self.params.reseed_below,
            merge_confusion=self.params.merge_confusion if merge else 0.0,
            seed=int(self.kmeans_seed),
        )
        if repair.merged:
            self.merges_done += 1
        if repair.reseeded:
            self.centers.copy_(repair.centers.to(self.centers.device, self.centers.dtype))
        if is_distributed():
            # At every check, moved or not: GPU rounding could lead one process to a
            # move that another does not make, and all must join the broadcast.
            dist.broadcast(self.centers.data, src=0)
        return repair.reseeded

    @torch.no_grad()
    def refresh_dataset_target(self) -> None:
        """Recompute ``p`` over the whole training set (clean views, current weights).

        Every process of a data-parallel run holds the full data and the same weights,
        so every process computes the same target; nothing is exchanged.
        """
        alpha = self.params.alpha_t
        q = self.data_pass(lambda x: student_t_assignment(self.backbone(x), self.centers, alpha))
        self.dataset_target = dec_target(q).to(self.centers.device)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Checkpoints written before merges existed have no count: none was made.
        state_dict.setdefault(prefix + "merges_done", torch.zeros((), dtype=torch.long))
        # Checkpoints written before the trainer owned the step count carry the method's.
        state_dict.pop(prefix + "steps_done", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ training
    def on_step(self, step: int, epoch: int) -> dict[str, Tensor]:
        """The schedules: the k-means start, the repair checks and the target refreshes.

        Logs ``reseeded`` (clusters given a new centre at this step) when repair is on
        and ``target_refreshed`` (1 at a refresh) with the data-set-level target.
        """
        p = self.params
        device = self.centers.device
        logged: dict[str, Tensor] = {}
        start = self.step_at(p.kmeans_init_epoch)
        initialising = start > 0 and step == start
        if initialising:
            self._init_centers()
        self.clustering = step >= start
        reseeded = 0
        if _starts_later(p.reseed_interval_epochs):
            every = max(1, self.step_at(p.reseed_interval_epochs))
            if step > start and (step - start) % every == 0:
                # merges_done is read at a check only: no device sync in other steps
                merge = int(self.merges_done) < p.max_merges
                reseeded = self.reseed_emptied_centers(merge=merge)
            logged["reseeded"] = torch.tensor(float(reseeded), device=device)
        if p.target == "dataset":
            refresh = self.clustering and (
                initialising
                or reseeded > 0
                or self.dataset_target is None
                or step % max(1, self.step_at(p.target_update_epochs)) == 0
            )
            if refresh:
                self.refresh_dataset_target()
            logged["target_refreshed"] = torch.tensor(float(refresh), device=device)
        return logged

    def on_fit_end(self) -> None:
        """With repair on, last checks (no merge) after the last step, so that a cluster
        the final steps emptied is not left empty in the read-out. A new centre can take
        the few samples of another small cluster: the check repeats while it moves a
        centre, at most :data:`FINAL_CHECKS` times."""
        if not (_starts_later(self.params.reseed_interval_epochs) and self.clustering):
            return
        for _ in range(FINAL_CHECKS):
            if not self.reseed_emptied_centers(merge=False):
                break
            if self.params.target == "dataset":
                self.refresh_dataset_target()

    def training_loss(self, views: list[Tensor], clean: Tensor, index: Tensor) -> dict[str, Tensor]:
        p = self.params
        target = None
        if p.target == "dataset" and self.clustering:
            if self.dataset_target is None:
                self.refresh_dataset_target()
            assert self.dataset_target is not None
            if self.dataset_target.device != index.device:
                self.dataset_target = self.dataset_target.to(index.device)
            target = self.dataset_target[index]

        x1, x2 = views
        b = clean.shape[0]
        # One pass over clean and augmented images: BatchNorm sees all 3B of them.
        h = self.backbone(torch.cat([clean, x1, x2], dim=0))
        h0, h1, h2 = h.split(b)
        z1, z2 = self.instance_head(torch.cat([h1, h2], dim=0)).chunk(2)
        instance = self.instance_loss(z1, z2)
        cluster = self.cluster_loss(h0, self.centers, target)
        q = student_t_assignment(h, self.centers, p.alpha_t)
        q0, q1, q2 = q.split(b)
        anchor = self.anchor_loss(q0, q1, q2)
        # Zero weights still multiply a loss in the graph: every parameter gets a
        # gradient at every step, as DDP requires.
        on = 1.0 if self.clustering else 0.0
        loss = (
            p.instance_weight * instance
            + on * p.cluster_weight * cluster
            + on * p.anchor_weight * anchor
        )
        return {
            "loss": loss,
            "instance": instance.detach(),
            "cluster": cluster.detach(),
            "anchor": anchor.detach(),
        }

    # ------------------------------------------------------------------ read-outs
    def cluster_probs(self, x: Tensor) -> Tensor:
        return student_t_assignment(self.backbone(x), self.centers, self.params.alpha_t).float()
