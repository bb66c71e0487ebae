"""Quick checks of the benchmark scripts' own logic (they are not run here in full)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402
import budget  # noqa: E402
import quality  # noqa: E402
import scaling  # noqa: E402
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


def test_gpu_script_parses_and_dry_runs(tmp_path: Path) -> None:
    script = REPO / "benchmarks" / "gpu_cifar10.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    env = dict(os.environ, DRY_RUN="1", TINY="1", OUT=str(tmp_path / "tiny"))
    proc = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "contraclust fit" in proc.stderr and "--device cpu --epochs 1" in proc.stderr
    assert not (tmp_path / "tiny").exists()  # a dry run writes nothing
    env = dict(os.environ, DRY_RUN="1", OUT=str(tmp_path / "gpu"))
    env.pop("CONTRACLUST_DATA", None)
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "CONTRACLUST_DATA" in proc.stderr
    env["CONTRACLUST_DATA"] = str(tmp_path)
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "--split all" in proc.stderr and "--device cuda" in proc.stderr
    assert not (tmp_path / "gpu").exists()


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
