"""The README's Python example runs as written (with one epoch instead of the preset's)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path: Path, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1
    code = blocks[0]
    fast = code.replace("random_state=0)", "random_state=0, epochs=1, device='cpu')")
    assert fast != code, "the example's Clusterer(...) call changed: update this test"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(fast, str(README), "exec"), namespace)
    assert namespace["labels"].shape == (1797,)
    assert namespace["emb"].shape[0] == 1797
    assert (tmp_path / "digits.ckpt").is_file()
