"""Quick checks of the benchmark scripts' own logic (they are not run here in full)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402
import budget  # noqa: E402
import gpu_cifar10  # noqa: E402
import quality  # noqa: E402
import scaling  # noqa: E402
import scan_agreement  # noqa: E402
import scan_neighbours  # noqa: E402
import throughput  # noqa: E402


def test_replace_section_keeps_the_rest_and_appends_when_missing() -> None:
    text = "# B\n\nintro\n<!-- t:begin -->\nold\n<!-- t:end -->\nafter\n"
    out = _common.replace_section(text, "t", "new\n", "T")
    assert out == "# B\n\nintro\n<!-- t:begin -->\nnew\n<!-- t:end -->\nafter\n"
    added = _common.replace_section("# B\n", "u", "rows", "Heading")
    assert added == "# B\n\n## Heading\n\n<!-- u:begin -->\nrows\n<!-- u:end -->\n"


def test_fitted_exponent_recovers_the_power() -> None:
    ns = [1000, 3000, 10000, 30000]
    assert scaling.fitted_exponent(ns, [2e-3 * n for n in ns]) == pytest.approx(1.0)
    assert scaling.fitted_exponent(ns, [1e-6 * n**2 for n in ns]) == pytest.approx(2.0)


def test_queue_measurement_runs_the_queued_step_and_reports_it() -> None:
    threads = torch.get_num_threads()
    try:
        rows = [scaling.one_queue(length, k=20) for length in (0, 512)]
    finally:
        torch.set_num_threads(threads)
    assert rows[0]["queue_buffer_mib"] == 0.0 and "alone" in rows[0]["what"]
    assert rows[1]["queue_buffer_mib"] == 2 * 512 * scaling.QUEUE_DIM * 4 / 2**20
    assert "512 queued" in rows[1]["what"]
    assert all(r["seconds"] > 0 for r in rows)
    meta = {"date": "d", "machine": "m", "torch": "t", "load_average": [1.0, 1.0, 1.0]}
    text = scaling.queue_markdown({"queue_meta": meta, "queue_command": "c", "queue": rows})
    assert "| 512 | 20 | 256 |" in text and "load average 1.0" in text


def _round(name: str, rate: float, phases: tuple[float, ...]) -> dict:
    return {
        "pipeline": name,
        "images_per_s": rate,
        "phases": dict(zip(throughput.PHASES, phases, strict=True)),
        "synced_phases": True,
    }


def test_summary_ratio_is_the_median_of_per_round_ratios() -> None:
    rounds = [
        _round("ours", 30.0, (1, 1, 1, 1)),
        _round("reference", 10.0, (2, 0, 1, 1)),
        _round("ours", 20.0, (1, 1, 1, 1)),
        _round("reference", 20.0, (2, 0, 1, 1)),
        _round("ours", 50.0, (1, 1, 1, 1)),
        _round("reference", 25.0, (2, 0, 1, 1)),
    ]
    s = throughput.summarise(rounds, ["ours", "reference"])
    assert s["ours"]["ratio_rounds"] == [3.0, 1.0, 2.0]
    assert s["ours"]["ratio_to_reference"] == 2.0
    assert s["ours"]["images_per_s"] == 30.0
    assert s["reference"]["shares"]["load"] == pytest.approx(0.5)
    assert s["ours"]["step_seconds"] == 4


def test_reference_views_are_normalised_random_crops() -> None:
    images = torch.randint(0, 256, (4, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    images = images.to(torch.uint8)
    dataset = throughput.TwoViewDataset(
        images, throughput.ReferenceTransform(32, [0.5] * 3, [0.25] * 3)
    )
    torch.manual_seed(0)
    v1, v2, index = dataset[2]
    assert v1.shape == v2.shape == (3, 32, 32) and index == 2
    assert not torch.equal(v1, v2)  # two independent draws
    # values are (x - 0.5) / 0.25 for x in [0, 1]
    assert v1.min() >= -2.0 - 1e-6 and v1.max() <= 2.0 + 1e-6


@pytest.mark.slow
def test_gpu_script_tiny_run_reports_every_figure(tmp_path: Path) -> None:
    """The whole GPU command on the CPU (TINY=1), from the data step to the JSON."""
    script = REPO / "benchmarks" / "gpu_cifar10.sh"
    env = dict(os.environ, GPU_DATA=str(tmp_path / "data"), OUT=str(tmp_path / "out"), TINY="1")
    run = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode != 0 and "--prepare" in run.stdout  # no data yet: says how
    prep = subprocess.run(
        ["bash", str(script), "--prepare"], env=env, capture_output=True, text=True, timeout=300
    )
    assert prep.returncode == 0, prep.stderr
    assert (tmp_path / "data" / gpu_cifar10.CIFAR_TEST).stat().st_size == 10000 * 3073
    run = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((tmp_path / "out" / gpu_cifar10.RESULT).read_text())
    assert summary["complete"] and summary["tiny"] and summary["data"]["images"] == 256
    t = summary["throughput"]
    for name in ("ours", "reference"):
        assert t[name]["images_per_s"] > 0 and t[name]["peak_gpu_mib"] is None  # CPU
        assert len(t[name]["images_per_s_rounds"]) == summary["settings"]["rounds"]
    assert min(t["ratio_rounds"]) <= t["ratio"] <= max(t["ratio_rounds"])
    r = summary["training"]
    assert r["peak_gpu_mib"] is None and not r["stopped_by_budget"]
    assert [row["epoch"] for row in r["curve"]] == list(range(1, r["epochs"] + 1))
    times = [row["elapsed_s"] for row in r["curve"]]
    assert times == sorted(times) and 0 < times[-1] <= r["seconds"]
    for row in r["curve"]:
        assert 0 <= row["acc"] <= 1 and 0 <= row["nmi"] <= 1
    # the curve is read from the training log; its last point is the final read-out
    assert r["curve"][-1]["acc"] == pytest.approx(r["final"]["acc"], abs=1e-3)
    assert r["curve"][-1]["nmi"] == pytest.approx(r["final"]["nmi"], abs=1e-3)
    log = (tmp_path / "out" / "gpu_cifar10.log").read_text()
    assert "ours / reference" in run.stdout and "ours / reference" in log


def test_gpu_script_refuses_a_missing_gpu_and_altered_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match=r"no CUDA GPU.*TINY=1"):
        gpu_cifar10.main(["--data", str(tmp_path), "--out", str(tmp_path / "out")])
    batch = tmp_path / gpu_cifar10.CIFAR_TEST
    batch.parent.mkdir(parents=True)
    batch.write_bytes(bytes(3073))
    (tmp_path / gpu_cifar10.MANIFEST).write_text(
        json.dumps({str(gpu_cifar10.CIFAR_TEST): "0" * 64})
    )
    with pytest.raises(SystemExit, match=r"sha256.*--prepare"):
        gpu_cifar10.load_images(tmp_path, 10)


def test_gpu_epochs_fill_the_budget_at_the_measured_speed() -> None:
    # 100 s at 1000 images/s is 10 passes over 10,000 images; FILL of them are planned
    assert gpu_cifar10.plan_epochs(100, 1000, 10000, cap=1000) == int(gpu_cifar10.FILL * 10)
    assert gpu_cifar10.plan_epochs(1000, 1e6, 10000, cap=50) == 50
    assert gpu_cifar10.plan_epochs(1, 1, 10000, cap=50) == 1


def test_quality_table_shows_each_runs_threads() -> None:
    def row(seed: int, acc: float, **extra: int) -> dict:
        return {"method": "cc", "dataset": "usps", "seed": seed, "acc": acc, "nmi": acc,
                "ari": acc, "seconds": 10.0 * (seed + 1), "peak_rss_mib": 500.0,
                "command": f"contraclust fit usps --method cc --seed {seed}", **extra}  # fmt: skip

    saved = {"meta": {"threads": 2, "date": "d", "machine": "m"},
             "runs": [row(0, 0.5), row(1, 0.7, threads=1)]}  # fmt: skip
    rows = quality.with_threads(saved)
    assert [r["threads"] for r in rows] == [2, 1]  # older rows take the file's threads
    (entry,) = quality.summarise(rows)
    assert entry["acc"] == pytest.approx(0.6) and entry["acc_std"] == pytest.approx(0.1)
    assert entry["threads"] == "1/2" and entry["command"].endswith("--seed S")
    table = quality.markdown([entry], saved["meta"])
    assert "| usps | cc | 2 | 0.600 ± 0.100 |" in table and "| 15 | 1/2 | 500 |" in table


def test_budget_table_shows_the_plan_the_estimate_and_the_run() -> None:
    meta = {"date": "d", "machine": "m", "torch": "t", "threads": 1}
    row = {"set": "coil20", "n": 1440, "shape": "1x128x128", "planning_s": 4.0}
    row |= {"plan": "plan: x", "estimate_s": 290.0, "load_before": 3.0}
    planned_only = budget.markdown({"meta": meta, "command": "c", "rows": [row]})
    assert "| 1440 x 1x128x128 | 4.0 | `plan: x` | 290.0 | not run | 3.0 / - | - |" in planned_only
    row |= {"run_s": 250.0, "load_after": 2.5, "acc": 0.5}
    trained = budget.markdown({"meta": meta, "command": "c", "rows": [row]})
    assert "| 290.0 | 250.0 | 3.0 / 2.5 | 0.5 |" in trained


def test_neighbour_purity_counts_the_neighbours_of_the_same_class() -> None:
    labels = np.array([0, 0, 1, 1])
    table = np.array([[1, 2], [0, 3], [3, 2], [2, 1]])  # 1, 1, 2 and 1 of 2 right
    assert scan_neighbours.purity(labels, table) == pytest.approx(5 / 8)


def test_scan_neighbours_reads_the_pretext_the_run_mined_in(tmp_path: Path) -> None:
    row = scan_neighbours.measure("digits", 0, 1.0, tmp_path)
    for key in ("mined", "projection_5", "backbone_20", "kmeans_projection", "kmeans_backbone"):
        assert 0.0 <= row[key] <= 1.0, key
    assert row["mined"] > 0.5  # one epoch already puts most neighbours in their class
    # The backbone is frozen after the pretext and the head barely moves, so mining
    # again in the projection finds about the table the run used.
    assert row["projection_20"] == pytest.approx(row["mined"], abs=0.02)
    table = scan_neighbours.table([row], {"date": "d", "machine": "m", "torch": "t",
                                          "threads": 1, "load_average": [1.0]})  # fmt: skip
    assert f"| digits | 0 | 1 | {row['mined']:.3f} |" in table


def test_size_entropy_is_highest_for_even_clusters() -> None:
    assert scan_agreement.size_entropy(np.array([0, 1, 2, 3]), 4) == pytest.approx(np.log(4))
    assert scan_agreement.size_entropy(np.array([0, 0, 0, 0]), 4) == pytest.approx(0.0)
    uneven = scan_agreement.size_entropy(np.array([0, 0, 0, 1]), 4)
    assert 0.0 < uneven < np.log(2)


def test_scan_agreement_scores_the_classes_and_the_run_on_its_own_table(tmp_path: Path) -> None:
    row = scan_agreement.measure("digits", 0, tmp_path, epochs=2)
    assert 0.5 < row["agree_classes"] <= 1.0  # the pretext already links most of a class
    assert 0.0 <= row["agree_scan"] <= 1.0
    assert row["entropy_classes"] == pytest.approx(np.log(10), abs=1e-3)  # digits is even
    assert 0.0 <= row["entropy_scan"] <= row["entropy_max"] == pytest.approx(np.log(10), abs=1e-4)
    assert row["n_neighbours"] == 20
    meta = {"date": "d", "machine": "m", "torch": "t", "threads": 1, "load_average": [1.0]}
    text = scan_agreement.table([row], meta)
    cells = f"| {row['acc']:.3f} | {row['nmi']:.3f} | {row['agree_classes']:.4f} / "
    assert f"| digits | 0 {cells}" in text


def test_save_row_replaces_the_same_key_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    _common.save_row(path, {"set": "a", "seed": 0, "acc": 0.1}, ("set", "seed"))
    _common.save_row(path, {"set": "b", "seed": 0, "acc": 0.2}, ("set", "seed"))
    saved = _common.save_row(path, {"set": "a", "seed": 0, "acc": 0.3}, ("set", "seed"))
    assert saved == _common.read_rows(path)
    assert sorted((r["set"], r["acc"]) for r in saved["rows"]) == [("a", 0.3), ("b", 0.2)]
    assert "date" in saved["meta"]
