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
steps of instance contrast instead of on the untrained network
(``kmeans_init_step``; on digits, 168 steps reach ACC 0.96 with it against 0.77 after
210 steps without: see contraclust/presets/deca/digits.yaml), the option to run that k-means
on the normalised projector outputs rather than on the backbone features
(``kmeans_space: projection``; the centres are then the mean features of its clusters),
and the re-seeding of clusters that training has emptied (``reseed_interval``; the
handling of empty clusters follows DeepCluster's idea, Caron et al. 2018: give the
empty cluster half of a non-empty one; our choice of which one to split is new).

Data-parallel training: the instance and DEC losses gather over the global batch;
k-means, the BatchNorm re-estimation and the data-set-level target are computed by
every process on the full data (the same result everywhere; the centres are also
broadcast from rank 0 after a k-means in the middle of a run, in case GPU rounding
led the processes' k-means apart).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

from contraclust.checks import check_choice, check_fraction, check_int, check_number
from contraclust.config import ModelConfig
from contraclust.errors import ConfigError
from contraclust.losses import AnchorLoss, DECLoss, NTXentLoss, dec_target, student_t_assignment
from contraclust.losses.distributed import is_distributed
from contraclust.methods.base import ClusteringMethod, register_method
from contraclust.models import ProjectionHead, build_backbone

log = logging.getLogger("contraclust")

TARGETS = ("batch", "dataset")
KMEANS_SPACES = ("backbone", "projection")

Encode = Callable[[Callable[[Tensor], Tensor]], Tensor]


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


def _two_means(points: Tensor, seed: int) -> Tensor:
    """Labels (0 or 1) of a 2-means clustering of ``points``."""
    from sklearn.cluster import KMeans

    halves = KMeans(2, n_init=3, random_state=seed).fit(points.numpy()).labels_
    return torch.from_numpy(halves).long()


def _most_confused_pair(
    h: Tensor, labels: Tensor, centers: Tensor, alpha: float
) -> tuple[float, int, int]:
    """The pair of clusters (a, b) whose members give each other the most of q.

    Confusion of (a, b) = mean q_b over the members of a + mean q_a over those of b.
    Two halves of one class score high: their members sit between both centres.
    """
    k = centers.shape[0]
    sums = torch.zeros(k, k, dtype=torch.float64)
    for start in range(0, len(h), 4096):
        q = student_t_assignment(h[start : start + 4096], centers, alpha).double()
        sums.index_add_(0, labels[start : start + 4096], q)
    means = sums / torch.bincount(labels, minlength=k).clamp_min(1)[:, None].double()
    mutual = means + means.T
    mutual.fill_diagonal_(-1.0)
    flat = int(mutual.argmax())
    return float(mutual.view(-1)[flat]), flat // k, flat % k


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
    #: ``target_update_interval`` steps (DEC's scheme).
    target: str = "batch"
    #: Steps between two refreshes of the data-set-level target (``target: dataset``).
    target_update_interval: int = 100
    #: k-means restarts of the initialisation of the centres.
    kmeans_n_init: int = 10
    #: Training step at which k-means initialises the centres (ours). 0 (DECA): before
    #: the first step, on the features of the untrained network. S > 0: after S steps
    #: of the instance loss alone (the clustering and anchor losses are weighted 0
    #: until then), so that k-means starts from features that already mean something;
    #: this helps much when the training budget is small.
    kmeans_init_step: int = 0
    #: Where the k-means of the initialisation runs. ``backbone`` (DECA): on the
    #: backbone features h, whose centres are mu. ``projection`` (ours): on the
    #: L2-normalised outputs of the instance projector, the space the contrastive loss
    #: shapes; mu is then the mean h of each k-means cluster. After 10 epochs on usps,
    #: k-means there reached ACC .78 to .81 against .58 on h (seed 2).
    kmeans_space: str = "backbone"
    #: Before a k-means initialisation at step 0, re-estimate the BatchNorm running
    #: statistics on the clean data (ours; at a later step training has set them
    #: already). Without it, the eval-mode features that k-means sees
    #: come from the default statistics (mean 0, variance 1) of a new network, and
    #: their scale can be far from that of the train-mode features the losses see
    #: (10x for ``small_cnn`` on digits), so the centres would start out of place.
    recalibrate_batchnorm: bool = True
    #: Steps between two checks for clusters that training has emptied (ours; 0, the
    #: default and DECA's: never). A check is a pass over the clean training data; a
    #: cluster that holds fewer than ``reseed_below`` x N / K samples (argmax of q)
    #: gets a new centre by splitting the cluster that looks most like two: each
    #: cluster is cut in two by 2-means on the normalised projector outputs, and the
    #: one whose halves are furthest apart, relative to their spread along the line
    #: between them, gives up its second half (the two centres become the mean
    #: backbone features of the halves). DEC cannot split a cluster by itself: on usps
    #: it emptied a centre while 3 and 5 shared another (seed 0).
    reseed_interval: int = 0
    #: Size, as a fraction of the mean cluster size N / K, below which a cluster
    #: counts as emptied at a check (see ``reseed_interval``).
    reseed_below: float = 0.1
    #: At a check that finds no emptied cluster (see ``reseed_interval``): merge the
    #: two clusters whose members give each other the most of q (mean q of the other
    #: cluster, summed both ways) when that sum is at least this value and the two
    #: together split less cleanly than the cluster that looks most like two, which
    #: then gives its second half to the freed centre (ours; 0, the default: never).
    #: At most ``max_merges`` times in a run.
    #: On usps the zeros sat in two clusters while 3 and 5 shared one (seed 2): the
    #: two zero clusters' confusion was .35 at the first check and .18 to .21 at the
    #: end of runs without merging; at the end of runs that found every class, the
    #: most confused pair scored .12 to .13 (.16 where 4s were mixed into the 9s).
    merge_confusion: float = 0.0
    #: Merges allowed in a run (see ``merge_confusion``). The k-means start can cut
    #: a large class in two; later in training, classes drifting between clusters
    #: make confused pairs of another kind: on usps (seed 1), a second merge, at the
    #: sixth check, put the 4s with the 9s (ACC .944 without it, .817 with it).
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
        check_int("target_update_interval", self.target_update_interval, 1)
        check_int("kmeans_n_init", self.kmeans_n_init, 1)
        check_int("kmeans_init_step", self.kmeans_init_step, 0)
        check_choice("kmeans_space", self.kmeans_space, KMEANS_SPACES)
        check_int("reseed_interval", self.reseed_interval, 0)
        check_fraction("reseed_below", self.reseed_below)
        check_number("merge_confusion", self.merge_confusion, 0.0, strict=False)
        check_int("max_merges", self.max_merges, 0)


@register_method
class DECA(ClusteringMethod):
    name = "deca"
    summary = "DECA (Sundareswaran et al. 2021): instance contrast + DEC + anchor loss"
    Params = DECAParams
    n_views = 2

    def __init__(
        self,
        params: DECAParams,
        n_clusters: int,
        input_shape: tuple[int, ...],
        model: ModelConfig,
        n_samples: int,
    ) -> None:
        super().__init__(params, n_clusters, input_shape, model, n_samples)
        self.backbone = build_backbone(model.backbone, self.input_shape, model.width)
        dim = self.backbone.out_dim
        self.instance_head = ProjectionHead(dim, model.hidden_dim, model.projection_dim)
        #: Cluster centres mu in the backbone space; set by k-means in ``on_fit_start``.
        self.centers = nn.Parameter(torch.zeros(n_clusters, dim))
        self.instance_loss = NTXentLoss(params.instance_temperature, gather_distributed=True)
        self.cluster_loss = DECLoss(params.alpha_t, gather_distributed=True)
        self.anchor_loss = AnchorLoss()
        #: Training steps taken: schedules the refreshes of the data-set-level target.
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        #: ``steps_done`` as a Python int, so that a step on a GPU does not wait for the
        #: device to read it back; None until first read (and after a state is loaded).
        self._steps_host: int | None = None
        #: Seed of the k-means initialisation, drawn from torch's generator at the start
        #: of a run (kept for an initialisation at ``kmeans_init_step`` > 0).
        self.register_buffer("kmeans_seed", torch.zeros((), dtype=torch.long))
        #: Merges made so far (see ``merge_confusion``), in the checkpoint for resume.
        self.register_buffer("merges_done", torch.zeros((), dtype=torch.long))
        #: The data-set-level target (N x K), in the checkpoint as the module's extra
        #: state rather than a buffer: DDP broadcasts buffers at every step, and every
        #: process computes this one identically on the full data anyway.
        self.dataset_target: Tensor | None = None
        self._encode: Encode | None = None

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> Tensor:
        if self.dataset_target is None:
            return torch.empty(0)
        return self.dataset_target.detach().cpu()

    def set_extra_state(self, state: Tensor) -> None:
        self.dataset_target = state.clone() if state.numel() else None

    # ------------------------------------------------------------------ set-up
    def on_fit_start(self, encode: Encode, resumed: bool) -> None:
        # Kept for the refreshes of the data-set-level target. On resume the centres,
        # the target and the step count come from the checkpoint.
        self._encode = encode
        if resumed:
            return
        # Drawn here, so the run's seed fixes the centres wherever they are initialised.
        self.kmeans_seed.fill_(int(torch.randint(0, 2**31 - 1, ()).item()))
        if self.params.kmeans_init_step == 0:
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

        out = self._data_pass(features)
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
        """Give every emptied cluster a new centre (see ``reseed_interval``).

        With ``merge``, ``merge_confusion`` > 0 and no cluster emptied, a pair of
        clusters that looks like one class cut in two is merged first, which frees a
        centre (see ``merge_confusion``).
        Returns the number of clusters re-seeded. Every process computes the same on
        the full data; rank 0's centres are broadcast all the same (GPU rounding).
        """
        k = self.n_clusters
        dim = self.centers.shape[1]
        alpha = self.params.alpha_t

        def features(x: Tensor) -> Tensor:
            h = self.backbone(x)
            z = F.normalize(self.instance_head(h), dim=1)
            labels = student_t_assignment(h, self.centers, alpha).argmax(dim=1)
            # float32 holds every cluster index exactly (bf16 would not above 256)
            return torch.cat([h.float(), z.float(), labels[:, None].float()], dim=1)

        out = self._data_pass(features).double()
        h, z, labels = out[:, :dim], out[:, dim:-1], out[:, -1].long()
        sizes = torch.bincount(labels, minlength=k)
        emptied = [c for c in range(k) if sizes[c] < self.params.reseed_below * len(h) / k]
        centers = self.centers.detach().double().cpu().clone()
        seed = int(self.kmeans_seed)
        # Cluster -> (separation of its two halves, members, 2-means labels).
        cuts: dict[int, tuple[float, Tensor, Tensor]] = {}

        def cut(c: int) -> None:
            members = (labels == c).nonzero().squeeze(1)
            if c not in cuts and c not in emptied and len(members) >= 4:
                halves = _two_means(z[members], seed)
                cuts[c] = (bisection_separation(z[members], halves), members, halves)

        if merge and not emptied and self.params.merge_confusion > 0:
            confusion, a, b = _most_confused_pair(h, labels, centers, alpha)
            if confusion >= self.params.merge_confusion:
                union = ((labels == a) | (labels == b)).nonzero().squeeze(1)
                together = bisection_separation(z[union], _two_means(z[union], seed))
                for c in range(k):
                    if c not in (a, b):
                        cut(c)
                if cuts and max(v[0] for v in cuts.values()) > together:
                    self.merges_done += 1
                    labels[labels == b] = a
                    centers[a] = h[union].mean(dim=0)
                    emptied = [b]
                    log.info(
                        "DECA: clusters %d and %d look like one class (confusion %.2f): "
                        "merged, to re-seed %d",
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
                "DECA: re-seeded cluster %d with half of cluster %d (%d samples)",
                target,
                source,
                len(moved),
            )
        if reseeded:
            self.centers.copy_(centers.to(self.centers.device, self.centers.dtype))
        if is_distributed():
            # At every check, moved or not: GPU rounding could lead one process to a
            # move that another does not make, and all must join the broadcast.
            dist.broadcast(self.centers.data, src=0)
        return reseeded

    def _data_pass(self, fn: Callable[[Tensor], Tensor]) -> Tensor:
        if self._encode is None:
            raise RuntimeError(
                "DECA needs passes over the training data: on_fit_start must run before "
                "the first training step"
            )
        return self._encode(fn)

    @torch.no_grad()
    def refresh_dataset_target(self) -> None:
        """Recompute ``p`` over the whole training set (clean views, current weights).

        Every process of a data-parallel run holds the full data and the same weights,
        so every process computes the same target; nothing is exchanged.
        """
        alpha = self.params.alpha_t
        q = self._data_pass(lambda x: student_t_assignment(self.backbone(x), self.centers, alpha))
        self.dataset_target = dec_target(q).to(self.centers.device)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Checkpoints written before merges existed have no count: none was made.
        state_dict.setdefault(prefix + "merges_done", torch.zeros((), dtype=torch.long))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._steps_host = None  # read the loaded step count at the next step

    # ------------------------------------------------------------------ training
    def training_loss(self, views: list[Tensor], clean: Tensor, index: Tensor) -> dict[str, Tensor]:
        p = self.params
        out: dict[str, Tensor] = {}
        if self._steps_host is None:
            self._steps_host = int(self.steps_done)
        step = self._steps_host
        initialising = self.training and p.kmeans_init_step > 0 and step == p.kmeans_init_step
        if initialising:
            self._init_centers()
        clustering = step >= p.kmeans_init_step
        check = (
            self.training
            and p.reseed_interval > 0
            and step > p.kmeans_init_step
            and (step - p.kmeans_init_step) % p.reseed_interval == 0
        )
        reseeded = 0
        if check:  # merges_done is read here only: no device sync in an ordinary step
            reseeded = self.reseed_emptied_centers(merge=int(self.merges_done) < p.max_merges)
        if p.reseed_interval > 0:
            out["reseeded"] = torch.tensor(float(reseeded), device=clean.device)
        target = None
        refresh = False
        if p.target == "dataset" and clustering:
            refresh = (
                initialising
                or reseeded > 0
                or self.dataset_target is None
                or (self.training and step % p.target_update_interval == 0)
            )
            if refresh:
                self.refresh_dataset_target()
            assert self.dataset_target is not None
            if self.dataset_target.device != index.device:
                self.dataset_target = self.dataset_target.to(index.device)
            target = self.dataset_target[index]
        if p.target == "dataset":
            out["target_refreshed"] = torch.tensor(float(refresh), device=clean.device)
        if self.training:
            self.steps_done += 1
            self._steps_host = step + 1

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
        on = 1.0 if clustering else 0.0
        loss = (
            p.instance_weight * instance
            + on * p.cluster_weight * cluster
            + on * p.anchor_weight * anchor
        )
        out.update(
            loss=loss,
            instance=instance.detach(),
            cluster=cluster.detach(),
            anchor=anchor.detach(),
        )
        return out

    # ------------------------------------------------------------------ read-outs
    def cluster_probs(self, x: Tensor) -> Tensor:
        return student_t_assignment(self.backbone(x), self.centers, self.params.alpha_t).float()

    def embed(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def kmeans_spaces(self) -> tuple[str, ...]:
        return ("backbone", "projection")

    def kmeans_features(self, x: Tensor, space: str) -> Tensor:
        if space == "projection":
            # The space of the contrastive loss, which compares normalised vectors.
            return F.normalize(self.instance_head(self.backbone(x)).float(), dim=1)
        return super().kmeans_features(x, space)
