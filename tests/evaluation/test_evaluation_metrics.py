from __future__ import annotations

import itertools
import random
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    normalized_mutual_info_score,
)

from contraclust.errors import ConfigError, DataError
from contraclust.evaluation import (
    cluster_accuracy,
    contingency,
    evaluate,
    hungarian_mapping,
    many_to_one_accuracy,
)
from contraclust.evaluation.metrics import METRIC_KEYS


def brute_force_accuracy(y_true: list[int], y_pred: list[int]) -> float:
    """Best one-to-one matching by trying every injective map (small label sets only)."""
    classes = sorted(set(y_true))
    clusters = sorted(set(y_pred))
    pairs = Counter(zip(y_true, y_pred, strict=True))
    best = 0
    if len(clusters) <= len(classes):
        for image in itertools.permutations(classes, len(clusters)):
            best = max(best, sum(pairs[(c, k)] for k, c in zip(clusters, image, strict=True)))
    else:
        for image in itertools.permutations(clusters, len(classes)):
            best = max(best, sum(pairs[(c, k)] for c, k in zip(classes, image, strict=True)))
    return best / len(y_true)


def brute_force_many_to_one(y_true: list[int], y_pred: list[int]) -> float:
    correct = 0
    for cluster in set(y_pred):
        members = [t for t, p in zip(y_true, y_pred, strict=True) if p == cluster]
        correct += Counter(members).most_common(1)[0][1]
    return correct / len(y_true)


def random_case(
    rng: np.random.Generator, n: int, n_classes: int, n_clusters: int
) -> tuple[list[int], list[int]]:
    # Arbitrary, non-contiguous label values on both sides.
    class_ids = rng.choice(np.arange(-50, 50), size=n_classes, replace=False)
    cluster_ids = rng.choice(np.arange(0, 1000), size=n_clusters, replace=False)
    y_true = rng.choice(class_ids, size=n).tolist()
    y_pred = rng.choice(cluster_ids, size=n).tolist()
    return y_true, y_pred


SHAPES = [(1, 1), (2, 2), (3, 5), (5, 3), (4, 4), (2, 6), (6, 2), (5, 5), (6, 4)]


@pytest.mark.parametrize(("n_classes", "n_clusters"), SHAPES)
def test_accuracies_match_brute_force(n_classes: int, n_clusters: int) -> None:
    rng = np.random.default_rng(n_classes * 10 + n_clusters)
    for n in (1, 7, 40):
        y_true, y_pred = random_case(rng, n, n_classes, n_clusters)
        assert cluster_accuracy(y_true, y_pred) == pytest.approx(
            brute_force_accuracy(y_true, y_pred)
        )
        assert many_to_one_accuracy(y_true, y_pred) == pytest.approx(
            brute_force_many_to_one(y_true, y_pred)
        )


@pytest.mark.parametrize(("n_classes", "n_clusters"), SHAPES)
def test_evaluate_matches_sklearn_and_brute_force(n_classes: int, n_clusters: int) -> None:
    rng = np.random.default_rng(100 + n_classes * 10 + n_clusters)
    y_true, y_pred = random_case(rng, 60, n_classes, n_clusters)
    result = evaluate(y_true, y_pred)
    assert set(result) == {
        "acc",
        "acc_many_to_one",
        "nmi",
        "ari",
        "ami",
        "n_clusters",
        "n_classes",
    }
    assert result["acc"] == pytest.approx(brute_force_accuracy(y_true, y_pred))
    assert result["acc_many_to_one"] == pytest.approx(brute_force_many_to_one(y_true, y_pred))
    assert result["nmi"] == pytest.approx(
        normalized_mutual_info_score(y_true, y_pred, average_method="arithmetic")
    )
    assert result["ari"] == pytest.approx(adjusted_rand_score(y_true, y_pred))
    assert result["ami"] == pytest.approx(adjusted_mutual_info_score(y_true, y_pred))
    assert result["n_classes"] == len(set(y_true))
    assert result["n_clusters"] == len(set(y_pred))
    assert all(isinstance(result[k], float) for k in ("acc", "acc_many_to_one", "nmi"))
    assert all(isinstance(result[k], int) for k in ("n_clusters", "n_classes"))


def test_hungarian_mapping_with_arbitrary_ids_and_more_clusters_than_classes() -> None:
    y_true = [0, 0, 0, 1, 1, 1, 1, 0]
    y_pred = [17, 17, 17, 3, 3, 3, 42, 42]
    assert hungarian_mapping(y_true, y_pred) == {17: 0, 3: 1}
    # Cluster 42 is unmatched: its two samples are errors.
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(6 / 8)
    assert many_to_one_accuracy(y_true, y_pred) == pytest.approx(7 / 8)


def test_hungarian_mapping_with_fewer_clusters_than_classes() -> None:
    y_true = [5, 5, 6, 6, 7, 7, 7]
    y_pred = [1, 1, 1, 1, 2, 2, 2]
    mapping = hungarian_mapping(y_true, y_pred)
    assert mapping[2] == 7 and mapping[1] in (5, 6)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 7)


