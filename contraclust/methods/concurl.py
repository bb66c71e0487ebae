"""ConCURL — Deshmukh, Regatti, Manavoglu, Dogan, "Representation Learning for Clustering
via Building Consensus", Machine Learning 2022 (arXiv 2105.01289; earlier 2010.01245).

Three consistencies trained together on a shared backbone ``h``:

- exemplar: two views of an image are close (instance discrimination against a memory
  bank, :class:`~contraclust.losses.MemoryBankNCE`, or NT-Xent as an alternative) on
  the exemplar head ``e = norm(Linear(h))``;
- population: similar images get similar cluster assignments (SwAV's swapped
  prediction, :class:`~contraclust.losses.SwappedPredictionLoss`) with scores
  ``s = C norm(z)`` of the projection head ``z`` against the prototypes ``C`` and
  balanced targets ``q = Sinkhorn(s)``;
- consensus: the partitions in ``M`` random projections of the space agree with the
  same targets (:class:`~contraclust.losses.ConsensusLoss`).

``L = beta L_exemplar + alpha L_pop + gamma L_cons``. The paper learns the prototypes
(``alpha > 0``, our default); the authors' released scripts (JayanthRR/ConCURL_NCE,
``run.sh``) use ``alpha = 0, beta = gamma = 1`` with the consensus path detached from
the prototypes, so their prototypes stay at their random initialisation: set
``alpha: 0`` to get that variant (the prototypes are then frozen, ``requires_grad``
False, so that DDP sees no unused parameter).

The authors' code (``main.py``) runs the network once per view (``view_passes:
separate``: the backbone and the projection head's BatchNorm normalise each view with
its own statistics; ours, the default, is one pass over both views, ``joint``). Its
exemplar loss uses view 1 only: the memory-bank loss of ``e1`` and a bank update with
``e1`` (``exemplar_views: first``, used by the presets that follow their scripts).
``exemplar_views: both`` (ours, the default) averages the losses of the two views and
updates the bank with ``norm(e1 + e2)``.

Prediction (``train.predict_with``): ``head``, the argmax of the scores ``C norm(z)``
(the authors' ``outcode``); ``sinkhorn``, the argmax of a Sinkhorn assignment of those
scores computed over the whole data set (``sinkhorn_eps``, ``sinkhorn_iters``; the
authors' ``q_code``); ``kmeans``, k-means in ``train.kmeans_space``: ``backbone`` (h),
``projection`` (z before normalisation, the authors' ``clust_head``) or ``exemplar``
(the normalised exemplar embedding e, the authors' NCE embedding; needs ``beta > 0``).
The authors report the three with k-means restarted 20 times (``train.kmeans_n_init``).

Defaults without a preset: the parameters below give the origin of each default. The
optimiser is the library's default (Adam, lr 3e-4, no weight decay), not the authors':
their scripts use SGD with momentum 0.9, weight decay 5e-4 and a learning rate per
data set (the presets ``concurl/<dataset>`` carry them).

Under DDP the Sinkhorn column sums, the NT-Xent negatives and the memory-bank updates use
the global batch.

Queue (``queue_length > 0``, SwAV section 4): with many clusters and small batches the
equipartition of one batch is noisy, so the normalised ``z`` of the last
``queue_length`` samples of each view (per process) are kept, scored against the current
prototypes and balanced together with the batch; only the batch's rows become targets.
The queue fills from epoch ``queue_start_epoch`` (a fraction allowed) and is used once
full (see :mod:`contraclust.methods.sinkhorn_queue`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contraclust.checks import check_choice, check_int, check_number
from contraclust.errors import ConfigError
from contraclust.losses import (
    ConsensusLoss,
    MemoryBankNCE,
    NTXentLoss,
    RandomProjections,
    SinkhornKnopp,
    SwappedPredictionLoss,
)
from contraclust.losses.consensus import PROJECTION_KINDS
from contraclust.methods.base import (
    VIEW_PASSES,
    ClusteringMethod,
    encode_views,
    late_schedule,
    register_method,
)
from contraclust.methods.sinkhorn_queue import (
    SinkhornQueue,
    check_queue_params,
    check_queue_schedule,
)
from contraclust.models import ProjectionHead

EXEMPLAR_LOSSES = ("nce", "ntxent")
EXEMPLAR_VIEWS = ("both", "first")


@dataclass
class ConCURLParams:
    """ConCURL's hyper-parameters. Each default says where it comes from: the paper, the
    authors' code (``main.py`` defaults or ``run.sh``), or ours."""

    #: Exemplar-consistency loss: ``nce`` (memory bank, the paper) or ``ntxent`` (SimCLR).
    exemplar_loss: str = "nce"
    #: Views in the memory-bank loss and update: ``both`` (ours: mean loss of the two
    #: views, update with ``norm(e1 + e2)``) or ``first`` (the authors' code: view 1
    #: only). ``nce`` only; NT-Xent always contrasts the two views.
    exemplar_views: str = "both"
    #: ``joint`` (ours): one pass of backbone and projection head over both views,
    #: BatchNorm statistics of the 2B images; ``separate`` (the authors' code): one
    #: pass per view.
    view_passes: str = "joint"
    #: Temperature of the memory-bank loss (``main.py``'s default; the authors' scripts
    #: use 0.35 to 1.0 per data set).
    nce_temperature: float = 0.3
    #: Negatives drawn from the memory bank per step (paper: 4096; capped at N - 1).
    n_negatives: int = 4096
    #: Weight of the old bank entry in its update (paper: 0.5).
    memory_momentum: float = 0.5
    #: Temperature of NT-Xent when ``exemplar_loss`` is ``ntxent``.
    ntxent_temperature: float = 0.5
    #: Entropic regularisation of the Sinkhorn targets (paper: 0.05).
    sinkhorn_eps: float = 0.05
    #: Sinkhorn normalisation rounds (paper: 3).
    sinkhorn_iters: int = 3
    #: Softmax temperature of the predictions p = softmax(s / temperature) (paper: 0.1).
    temperature: float = 0.1
    #: Number M of random projections of the consensus loss (ours; the authors'
    #: scripts: 64 CIFAR-10, 16 CIFAR-100-20, 1 ImageNet-10, 64 ImageNet-Dogs).
    n_projections: int = 16
    #: Width d' of the projected spaces (ours; the authors' scripts: 152, 88, 104, 136).
    projection_dim: int = 128
    #: ``gaussian`` (the paper) or ``diagonal`` (see RandomProjections).
    projection_kind: str = "gaussian"
    #: Seed of the projections; None draws it from the run's seeded torch generator.
    projection_seed: int | None = None
    #: Weight of the population (swapped prediction) loss; 0 = the authors' scripts.
    alpha: float = 1.0
    #: Weight of the exemplar loss.
    beta: float = 1.0
    #: Weight of the consensus loss.
    gamma: float = 1.0
    #: Train the prototypes (the paper). False keeps them at their random start.
    learnable_prototypes: bool = True
    #: No gradient to the prototypes through the consensus loss (the authors' code).
    detach_consensus_prototypes: bool = True
    #: Hidden width of the projection head (paper: 2048).
    projection_hidden: int = 2048
    #: Width of z and of the prototypes (paper: 256).
    projection_out: int = 256
    #: Width of the exemplar head (paper: 128).
    exemplar_dim: int = 128
    #: Keep the prototypes fixed for this many first epochs (SwAV's warm-up; 0: never;
    #: a fraction allowed). Must end within the run, or the prototypes never train.
    freeze_prototypes_epochs: float = 0.0
    #: SwAV's queue: normalised ``z`` kept per view and per process for Sinkhorn (0: none).
    queue_length: int = 0
    #: Epoch (fractions allowed) from which the queue is filled; used once full.
    queue_start_epoch: float = 0.0

    def __post_init__(self) -> None:
        if self.exemplar_loss not in EXEMPLAR_LOSSES:
            raise ConfigError(
                f"exemplar_loss must be one of {', '.join(EXEMPLAR_LOSSES)}, "
                f"got {self.exemplar_loss!r}"
            )
        if self.exemplar_views not in EXEMPLAR_VIEWS:
            raise ConfigError(
                f"exemplar_views must be one of {', '.join(EXEMPLAR_VIEWS)}, "
                f"got {self.exemplar_views!r}"
            )
        if self.exemplar_views != "both" and self.exemplar_loss != "nce":
            raise ConfigError(
                f"exemplar_views: {self.exemplar_views} applies to exemplar_loss: nce only "
                "(NT-Xent contrasts the two views); set exemplar_views: both"
            )
        check_choice("view_passes", self.view_passes, VIEW_PASSES)
        if self.projection_kind not in PROJECTION_KINDS:
            raise ConfigError(
                f"projection_kind must be one of {', '.join(PROJECTION_KINDS)}, "
                f"got {self.projection_kind!r}"
            )
        for name in ("nce_temperature", "ntxent_temperature", "sinkhorn_eps", "temperature"):
            check_number(name, getattr(self, name))
        for name in ("alpha", "beta", "gamma"):
            check_number(name, getattr(self, name), strict=False)
        if self.alpha + self.beta + self.gamma == 0:
            raise ConfigError(
                "alpha, beta and gamma are all 0: at least one loss weight must be > 0"
            )
        if not 0 <= self.memory_momentum < 1:
            raise ConfigError(f"memory_momentum must be in [0, 1), got {self.memory_momentum}")
        for name in (
            "n_negatives",
            "sinkhorn_iters",
            "n_projections",
            "projection_dim",
            "projection_hidden",
            "projection_out",
            "exemplar_dim",
        ):
            check_int(name, getattr(self, name))
        check_number("freeze_prototypes_epochs", self.freeze_prototypes_epochs, strict=False)
        check_queue_params(
            self.queue_length, self.queue_start_epoch, self.alpha > 0 or self.gamma > 0
        )
        if self.projection_kind == "diagonal" and self.projection_dim > self.projection_out:
            raise ConfigError(
                f"projection_dim must be <= projection_out ({self.projection_out}) for "
                f"diagonal projections, got {self.projection_dim}"
            )


