"""Instance discrimination against a memory bank (Wu et al. 2018), ConCURL's exemplar loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contraclust.errors import ConfigError, DataError
from contraclust.losses.distributed import gather_with_grad, world_size
from contraclust.losses.inputs import check_temperature

__all__ = ["MemoryBankNCE"]


class MemoryBankNCE(nn.Module):
    """Non-parametric instance discrimination with a memory bank of sample embeddings.

    Wu, Xiong, Yu, Lin, "Unsupervised Feature Learning via Non-Parametric Instance
    Discrimination", CVPR 2018 (eq. 2 for the non-parametric softmax, eq. 8 for the
    memory update); ConCURL's *exemplar consistency* loss (Deshmukh et al., Machine
    Learning 2022), with 4096 negatives and memory momentum 0.5.

    The bank ``v`` holds one unit vector per training sample. For a sample ``i`` with
    L2-normalised embedding ``f_i``::

        l_i = -log( exp(f_i . v_i / t) / (exp(f_i . v_i / t) + sum_{j in N_i} exp(f_i . v_j / t)) )

    where ``N_i`` are ``n_negatives`` bank entries drawn uniformly at random, never ``i``
    itself, and the loss is the mean of ``l_i`` over the batch. This is the full softmax
    form over ``1 + n_negatives`` sampled entries (a sampled InfoNCE). The authors' code
    (JayanthRR/ConCURL_NCE, ``lib/NCEAverage.py`` with Wu et al.'s ``NCECriterion``)
    uses Wu et al.'s binary NCE approximation instead (eqs. 3-6: ``P(i|f)`` normalised by
    a constant ``Z`` estimated once, then a logistic "data vs noise" loss); we chose the
    softmax form, which needs no estimate of ``Z`` and is the better behaved of the two
    at small batch and bank sizes. The temperatures of the authors' scripts were tuned
    for their form.

    One set of ``n_negatives + 1`` distinct indices is drawn per call and shared by the
    batch (a ``B x (n_negatives + 1)`` product instead of a gather per sample); for each
    sample the column holding its own index, or the last column when its index was not
    drawn, is dropped, so every sample has exactly ``n_negatives`` distinct negatives.
    The indices come from the global torch generator (CPU), so a seeded run is
    reproducible and resumable with the loop's saved RNG state.

    After the optimiser step (call :meth:`update`, no gradient) the entries of the batch
    move towards the new embeddings: ``v_i <- norm(momentum * v_i + (1 - momentum) f_i)``.

    Args:
        n_samples: size of the training set (rows of the bank), >= 2.
        dim: width of the embeddings, >= 1.
        n_negatives: negatives per sample, >= 1; capped at ``n_samples - 1``
            (ConCURL: 4096).
        temperature: ``t``, a finite number > 0 (Wu et al.: 0.07; ConCURL's scripts use
            0.35 to 1.0 per dataset).
        momentum: weight of the old entry in the update, in ``[0, 1)`` (ConCURL: 0.5).
        gather_distributed: under ``torch.distributed``, :meth:`update` gathers the
            indices and embeddings of every process first, so all processes apply the
            same update and their banks stay identical. The loss itself is a mean of
            per-sample terms and needs no gathering.

    The bank starts as random unit vectors drawn from the global torch generator (so the
    run seed decides them; every process draws the same bank when seeded alike). It is
    a buffer: saved in checkpoints, moved with the module, never trained.

    Example::

        >>> bank = MemoryBankNCE(n_samples=1000, dim=128, n_negatives=256)
        >>> f, idx = F.normalize(torch.randn(32, 128), dim=1), torch.arange(32)
        >>> loss = bank(f, idx)   # scalar
        >>> bank.update(f, idx)   # after the step, no gradient
    """

    bank: Tensor

    def __init__(
        self,
        n_samples: int,
        dim: int,
        n_negatives: int = 4096,
        temperature: float = 0.07,
        momentum: float = 0.5,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        for name, value, minimum in (
            ("n_samples", n_samples, 2),
            ("dim", dim, 1),
            ("n_negatives", n_negatives, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
        value = float(momentum)
        if not math.isfinite(value) or not 0.0 <= value < 1.0:
            raise ConfigError(f"memory momentum must be in [0, 1), got {momentum!r}")
        self.n_samples = n_samples
        self.dim = dim
        self.n_negatives = min(n_negatives, n_samples - 1)
        self.temperature = check_temperature(temperature)
        self.momentum = value
        self.gather_distributed = bool(gather_distributed)
        self.register_buffer("bank", F.normalize(torch.randn(n_samples, dim), dim=1))

    def draw_negatives(self) -> Tensor:
        """``n_negatives + 1`` distinct bank indices from the global torch generator."""
        return torch.randperm(self.n_samples)[: self.n_negatives + 1].to(self.bank.device)

    def _check(self, features: Tensor, index: Tensor) -> None:
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise DataError(f"features must be B x {self.dim}, got shape {tuple(features.shape)}")
        if index.shape != (features.shape[0],):
            raise DataError(
                f"index must hold one bank row per sample ({features.shape[0]}), "
                f"got shape {tuple(index.shape)}"
            )

    def forward(self, features: Tensor, index: Tensor, negatives: Tensor | None = None) -> Tensor:
        """Mean instance-discrimination loss of ``features`` (``B x dim``) at rows ``index``.

        ``features`` are L2-normalised here. ``negatives`` (``n_negatives + 1`` distinct
        indices) replaces the random draw, e.g. to compare with a reference.
        """
        self._check(features, index)
        if features.shape[0] == 0:
            raise DataError("MemoryBankNCE needs at least one sample, got an empty batch")
        if negatives is None:
            negatives = self.draw_negatives()
        elif negatives.shape != (self.n_negatives + 1,):
            raise DataError(
                f"negatives must hold n_negatives + 1 = {self.n_negatives + 1} indices, "
                f"got shape {tuple(negatives.shape)}"
            )
        index = index.to(self.bank.device)
        negatives = negatives.to(self.bank.device)
        dtype = torch.promote_types(features.dtype, self.bank.dtype)
        f = F.normalize(features.to(dtype), dim=1)
        positive = (f * self.bank[index].to(dtype)).sum(dim=1, keepdim=True)
        negative = f @ self.bank[negatives].to(dtype).T
        own = negatives[None, :] == index[:, None]
        # Drop the sample's own entry, or the spare last column when it was not drawn.
        drop = own.clone()
        drop[:, -1] |= ~own.any(dim=1)
        negative = negative.masked_fill(drop, float("-inf"))
        logits = torch.cat([positive, negative], dim=1) / self.temperature
        target = torch.zeros(len(f), dtype=torch.long, device=f.device)
        return F.cross_entropy(logits, target)

    @torch.no_grad()
    def update(self, features: Tensor, index: Tensor) -> None:
        """Momentum update of the bank rows ``index`` with ``features`` (no gradient).

        Under ``gather_distributed`` the rows and features of all processes are gathered
        first, so every process writes the same rows. An index that occurs more than once
        in the (global) batch takes one of its updates.
        """
        self._check(features, index)
        f = F.normalize(features.detach().to(self.bank.dtype), dim=1)
        index = index.to(self.bank.device)
        if self.gather_distributed and world_size() > 1:
            f = gather_with_grad(f.to(self.bank.device))
            index = gather_with_grad(index)
        if index.numel() == 0:
            return
        mixed = self.momentum * self.bank[index] + (1.0 - self.momentum) * f.to(self.bank.device)
        self.bank.index_copy_(0, index, F.normalize(mixed, dim=1))

    def extra_repr(self) -> str:
        return (
            f"n_samples={self.n_samples}, dim={self.dim}, n_negatives={self.n_negatives}, "
            f"temperature={self.temperature}, momentum={self.momentum}, "
            f"gather_distributed={self.gather_distributed}"
        )