def test_contingency_orientation_and_labels() -> None:
    matrix, classes, clusters = contingency([2, 2, 9, 9, 9], [-1, 4, 4, 4, -1])
    np.testing.assert_array_equal(classes, [2, 9])
    np.testing.assert_array_equal(clusters, [-1, 4])
    np.testing.assert_array_equal(matrix, [[1, 1], [1, 2]])


def test_accepts_numpy_integral_floats_and_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    y_true = [0, 1, 1, 2]
    y_pred = [4, 5, 5, 4]
    expected = evaluate(y_true, y_pred)
    assert evaluate(np.array(y_true), np.array(y_pred, dtype=np.int32)) == expected
    assert evaluate(np.array(y_true, dtype=float), y_pred) == expected
    assert evaluate(torch.tensor(y_true), torch.tensor(y_pred)) == expected


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([], [], "empty"),
        ([0, 1], [0], "same length"),
        ([[0, 1]], [[0, 1]], "1-D"),
        ([0.0, float("nan")], [0, 1], "NaN"),
        ([0, 1], [0.0, float("inf")], "infinite"),
        ([0.5, 1.0], [0, 1], "integer"),
        (["a", "b"], [0, 1], "integer"),
    ],
)
def test_invalid_inputs_raise_data_error(y_true: object, y_pred: object, message: str) -> None:
    for fn in (evaluate, cluster_accuracy, many_to_one_accuracy, hungarian_mapping, contingency):
        with pytest.raises(DataError, match=message):
            fn(y_true, y_pred)


def test_evaluation_imports_no_training_code() -> None:
    code = (
        "import sys, contraclust.evaluation;"
        "bad = [m for m in sys.modules if m.startswith(('contraclust.training',"
        " 'contraclust.methods', 'lightning'))];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


labels = st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=40)


@st.composite
def label_pairs(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    y_true = draw(labels)
    y_pred = draw(
        st.lists(st.integers(min_value=-3, max_value=7), min_size=len(y_true), max_size=len(y_true))
    )
    return y_true, y_pred


@settings(max_examples=60, deadline=None)
@given(label_pairs())
def test_accuracy_bounds_and_ordering(pair: tuple[list[int], list[int]]) -> None:
    y_true, y_pred = pair
    acc = cluster_accuracy(y_true, y_pred)
    many = many_to_one_accuracy(y_true, y_pred)
    assert 0.0 <= acc <= 1.0
    assert 0.0 <= many <= 1.0
    assert many >= acc - 1e-12
    # The best matching covers the largest cell of the contingency matrix, never empty.
    assert acc > 0.0


@settings(max_examples=60, deadline=None)
@given(label_pairs(), st.randoms(use_true_random=False))
def test_accuracy_invariant_to_relabelling_clusters(
    pair: tuple[list[int], list[int]], rnd: random.Random
) -> None:
    y_true, y_pred = pair
    ids = sorted(set(y_pred))
    new_ids = list(range(100, 100 + 3 * len(ids), 3))
    rnd.shuffle(new_ids)
    relabel = dict(zip(ids, new_ids, strict=True))
    renamed = [relabel[p] for p in y_pred]
    assert cluster_accuracy(y_true, renamed) == pytest.approx(cluster_accuracy(y_true, y_pred))
    assert many_to_one_accuracy(y_true, renamed) == pytest.approx(
        many_to_one_accuracy(y_true, y_pred)
    )
    mapping = hungarian_mapping(y_true, y_pred)
    matched = sum(1 for t, p in zip(y_true, y_pred, strict=True) if mapping.get(p) == t)
    assert matched / len(y_true) == pytest.approx(cluster_accuracy(y_true, y_pred))


@settings(max_examples=60, deadline=None)
@given(labels, st.permutations(list(range(6))), st.integers(min_value=-10, max_value=10))
def test_permuted_labels_score_perfectly(y_true: list[int], perm: list[int], shift: int) -> None:
    y_pred = [perm[t] * 7 + shift for t in y_true]
    result = evaluate(y_true, y_pred)
    assert result["acc"] == 1.0
    assert result["acc_many_to_one"] == 1.0
    assert result["nmi"] == pytest.approx(1.0)
    assert result["ari"] == pytest.approx(1.0)
    assert hungarian_mapping(y_true, y_pred) == {perm[t] * 7 + shift: t for t in set(y_true)}


def test_evaluate_subset_of_keys_equals_the_full_result() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 7, 500)
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 9, 500))
    full = evaluate(y, p)
    some = evaluate(y, p, keys=("nmi", "acc"))
    assert list(some) == ["nmi", "acc"]
    assert some == {"nmi": full["nmi"], "acc": full["acc"]}
    assert list(full) == list(METRIC_KEYS)


def test_evaluate_refuses_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown metric"):
        evaluate([0, 1], [1, 0], keys=("acc", "f1"))
