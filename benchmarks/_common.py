"""Helpers shared by the benchmark scripts: machine description, marked report
sections in BENCHMARKS.md and peak memory. Not part of the library."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
REPORT = REPO / "BENCHMARKS.md"


def machine_meta() -> dict[str, Any]:
    """Date, machine, thread count and load: what a reader needs to judge a timing."""
    import torch

    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if torch.cuda.is_available():
        meta["gpu"] = torch.cuda.get_device_name(0)
    return meta


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    """Resident memory now, from /proc (Linux)."""
    with open("/proc/self/statm") as stream:
        pages = int(stream.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` next to the other results (atomic replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)


def read_rows(path: Path) -> dict[str, Any]:
    """The saved results at ``path`` (``{"rows": []}`` when there are none yet)."""
    return json.loads(path.read_text()) if path.exists() else {"rows": []}


def save_row(path: Path, row: dict[str, Any], key: tuple[str, ...]) -> dict[str, Any]:
    """Add ``row`` to the results at ``path``, replacing a row with the same values of
    the ``key`` fields, and stamp the file with this machine; returns what was saved.
    The file is read just before the write, so runs side by side keep their rows."""
    saved = read_rows(path)
    same = tuple(row[k] for k in key)
    rows = [r for r in saved["rows"] if tuple(r[k] for k in key) != same] + [row]
    saved = {"meta": machine_meta(), "rows": rows}
    write_json(path, saved)
    return saved


def replace_section(text: str, name: str, block: str, heading: str) -> str:
    """``text`` with the lines between ``<!-- name:begin -->`` and ``<!-- name:end -->``
    replaced by ``block``; a new section ``heading`` is appended when the markers are
    missing. Everything outside the markers is kept as it was."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    body = f"{begin}\n{block.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + body + rest.split(end, 1)[1]
    return text.rstrip() + f"\n\n## {heading}\n\n{body}\n"


def write_section(name: str, block: str, heading: str) -> None:
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    REPORT.write_text(replace_section(text, name, block, heading))
