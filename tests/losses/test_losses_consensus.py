from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contraclust.errors import ConfigError, DataError
from contraclust.losses import (
    ConsensusLoss,
    RandomProjections,
    SwappedPredictionLoss,
    sinkhorn_knopp,
)


def unit(v: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def reference_consensus(z1, z2, centers, q1, q2, matrices, t: float) -> float:
    """The consensus loss with explicit loops over projections, samples and clusters."""
    m_count, d_out, d_in = matrices.shape

    def project(v: torch.Tensor, r: torch.Tensor) -> list[float]:
        return unit([sum(float(r[a, c]) * float(v[c]) for c in range(d_in)) for a in range(d_out)])

    def ce(q_row, z_row, projected_centers) -> float:
        zp = project(z_row, r)
        logits = [sum(x * y for x, y in zip(zp, c, strict=True)) / t for c in projected_centers]
        top = max(logits)
        log_norm = top + math.log(sum(math.exp(v - top) for v in logits))
        return -sum(float(q_row[k]) * (logits[k] - log_norm) for k in range(len(logits)))

    total = 0.0
    for m in range(m_count):
        r = matrices[m]
        projected_centers = [project(c, r) for c in centers]
        b = z1.shape[0]
        per_m = sum(
            0.5 * (ce(q2[i], z1[i], projected_centers) + ce(q1[i], z2[i], projected_centers))
            for i in range(b)
        )
        total += per_m / b
    return total / m_count


def case(b: int, d: int, k: int, seed: int, dtype: torch.dtype = torch.float64):
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(b, d, generator=gen, dtype=dtype)
    z2 = torch.randn(b, d, generator=gen, dtype=dtype)
    centers = F.normalize(torch.randn(k, d, generator=gen, dtype=dtype), dim=1)
    q1 = sinkhorn_knopp(F.normalize(z1, dim=1) @ centers.T)
    q2 = sinkhorn_knopp(F.normalize(z2, dim=1) @ centers.T)
    return z1, z2, centers, q1, q2


@pytest.mark.parametrize("kind", ["gaussian", "diagonal"])
@pytest.mark.parametrize(("b", "d", "k", "m", "d_out"), [(3, 6, 2, 1, 4), (5, 8, 4, 3, 8)])
def test_matches_loop_reference(kind: str, b: int, d: int, k: int, m: int, d_out: int) -> None:
    z1, z2, centers, q1, q2 = case(b, d, k, seed=b * d)
    projections = RandomProjections(d, m, d_out, kind=kind, seed=7).double()
    loss = ConsensusLoss(0.1)(z1, z2, centers, q1, q2, projections)
    expected = reference_consensus(z1, z2, centers, q1, q2, projections.dense(), 0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_identity_projection_equals_population_loss() -> None:
    z1, z2, centers, q1, q2 = case(10, 16, 5, seed=1)
    identity = RandomProjections.from_matrices(torch.eye(16, dtype=torch.float64)[None])
    consensus = ConsensusLoss(0.1)(z1, z2, centers, q1, q2, identity)
    s1, s2 = F.normalize(z1, dim=1) @ centers.T, F.normalize(z2, dim=1) @ centers.T
    population = SwappedPredictionLoss(0.1)(s1, s2, q1, q2)
    torch.testing.assert_close(consensus, population)


def test_gradcheck_float64_with_and_without_prototype_gradient() -> None:
    z1, z2, centers, q1, q2 = case(4, 5, 3, seed=2)
    projections = RandomProjections(5, 2, 3, seed=3).double()
    z1.requires_grad_()
    z2.requires_grad_()
    centers.requires_grad_()
    through = ConsensusLoss(0.2, detach_prototypes=False)
    assert torch.autograd.gradcheck(
        lambda a, b, c: through(a, b, c, q1, q2, projections), (z1, z2, centers), eps=1e-6
    )
    detached = ConsensusLoss(0.2, detach_prototypes=True)
    detached(z1, z2, centers, q1, q2, projections).backward()
    assert centers.grad is None
    assert z1.grad is not None and z2.grad is not None


def test_projections_are_fixed_seeded_buffers() -> None:
    a = RandomProjections(32, 4, 8, seed=5)
    b = RandomProjections(32, 4, 8, seed=5)
    c = RandomProjections(32, 4, 8, seed=6)
    assert torch.equal(a.matrices, b.matrices) and not torch.equal(a.matrices, c.matrices)
    assert list(a.parameters()) == []
    assert set(a.state_dict()) == {"matrices"}
    assert a(torch.randn(7, 32)).shape == (4, 7, 8)


def test_gaussian_entries_have_variance_one_over_out_dim() -> None:
    matrices = RandomProjections(256, 64, 50, seed=0).matrices
    assert matrices.mean().abs() < 0.01
    assert matrices.var().item() == pytest.approx(1 / 50, rel=0.02)


def test_diagonal_projections_scale_and_select_coordinates() -> None:
    full = RandomProjections(6, 3, 6, kind="diagonal", seed=1)
    dense = full.dense()
    for m in range(3):
        off_diagonal = dense[m] - torch.diag(torch.diagonal(dense[m]))
        assert torch.count_nonzero(off_diagonal) == 0
    x = torch.randn(4, 6)
    torch.testing.assert_close(full(x), x[None] * full.scales[:, None, :])
    subset = RandomProjections(6, 3, 2, kind="diagonal", seed=1)
    assert subset(x).shape == (3, 4, 2)
    torch.testing.assert_close(subset(x), torch.matmul(x[None], subset.dense().transpose(1, 2)))
    assert (torch.count_nonzero(subset.dense(), dim=2) == 1).all()


def test_loss_is_lower_when_projected_partitions_agree_with_targets() -> None:
    centers = torch.eye(4, 8, dtype=torch.float64)
    z = centers.repeat(3, 1) + 0.01 * torch.randn(12, 8, dtype=torch.float64)
    q = torch.eye(4, dtype=torch.float64).repeat(3, 1)
    projections = RandomProjections(8, 5, 8, seed=0).double()
    loss_fn = ConsensusLoss(0.1)
    agree = loss_fn(z, z, centers, q, q, projections)
    disagree = loss_fn(z, z, centers, q.roll(1, dims=1), q.roll(1, dims=1), projections)
    assert agree < disagree


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_projections": 0}, "n_projections"),
        ({"out_dim": 0}, "out_dim"),
        ({"in_dim": 0}, "in_dim"),
        ({"kind": "sparse"}, "kind"),
        ({"kind": "diagonal", "out_dim": 9}, "out_dim must be <= in_dim"),
    ],
)
def test_invalid_projection_arguments_raise_config_error(kwargs: dict, name: str) -> None:
    args = {"in_dim": 8, "n_projections": 2, "out_dim": 4, **kwargs}
    with pytest.raises(ConfigError, match=name):
        RandomProjections(**args)


@pytest.mark.parametrize("temperature", [0.0, -0.1, float("nan")])
def test_invalid_temperature_raises_config_error(temperature: float) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        ConsensusLoss(temperature)


def test_bad_shapes_raise_data_error() -> None:
    z1, z2, centers, q1, q2 = case(4, 6, 3, seed=4)
    projections = RandomProjections(6, 2, 3, seed=0).double()
    loss_fn = ConsensusLoss()
    with pytest.raises(DataError, match="prototypes"):
        loss_fn(z1, z2, centers[:, :5], q1, q2, projections)
    with pytest.raises(DataError, match="targets"):
        loss_fn(z1, z2, centers, q1[:, :2], q2[:, :2], projections)
    with pytest.raises(DataError, match="RandomProjections expects"):
        projections(torch.randn(4, 5, dtype=torch.float64))
