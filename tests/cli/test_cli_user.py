"""What a new user meets on the command line: no silent wrong answer, no lost work."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from contraclust.cli import build_parser, main
from contraclust.config import DEFAULT_BATCH, PRESET_DIR, available_presets, build_config
from contraclust.errors import ContraclustWarning
from contraclust.training import loop

TINY = ["--epochs", "1", "--batch-size", "256", "--device", "cpu", "--quiet"]


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.extend(_parsers(child))
    return found


def test_presets_ship_in_the_package_and_name_their_data(capsys) -> None:
    import contraclust

    assert PRESET_DIR.parent == Path(contraclust.__file__).parent
    assert "deca/digits" in available_presets() and "cc/digits" in available_presets()
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "deca/usps" in out and "for usps" in out


def test_no_parser_accepts_abbreviations() -> None:
    for parser in _parsers(build_parser()):
        assert parser.allow_abbrev is False, parser.prog


def test_abbreviated_flag_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--dat", "digits", *TINY])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --dat" in capsys.readouterr().err


def test_data_flag_is_the_positional_spelled_out() -> None:
    parser = build_parser()
    by_flag = parser.parse_args(["fit", "--data", "usps"])
    by_position = parser.parse_args(["fit", "usps"])
    from contraclust.cli import build_config as cli_config

    assert cli_config(by_flag).data.name == cli_config(by_position).data.name == "usps"
    with pytest.raises(Exception, match="two data sets given"):
        cli_config(parser.parse_args(["fit", "digits", "--data", "usps"]))


def test_every_option_shows_a_default_and_help() -> None:
    for parser in _parsers(build_parser()):
        for action in parser._actions:
            if not action.option_strings or action.dest in ("help", "version"):
                continue
            text = parser._get_formatter()._get_help_string(action)
            assert action.help, (parser.prog, action.dest)
            assert "default" in text, (parser.prog, action.dest, text)


def test_epochs_zero_is_refused_and_creates_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "deep" / "run"
    assert main(["fit", "digits", "--epochs", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "epochs must be >= 1" in err[0]
    assert not (tmp_path / "deep").exists()


def test_refused_data_leaves_no_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs" / "x"
    assert main(["fit", str(tmp_path / "missing.npy"), "--out", str(out), *TINY]) == 2
    assert not (tmp_path / "runs").exists()
    assert "contraclust 0." not in capsys.readouterr().err  # no opening line before the checks


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["fit", "digitz"], "did you mean 'digits'"),
        (["fit", "digits", "--method", "dcea"], "did you mean 'deca'"),
        (["fit", "digits", "--preset", "deca/digitz"], "did you mean 'deca/digits'"),
    ],
)
def test_unknown_names_get_a_suggestion(argv: list[str], hint: str, capsys) -> None:
    assert main([*argv, *TINY]) == 2
    assert hint in capsys.readouterr().err


def test_cli_errors_name_flags(capsys) -> None:
    assert main(["fit", "digits", "--clusters", "5000", *TINY]) == 2
    err = capsys.readouterr().err
    assert "use --clusters 1797 or fewer" in err and "n_clusters" not in err


def test_preset_for_other_data_warns_and_keeps_image_size() -> None:
    with pytest.warns(ContraclustWarning, match="made for cifar10, not digits"):
        cfg = build_config("deca/cifar10", {"data": "digits"})
    assert cfg.data.image_size is None  # not the preset's 224
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContraclustWarning)
        same = build_config("deca/cifar10", {"data": "cifar10"})
    assert same.data.image_size == 224


def test_degenerate_result_is_said_on_the_terminal(tmp_path: Path, monkeypatch, capsys) -> None:
    def always(prediction, n_clusters):
        return "degenerate result: only 1 of 10 clusters hold samples. Train longer (epochs=N)"

    monkeypatch.setattr(loop, "degenerate_result", always)
    assert main(["fit", "digits", "--method", "kmeans", "--out", str(tmp_path / "r"), "-q"]) == 0
    captured = capsys.readouterr()
    assert "contraclust: warning: degenerate result" in captured.err
    assert "(--epochs N)" in captured.err  # the library's words said as flags
    assert captured.out.strip().endswith("DEGENERATE (see the warning above)")


def test_degenerate_result_rules() -> None:
    from contraclust.training.predict import Prediction

    def prediction(labels: list[int], confidence: float) -> Prediction:
        n = len(labels)
        return Prediction(np.array(labels), np.full(n, confidence), np.zeros((n, 4)))

    assert loop.degenerate_result(prediction([0, 0, 0, 1], 0.9), 4) is None  # 2 of 4 in use
    assert "only 1 of 4" in loop.degenerate_result(prediction([0, 0, 0, 0], 0.9), 4)
    assert "close to 1/K" in loop.degenerate_result(prediction([0, 1, 2, 3], 0.27), 4)
    assert loop.degenerate_result(prediction([0, 1, 2, 3], 0.5), 4) is None


def test_run_folder_without_checkpoint_is_reused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("method: cc\n")
    (out / "train.log").write_text("killed\n")
    (out / "mine.txt").write_text("keep")
    assert main(["fit", "digits", "--method", "kmeans", "--out", str(out)]) == 0
    assert "stopped before its first checkpoint" in capsys.readouterr().err
    assert (out / "model.ckpt").is_file() and (out / "mine.txt").read_text() == "keep"


def test_resume_of_run_killed_before_checkpoint_starts_anew(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("method: kmeans\n")
    (out / ".lock").write_text("nohost-that-exists:999999")  # another host: kept
    assert main(["fit", "digits", "-m", "kmeans", "--out", str(out), "--resume"]) == 2
    assert "in use by process" in capsys.readouterr().err
    (out / ".lock").write_text(f"{os.uname().nodename}:999999")  # a dead process here
    assert main(["fit", "digits", "-m", "kmeans", "--out", str(out), "--resume"]) == 0
    assert "starting a new run" in capsys.readouterr().err
    assert not (out / ".lock").exists()


def test_resume_prints_the_runs_own_data(tmp_path: Path, capsys) -> None:
    vectors = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    out = tmp_path / "run"
    argv = ["fit", str(tmp_path / "v.npy"), "-k", "3", "--out", str(out), "-b", "20"]
    assert main([*argv, "--epochs", "1", "--device", "cpu", "-q"]) == 0
    capsys.readouterr()
    assert main(["fit", "--out", str(out), "--resume", "--epochs", "2", "-q"]) == 0
    captured = capsys.readouterr()
    assert "on v.npy" in captured.out and "digits" not in captured.out + captured.err


def test_report_from_another_folder_keeps_its_images(tmp_path: Path, monkeypatch) -> None:
    from PIL import Image

    work = tmp_path / "work"
    (work / "photos").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(
            work / "photos" / f"{i}.png"
        )
    monkeypatch.chdir(work)
    assert main(["fit", "photos", "-m", "kmeans", "-k", "3", "--out", "run", "-q"]) == 0
    saved = yaml.safe_load((work / "run" / "config.yaml").read_text())
    assert saved["data"]["name"] == str((work / "photos").resolve())
    first = (work / "run" / "report.html").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["report", str(work / "run")]) == 0
    rebuilt = (work / "run" / "report.html").read_text()
    assert rebuilt.count("<img") == first.count("<img") > 3
    # With the data gone, the report with images stays and the new one goes beside it.
    (work / "photos").rename(work / "moved")
    assert main(["report", str(work / "run")]) == 0
    assert (work / "run" / "report.html").read_text() == rebuilt
    assert (work / "run" / "report-without-data.html").is_file()


def test_predict_writes_csv_to_stdout(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["fit", "digits", "-m", "kmeans", "--out", str(out), "-q", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["predict", str(out), "digits", "-q"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("index,cluster,confidence") and len(lines) == 1798
    assert "assigned -> stdout" in captured.err
    assert main(["predict", str(out), "digits", "-q", "--out", "-"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1798


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # Output well beyond a pipe's buffer, so that the writer meets the closed pipe.
    vectors = np.random.default_rng(0).normal(size=(20000, 3)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    out = tmp_path / "run"
    fit_argv = ["fit", str(tmp_path / "v.npy"), "-m", "kmeans", "-k", "3", "--out", str(out)]
    assert main([*fit_argv, "-q", "--no-report"]) == 0
    cli = f"'{sys.executable}' -m contraclust.cli"
    for command in (f"predict '{out}' '{tmp_path / 'v.npy'}' -q", f"evaluate '{out}' --json"):
        shell = f"set -o pipefail; {cli} {command} | head -2"
        done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("\n") == 2
        assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_config_records_the_batch_size(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["fit", "digits", "--epochs", "1", "--device", "cpu", "-q", "--no-report"]
    assert main([*argv, "--out", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["batch_size"] == DEFAULT_BATCH


def test_report_shows_its_progress_on_a_terminal(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "run"
    assert main(["fit", "digits", "-m", "kmeans", "--out", str(out), "-q", "--no-report"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["report", str(out)]) == 0
    err = capsys.readouterr().err
    for stage in ("loading the data", "embedding", "drawing the map and figures"):
        assert stage in err, err
    assert "3/3" in err
