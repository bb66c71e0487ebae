"""ConCURL's consensus consistency: cluster assignments that agree across random projections."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contraclust.checks import check_int
from contraclust.errors import ConfigError, DataError
from contraclust.losses.inputs import check_temperature, check_view_pair, compute_dtype

__all__ = ["PROJECTION_KINDS", "ConsensusLoss", "RandomProjections"]

#: Kinds of random projection :class:`RandomProjections` can draw.
PROJECTION_KINDS = ("gaussian", "diagonal")


class RandomProjections(nn.Module):
    """``M`` fixed random linear maps ``R_m`` from ``in_dim`` to ``out_dim`` dimensions.

    ConCURL (Deshmukh et al., Machine Learning 2022) builds "variations of the
    representation space" by projecting the embeddings and the prototypes with random
    matrices drawn once per run. Calling the module maps ``x`` (``N x in_dim``) to
    ``x R_m^T`` for every ``m``, stacked as ``M x N x out_dim``.

    Kinds:
        ``"gaussian"`` (the paper; the authors' ``--use-rp``): dense ``R_m`` with
        i.i.d. entries ``N(0, 1/out_dim)``, as a Johnson-Lindenstrauss projection
        (scikit-learn's ``GaussianRandomProjection``, which the authors use, draws the
        same distribution).

        ``"diagonal"`` (the authors' code without ``--use-rp``): a random diagonal
        scaling of the input coordinates by i.i.d. ``N(0, 1)`` factors. The authors'
        scaling keeps all ``in_dim`` coordinates and ignores ``out_dim``; here
        ``out_dim`` must be ``<= in_dim``: with ``out_dim == in_dim`` it is exactly that
        scaling, with ``out_dim < in_dim`` each projection keeps a random subset of
        ``out_dim`` coordinates (drawn without replacement), scaled (our extension, so
        that ``out_dim`` means the same thing for both kinds). Only the ``out_dim``
        factors and coordinate indices are stored.

    The maps are buffers, not parameters: they are saved with the model and moved with
    it, never trained. They are drawn from a private generator seeded with ``seed``, so
    the same seed gives the same maps on every process and every run.

    Args:
        in_dim: width of the inputs, >= 1.
        n_projections: ``M``, the number of maps, >= 1.
        out_dim: ``d'``, the width of the projected space, >= 1 (``<= in_dim`` for
            ``"diagonal"``).
        kind: ``"gaussian"`` or ``"diagonal"``.
        seed: seed of the generator that draws the maps.

    Invalid arguments raise :class:`~contraclust.errors.ConfigError` naming them.
    Use :meth:`from_matrices` for maps given explicitly (e.g. the identity in tests)::

        >>> proj = RandomProjections(256, n_projections=16, out_dim=88, seed=0)
        >>> proj(torch.randn(32, 256)).shape
        torch.Size([16, 32, 88])
    """

    matrices: Tensor
    scales: Tensor
    indices: Tensor

    def __init__(
        self,
        in_dim: int,
        n_projections: int,
        out_dim: int,
        kind: str = "gaussian",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.in_dim = check_int("in_dim", in_dim)
        self.n_projections = check_int("n_projections", n_projections)
        self.out_dim = check_int("projection out_dim", out_dim)
        if kind not in PROJECTION_KINDS:
            raise ConfigError(
                f"projection kind must be one of {', '.join(PROJECTION_KINDS)}, got {kind!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"projection seed must be an integer, got {seed!r}")
        self.kind = kind
        self.seed = seed
        gen = torch.Generator().manual_seed(seed)
        if kind == "gaussian":
            std = out_dim**-0.5
            matrices = torch.randn(n_projections, out_dim, in_dim, generator=gen) * std
            self.register_buffer("matrices", matrices)
            return
        if out_dim > in_dim:
            raise ConfigError(
                f"projection out_dim must be <= in_dim ({in_dim}) for diagonal projections, "
                f"got {out_dim}"
            )
        if out_dim == in_dim:
            indices = torch.arange(in_dim).expand(n_projections, in_dim).clone()
        else:
            indices = torch.stack(
                [
                    torch.randperm(in_dim, generator=gen)[:out_dim].sort().values
                    for _ in range(n_projections)
                ]
            )
        self.register_buffer("indices", indices)
        self.register_buffer("scales", torch.randn(n_projections, out_dim, generator=gen))

    @classmethod
    def from_matrices(cls, matrices: Tensor) -> RandomProjections:
        """Projections with the given ``M x out_dim x in_dim`` matrices (``kind="given"``)."""
        if matrices.dim() != 3 or min(matrices.shape) < 1:
            raise ConfigError(
                "matrices must be a non-empty M x out_dim x in_dim tensor, got shape "
                f"{tuple(matrices.shape)}"
            )
        m, out_dim, in_dim = matrices.shape
        self = cls(in_dim, m, out_dim, kind="gaussian", seed=0)
        self.kind = "given"
        self.matrices = matrices.detach().clone()
        return self

    def dense(self) -> Tensor:
        """The maps as one dense ``M x out_dim x in_dim`` tensor (for inspection and tests)."""
        if self.kind != "diagonal":
            return self.matrices
        dense = self.scales.new_zeros(self.n_projections, self.out_dim, self.in_dim)
        rows = torch.arange(self.out_dim, device=dense.device).expand_as(self.indices)
        m = torch.arange(self.n_projections, device=dense.device)[:, None].expand_as(rows)
        dense[m, rows, self.indices] = self.scales
        return dense

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise DataError(
                f"RandomProjections expects N x {self.in_dim} inputs, got shape {tuple(x.shape)}"
            )
        if self.kind != "diagonal":
            return torch.matmul(x.unsqueeze(0), self.matrices.to(x.dtype).transpose(1, 2))
        picked = x[:, self.indices.reshape(-1)].reshape(x.shape[0], *self.indices.shape)
        return (picked * self.scales.to(x.dtype)).transpose(0, 1)

    def extra_repr(self) -> str:
        return (
            f"in_dim={self.in_dim}, n_projections={self.n_projections}, "
            f"out_dim={self.out_dim}, kind={self.kind!r}, seed={self.seed}"
        )


class ConsensusLoss(nn.Module):
    """ConCURL's consensus consistency loss.

    Deshmukh, Regatti, Manavoglu, Dogan, "Representation Learning for Clustering via
    Building Consensus" (ConCURL), Machine Learning 2022 (arXiv 2105.01289), the
    consensus-consistency objective. For each random projection ``R_m``
    (see :class:`RandomProjections`)::

        z_m = norm(z R_m^T),   C_m = norm(C R_m^T),   p_m = softmax(z_m C_m^T / temperature)
        L_cons = (1/M) sum_m 1/2 [ CE(q2, p1_m) + CE(q1, p2_m) ]

    where ``z`` are the (unnormalised) projection-head outputs of the two views, ``C``
    the ``K x D`` prototypes and ``q1``, ``q2`` the targets computed in the unprojected
    space (Sinkhorn of ``C norm(z)``), swapped between views as in the population loss:
    every projected partition must agree with the same targets. ``norm`` is the L2
    normalisation of rows. With one identity projection it equals
    :class:`~contraclust.losses.SwappedPredictionLoss` on ``norm(C) norm(z)``.

    The mean over the batch is a mean of per-sample terms, so no gathering is needed
    under DDP (the prototypes and projections are the same on every process).

    Args:
        temperature: softmax temperature, a finite number > 0 (ConCURL: 0.1).
        detach_prototypes: pass no gradient to ``C`` through the projected path. True
            is the authors' code (it projects ``prototypes.weight.data``); False lets
            the consensus term train the prototypes as well (the paper's formula read
            literally).

    Inputs: ``z1, z2`` (``B x D``), ``prototypes`` (``K x D``), ``q1, q2`` (``B x K``,
    detached here) and ``projections``, a :class:`RandomProjections` or any callable
    mapping ``N x D`` to ``M x N x d'``. Float32 compute for half inputs.

    Example::

        >>> proj = RandomProjections(256, n_projections=8, out_dim=64, seed=0)
        >>> z1, z2 = torch.randn(32, 256), torch.randn(32, 256)
        >>> C = F.normalize(torch.randn(10, 256), dim=1)
        >>> q1 = q2 = torch.full((32, 10), 0.1)
        >>> loss = ConsensusLoss(0.1)(z1, z2, C, q1, q2, proj)
    """

    def __init__(self, temperature: float = 0.1, detach_prototypes: bool = True) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.detach_prototypes = bool(detach_prototypes)

    def forward(
        self,
        z1: Tensor,
        z2: Tensor,
        prototypes: Tensor,
        q1: Tensor,
        q2: Tensor,
        projections: Callable[[Tensor], Tensor],
    ) -> Tensor:
        check_view_pair(z1, z2, ("z1", "z2"))
        check_view_pair(q1, q2, ("q1", "q2"))
        batch, dim = z1.shape
        if batch == 0:
            raise DataError("ConsensusLoss needs at least one sample, got an empty batch")
        if prototypes.dim() != 2 or prototypes.shape[1] != dim:
            raise DataError(
                f"prototypes must be K x {dim} (the width of z), got {tuple(prototypes.shape)}"
            )
        if q1.shape != (batch, prototypes.shape[0]):
            raise DataError(
                f"targets q1, q2 must be {batch} x {prototypes.shape[0]} (B x K), "
                f"got {tuple(q1.shape)}"
            )
        dtype = compute_dtype(torch.promote_types(z1.dtype, z2.dtype))
        dtype = torch.promote_types(dtype, prototypes.dtype)
        centers = prototypes.detach() if self.detach_prototypes else prototypes
        z = F.normalize(projections(torch.cat([z1, z2], dim=0).to(dtype)), dim=2)
        c = F.normalize(projections(centers.to(dtype)), dim=2)
        log_p = F.log_softmax(torch.matmul(z, c.transpose(1, 2)) / self.temperature, dim=2)
        log_p1, log_p2 = log_p.split(batch, dim=1)
        q1, q2 = q1.detach().to(log_p.dtype), q2.detach().to(log_p.dtype)
        # Per projection: cross-entropies averaged over the batch; then mean over M.
        ce_1 = -(q2.unsqueeze(0) * log_p1).sum(dim=2).mean(dim=1)
        ce_2 = -(q1.unsqueeze(0) * log_p2).sum(dim=2).mean(dim=1)
        return (0.5 * (ce_1 + ce_2)).mean()

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, detach_prototypes={self.detach_prototypes}"