@register_method
class ConCURL(ClusteringMethod):
    name = "concurl"
    summary = "ConCURL (Deshmukh et al. 2022): exemplar, population and consensus consistency"
    Params = ConCURLParams

    params: ConCURLParams

    @classmethod
    def check_schedule(cls, params: Any, epochs: int) -> None:
        check_queue_schedule("concurl", params.queue_length, params.queue_start_epoch, epochs)
        frozen = params.freeze_prototypes_epochs
        if frozen > 0 and frozen >= epochs:
            whole = "keeps the prototypes from training in a whole run of"
            raise ConfigError(
                late_schedule("concurl", "freeze_prototypes_epochs", frozen, epochs, whole)
            )

    def build(self) -> None:
        p, n_clusters, dim = self.params, self.n_clusters, self.feature_dim
        self.projection_head = ProjectionHead(
            dim, p.projection_hidden, p.projection_out, batch_norm=True
        )
        self.prototypes = nn.Parameter(
            F.normalize(torch.randn(n_clusters, p.projection_out), dim=1)
        )
        self.sinkhorn = SinkhornKnopp(p.sinkhorn_eps, p.sinkhorn_iters, gather_distributed=True)
        self.sinkhorn_queue = (
            SinkhornQueue(p.queue_length, p.projection_out, p.queue_start_epoch)
            if p.queue_length
            else None
        )
        self.population_loss = SwappedPredictionLoss(p.temperature)
        self.consensus_loss = ConsensusLoss(p.temperature, p.detach_consensus_prototypes)
        seed = p.projection_seed
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        self.projections = RandomProjections(
            p.projection_out, p.n_projections, p.projection_dim, p.projection_kind, seed
        )
        self.exemplar_head: nn.Linear | None = None
        self.memory_bank: MemoryBankNCE | None = None
        self.ntxent: NTXentLoss | None = None
        if p.beta > 0:
            self.exemplar_head = nn.Linear(dim, p.exemplar_dim)
            if p.exemplar_loss == "nce":
                self.memory_bank = MemoryBankNCE(
                    self.n_samples,
                    p.exemplar_dim,
                    p.n_negatives,
                    p.nce_temperature,
                    p.memory_momentum,
                    gather_distributed=True,
                )
            else:
                self.ntxent = NTXentLoss(p.ntxent_temperature, gather_distributed=True)
        # A parameter that gets no gradient must not be trainable (DDP refuses unused ones).
        self.uses_assignments = p.alpha > 0 or p.gamma > 0
        self.projection_head.requires_grad_(self.uses_assignments)
        prototypes_trained = p.learnable_prototypes and (
            p.alpha > 0 or (p.gamma > 0 and not p.detach_consensus_prototypes)
        )
        self.prototypes.requires_grad_(prototypes_trained)
        #: True during the first ``freeze_prototypes_epochs`` (set by ``on_step``).
        self.prototypes_frozen = p.freeze_prototypes_epochs > 0

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Checkpoints written before the trainer owned the step count carry the method's.
        state_dict.pop(prefix + "steps_done", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ training
    def on_step(self, step: int, epoch: int) -> None:
        self.prototypes_frozen = step < self.step_at(self.params.freeze_prototypes_epochs)
        if self.sinkhorn_queue is not None:
            self.sinkhorn_queue.schedule(step, self.steps_per_epoch)

    def _prototypes_for_step(self) -> Tensor:
        """The prototypes, with a zero gradient during the first frozen epochs.

        They stay in the graph (multiplied by 0) rather than detached so that DDP sees the
        same set of used parameters in every step.
        """
        if not self.prototypes_frozen or not self.prototypes.requires_grad:
            return self.prototypes
        return self.prototypes.detach() + 0.0 * self.prototypes

    def training_loss(self, views: list[Tensor], clean: Tensor, index: Tensor) -> dict[str, Tensor]:
        p = self.params
        x1, x2 = views
        with torch.no_grad():
            self.prototypes.copy_(F.normalize(self.prototypes, dim=1))
        h = encode_views(self.backbone, [x1, x2], p.view_passes)
        zero = h.new_zeros((), dtype=torch.float32)
        exemplar = population = consensus = zero
        if self.exemplar_head is not None:
            e = F.normalize(self.exemplar_head(h).float(), dim=1)
            e1, e2 = e.chunk(2)
            if self.memory_bank is not None:
                negatives = self.memory_bank.draw_negatives()
                if p.exemplar_views == "first":
                    # The authors' code: view 1 in the loss and in the bank update.
                    exemplar = self.memory_bank(e1, index, negatives)
                    self.memory_bank.update(e1.detach(), index)
                else:
                    exemplar = 0.5 * (
                        self.memory_bank(e1, index, negatives)
                        + self.memory_bank(e2, index, negatives)
                    )
                    # The bank moves towards the mean of the two views' embeddings.
                    self.memory_bank.update(e1.detach() + e2.detach(), index)
            else:
                assert self.ntxent is not None
                exemplar = self.ntxent(e1, e2)
        if self.uses_assignments:
            z = self._project(h)
            prototypes = self._prototypes_for_step()
            unit_z = F.normalize(z, dim=1)
            scores = unit_z @ prototypes.T
            s1, s2 = scores.chunk(2)
            if self.sinkhorn_queue is None:
                q1, q2 = self.sinkhorn(s1), self.sinkhorn(s2)
            else:
                # Queued z are scored against this step's prototypes (SwAV).
                q1, q2 = self.sinkhorn_queue.targets(
                    [s1, s2], unit_z.chunk(2), lambda e: e @ prototypes.detach().T, self.sinkhorn
                )
            if p.alpha > 0:
                population = self.population_loss(s1, s2, q1, q2)
            if p.gamma > 0:
                z1, z2 = z.chunk(2)
                consensus = self.consensus_loss(z1, z2, prototypes, q1, q2, self.projections)
        loss = p.beta * exemplar + p.alpha * population + p.gamma * consensus
        return {
            "loss": loss,
            "exemplar": exemplar.detach(),
            "population": population.detach(),
            "consensus": consensus.detach(),
        }

    def _project(self, h: Tensor) -> Tensor:
        """z of the 2B backbone features; its BatchNorm sees the views as the backbone did."""
        if self.params.view_passes == "separate":
            return torch.cat([self.projection_head(v) for v in h.chunk(2)], dim=0).float()
        return self.projection_head(h).float()

    # ------------------------------------------------------------------ read-outs
    def scores(self, x: Tensor) -> Tensor:
        """``B x K`` cosine similarities ``C norm(z)`` of a normalised batch."""
        z = F.normalize(self.projection_head(self.backbone(x)).float(), dim=1)
        return z @ F.normalize(self.prototypes.float(), dim=1).T

    def cluster_probs(self, x: Tensor) -> Tensor:
        return F.softmax(self.scores(x) / self.params.temperature, dim=1)

    def kmeans_spaces(self) -> tuple[str, ...]:
        spaces = ("backbone", "projection")
        return (*spaces, "exemplar") if self.exemplar_head is not None else spaces

    def kmeans_features(self, x: Tensor, space: str) -> Tensor:
        if space == "projection":
            # z before normalisation: the authors' ``clust_head`` features.
            return self.projection_head(self.backbone(x)).float()
        if space == "exemplar" and self.exemplar_head is not None:
            return F.normalize(self.exemplar_head(self.backbone(x)).float(), dim=1)
        return super().kmeans_features(x, space)

    def sinkhorn_scores(self, x: Tensor) -> Tensor:
        return self.scores(x)

    def sinkhorn_settings(self) -> tuple[float, int]:
        # The authors' ``q_code``: the training targets' Sinkhorn, run over all N.
        return self.params.sinkhorn_eps, self.params.sinkhorn_iters
