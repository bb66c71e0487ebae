"""The ``contraclust`` command.

Verbs: ``fit``, ``predict``, ``evaluate``, ``report``, ``demo``, ``datasets``,
``methods``, ``presets``. Errors the user can fix print one line and exit with status 2
(``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from contraclust import __version__
from contraclust.config import KMEANS_SPACES, READOUTS
from contraclust.errors import (
    ConfigError,
    ContraclustError,
    ContraclustWarning,
    RunDirectoryError,
)

EXIT_USAGE = 2


# ---------------------------------------------------------------------- helpers
def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--param expects KEY=VALUE, got '{text}'")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"--param {key}: cannot parse value '{value}'") from None


def _clusters(text: str) -> int | str:
    """``--clusters``: an integer K, or ``auto`` to search it."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got '{text}'") from None


def build_config(args: argparse.Namespace):
    """Defaults < preset < flags < --set, through the library's one mapping."""
    from contraclust.config import FLAT_OPTIONS, build_config

    if args.data is not None and args.data_opt is not None and args.data != args.data_opt:
        raise ConfigError(
            f"two data sets given: '{args.data}' and --data '{args.data_opt}'; give one"
        )
    options = {name: getattr(args, name, None) for name in FLAT_OPTIONS}
    options["data"] = args.data if args.data is not None else args.data_opt
    options["skip_bad_images"] = True if args.skip_bad_images else None
    if args.param:
        options["params"] = dict(_parse_param(p) for p in args.param)
    return build_config(args.preset, options, args.set or ())


def _default_out(cfg: Any) -> Path:
    name = Path(cfg.data.name).name or "data"
    return Path("runs") / f"{cfg.method}-{name}"


def _format_metrics(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "no labels: no metrics"
    return "  ".join(f"{k.upper()} {metrics[k]:.4f}" for k in ("acc", "nmi", "ari"))


# ---------------------------------------------------------------------- verbs
def cmd_fit(args: argparse.Namespace) -> int:
    from contraclust.training import fit
    from contraclust.training.loop import (
        RESUME_SETTINGS,
        check_method_settings,
        keep_run_settings,
        launched_rank,
    )

    cfg = build_config(args)
    out = Path(args.out) if args.out else _default_out(cfg)
    if args.resume:
        given = {name for name in RESUME_SETTINGS if getattr(args, name) is not None}
        keep_run_settings(cfg, out, given)
    else:
        check_method_settings(cfg)  # a refused setting prints its one line only
    if args.download and launched_rank() == 0:
        from contraclust.data.download import ensure_dataset

        ensure_dataset(cfg.data.name, cfg.data.root, split=cfg.data.split, progress=not args.quiet)
    try:
        result = fit(
            cfg,
            run_dir=out,
            resume=args.resume,
            overwrite=args.overwrite,
            quiet=args.quiet,
            report=not args.no_report,
        )
    except KeyboardInterrupt as exc:
        # TrainingInterrupted says where it stopped and what it saved
        message = str(exc) or (
            f"interrupted; the last finished epoch is kept in {out / 'checkpoints'} "
            "(continue with --resume)"
        )
        print(f"contraclust: {message}", file=sys.stderr)
        return 130
    if result.run_dir is not None and launched_rank() == 0:
        ran = result.config
        chosen = f"K={ran.n_clusters} (chosen), " if result.k_search else ""
        flag = "  DEGENERATE (see the warning above)" if result.warnings else ""
        print(
            f"{ran.method} on {Path(ran.data.name).name}: {chosen}"
            f"{_format_metrics(result.metrics)}  ({result.seconds:.1f} s) -> {out}{flag}"
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    run = Path(args.run_dir)
    if args.data or args.split or args.corruption or args.severity is not None:
        return _evaluate_shift(args, run)
    from contraclust.training.rundir import METRICS_JSON

    path = run / METRICS_JSON
    if not path.is_file():
        raise RunDirectoryError(
            f"{run} holds no finished run ({path} is missing); train one with contraclust fit"
        )
    summary = json.loads(path.read_text())
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"run        {run}")
    print(f"method     {summary['method']}  (read-out: {summary.get('readout', 'head')})")
    print(f"data       {summary['dataset']}  ({summary['n_samples']} samples)")
    print(f"clusters   {summary['n_clusters']}  sizes {summary['cluster_sizes']}")
    metrics = summary.get("metrics")
    if metrics:
        for key in ("acc", "acc_many_to_one", "nmi", "ari", "ami"):
            print(f"{key:<10} {metrics[key]:.4f}")
    else:
        print("metrics    none: the data had no labels")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from contraclust.training.report import rebuild_report

    path, notes = rebuild_report(args.run_dir, device=args.device, progress=True)
    for warning in notes:
        print(f"contraclust: warning: {warning}", file=sys.stderr)
    print(f"report written to {path}")
    return 0


def _evaluate_shift(args: argparse.Namespace, run: Path) -> int:
    """Score a trained run on other data, another split, or a corrupted copy."""
    from contraclust.api import evaluate_shift

    result, out = evaluate_shift(
        run,
        data=args.data,
        split=args.split,
        corruption=args.corruption,
        severity=args.severity,
        seed=args.seed,
        data_root=args.data_root,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    severity, metrics = result["severity"], result["metrics"]
    what = f"{args.corruption}, severity {severity}" if args.corruption else "no corruption"
    trained = result["trained_on"]["data"]
    print(f"run        {run}  ({result['method']}, trained on {trained})")
    n = result["n_samples"]
    print(f"data       {result['data']}  split {result['split']}, {what}  ({n} samples)")
    print(f"clusters   {len(result['cluster_sizes'])}  sizes {result['cluster_sizes']}")
    if metrics:
        for key in ("acc", "acc_many_to_one", "nmi", "ari", "ami"):
            print(f"{key:<10} {metrics[key]:.4f}")
    else:
        print("metrics    none: the data have no labels (metrics need labels)")
    print(f"written    {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from contraclust.api import load
    from contraclust.evaluation import evaluate
    from contraclust.training.rundir import assignments_csv, write_assignments

    to_stdout = args.out in (None, "-")
    out = None if to_stdout else Path(args.out)
    if out is not None and out.exists() and not args.overwrite:
        raise RunDirectoryError(f"{out} exists; pass --overwrite to replace it")
    est = load(args.run_dir)
    est.device = args.device
    est.verbose = not args.quiet
    ds = est.prepare_input(args.input)
    pred = est._predict(ds)
    columns = (pred.labels, pred.confidence, ds.labels, ds.paths, ds.class_names)
    if out is None:
        sys.stdout.write(assignments_csv(*columns))
    else:
        write_assignments(out, *columns)
    line = f"{len(ds)} samples of {ds.name} assigned -> {out or 'stdout'}"
    if ds.labels is not None:
        line += f"  ({_format_metrics(evaluate(ds.labels, pred.labels))})"
    print(line, file=sys.stderr if out is None else sys.stdout)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from contraclust.config import build_config
    from contraclust.data import load_dataset
    from contraclust.training import fit

    out = Path(args.out) if args.out else Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    dataset = load_dataset("digits")
    rows = []
    # k-means, then what `contraclust fit digits` trains: the default recipe and budget
    for name, method in (("kmeans", "kmeans"), ("default", None)):
        epochs = None if method == "kmeans" else args.epochs
        options = {"method": method, "epochs": epochs, "random_state": args.seed}
        cfg = build_config(None, {**options, "device": args.device})
        result = fit(cfg, dataset, run_dir=out / name, quiet=args.quiet)
        rows.append((f"{name} ({cfg.method})" if name != cfg.method else name, result))
    print(f"\ndigits (1797 images, 10 classes), seed {args.seed}; runs in {out}")
    print(f"{'method':<16}{'ACC':>8}{'NMI':>8}{'ARI':>8}{'seconds':>10}")
    for name, result in rows:
        m = result.metrics
        assert m is not None
        print(f"{name:<16}{m['acc']:>8.4f}{m['nmi']:>8.4f}{m['ari']:>8.4f}{result.seconds:>10.1f}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    action = getattr(args, "datasets_command", None) or "list"
    if action == "download":
        return _datasets_download(args)
    if action == "verify":
        return _datasets_verify(args)
    return _datasets_list(args)


def _datasets_list(args: argparse.Namespace) -> int:
    from contraclust.data import list_datasets, resolve_data_root
    from contraclust.data.download import dataset_status, is_downloadable

    root, source = resolve_data_root(args.data_root)
    print(f"data root: {root} (from {source})")
    for info in list_datasets():
        status = dataset_status(info.name, args.data_root)
        where = "" if status == "built in" else f"{root / info.family}/"
        if status == "missing" and is_downloadable(info.name):
            where += f"  (contraclust datasets download {info.name})"
        print(f"  {info.name:<20} {status:<9} {where}".rstrip())
        print(f"  {'':<20} {info.description}")
    return 0


def _datasets_download(args: argparse.Namespace) -> int:
    from contraclust.data.download import download_dataset

    folder = download_dataset(
        args.name, args.data_root, base_url=args.mirror, progress=not args.quiet
    )
    print(f"{args.name}: ready in {folder}")
    return 0


def _datasets_verify(args: argparse.Namespace) -> int:
    from contraclust.data.download import verify_dataset

    rows = verify_dataset(args.name, args.data_root)
    for file, ok, detail in rows:
        print(f"  {'ok  ' if ok else 'FAIL'} {file}: {detail}")
    failed = sum(not ok for _, ok, _ in rows)
    print(f"{args.name}: " + (f"{failed} problem(s)" if failed else "verified"))
    return 1 if failed else 0


def cmd_methods(args: argparse.Namespace) -> int:
    from contraclust.methods import get_method, method_names

    for name in method_names():
        print(f"  {name:<10} {get_method(name).summary}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from contraclust.config import PRESET_DIR, available_presets, preset_dataset

    names = available_presets()
    if not names:
        raise ConfigError(f"no presets found in {PRESET_DIR}; the installation is incomplete")
    print(f"presets in {PRESET_DIR}:")
    for name in names:
        made_for = preset_dataset(name)
        print(
            f"  {name:<26} for {made_for or 'any data: the run with no --method and no --preset'}"
        )
    return 0


# ---------------------------------------------------------------------- parser
class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default: flags say ``off``, options whose
    default is decided later (a preset, the data) say so in their own help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._AppendAction)):
            return f"{text} (default: off)" if action.const is True else f"{text} (default: none)"
        if action.option_strings and action.default is not None:
            return f"{text} (default: %(default)s)"
        return text


def _add_parser(sub: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    return sub.add_parser(name, allow_abbrev=False, formatter_class=_HelpFormatter, **kwargs)


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    from contraclust.config import DEFAULT_EPOCHS, RunConfig

    d = RunConfig()
    p.add_argument(
        "data",
        nargs="?",
        default=None,
        help="dataset name, image folder or .npy/.npz/.csv/.parquet file (default: digits)",
    )
    p.add_argument(
        "--data",
        dest="data_opt",
        default=None,
        metavar="DATA",
        help="the same as the positional DATA, spelled out (default: digits)",
    )
    p.add_argument(
        "--method",
        "-m",
        default=None,
        help="clustering method, started from its own defaults unless a preset is given "
        "(default: the default recipe, presets/default.yaml: DECA with a k-means start at "
        "40%% of the run and cluster repair)",
    )
    p.add_argument(
        "--clusters",
        "-k",
        dest="n_clusters",
        type=_clusters,
        default=None,
        metavar="K|auto",
        help=f"number of clusters K, or 'auto' to choose it (default: {d.n_clusters}, "
        "or the preset's)",
    )
    p.add_argument(
        "--k-range",
        default=None,
        metavar="MIN:MAX",
        help="candidates of --clusters auto (default: 2:min(20, N/10))",
    )
    p.add_argument(
        "--epochs",
        "-e",
        type=int,
        default=None,
        help=f"training epochs, at least 1 (default: the preset's, or as many as --budget "
        f"allows, at most {DEFAULT_EPOCHS})",
    )
    p.add_argument(
        "--budget",
        default=None,
        metavar="DURATION",
        help="wall time to size the run to: 90s, 5m, 1h, 1h30m, none, or auto (5m on a "
        "CPU, 30m on a GPU); a few steps are timed first and one 'plan:' line gives the "
        "settings chosen and the expected time. Given or preset epochs are kept and only "
        "warned about (default: auto)",
    )
    p.add_argument(
        "--restarts",
        type=int,
        default=None,
        metavar="N",
        help="train N times (seeds S, S+1, ...) within the budget and keep the partition "
        "that agrees most with the others; their agreement is printed (default: 1)",
    )
    p.add_argument(
        "--self-label",
        dest="self_label_epochs",
        type=int,
        default=None,
        metavar="EPOCHS",
        help="epochs of self-labelling after training (SCAN's step 3; default: 0, or the preset's)",
    )
    p.add_argument(
        "--out", "-o", default=None, help="run directory (default: runs/<method>-<data>)"
    )
    p.add_argument(
        "--preset", default=None, help="preset name (see `presets`) or YAML file (default: none)"
    )
    p.add_argument(
        "--seed",
        dest="random_state",
        type=int,
        default=None,
        help=f"random seed; the same seed on CPU repeats a run (default: {d.train.seed})",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default=None,
        help="where to train; auto takes CUDA when present (default: auto)",
    )
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        help=f"processes (DDP) to train on (default: {d.train.devices})",
    )
    p.add_argument(
        "--num-nodes",
        type=int,
        default=None,
        metavar="N",
        help="machines of the run, each with --devices processes, started by torchrun, srun "
        f"or by hand with NODE_RANK, MASTER_ADDR and MASTER_PORT (default: {d.train.num_nodes})",
    )
    p.add_argument(
        "--precision",
        default=None,
        help="auto, 32, bf16-mixed or 16-mixed; auto is bf16 on CUDA, 32 on CPU (default: auto)",
    )
    p.add_argument(
        "--batch-size",
        "-b",
        type=int,
        default=None,
        help="global batch size (default: min(128, N), or the preset's)",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"learning rate (default: {d.optim.lr:g}, or the preset's)",
    )
    p.add_argument(
        "--optimizer",
        default=None,
        help=f"adam, adamw or sgd (default: {d.optim.name}, or the preset's)",
    )
    p.add_argument(
        "--backbone",
        default=None,
        help="auto, small_cnn, resnet18, resnet34, mlp ...; auto picks by the data's "
        "kind and size (default: auto)",
    )
    p.add_argument(
        "--augment",
        default=None,
        help="auto, grey, simclr, vector or none; auto picks by the data's kind (default: auto)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="resize images to this side (default: their own size, or the preset's)",
    )
    p.add_argument(
        "--label-column",
        default=None,
        metavar="NAME",
        help="column of labels in a .csv/.parquet table (default: 'label' when present)",
    )
    p.add_argument(
        "--features",
        default=None,
        metavar="BACKBONE",
        help="train on frozen features of torchvision:NAME, timm:NAME or a TorchScript file "
        "(computed once, cached in $CONTRACLUST_CACHE/features; default: none)",
    )
    p.add_argument(
        "--features-image-size",
        type=int,
        default=None,
        metavar="SIDE",
        help="side of the images given to --features (default: 224 for torchvision/timm, "
        "the images' own for TorchScript)",
    )
    p.add_argument(
        "--split",
        default=None,
        help="split of a named set: train, test or all (default: the set's, see `datasets`)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="download a named set first when it is missing (see `datasets download`)",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="folder of the standard datasets (default: $CONTRACLUST_DATA or ~/.cache/contraclust)",
    )
    p.add_argument(
        "--predict-with",
        choices=READOUTS,
        default=None,
        help="read-out: argmax of the cluster head, k-means (see --kmeans-space) or argmax "
        "of a Sinkhorn assignment balanced over the whole data set (default: head)",
    )
    p.add_argument(
        "--kmeans-space",
        choices=KMEANS_SPACES,
        default=None,
        help="features of the k-means read-out: backbone, projection head or exemplar head "
        "(as the method offers; default: backbone)",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help=f"score every N epochs when labels exist; 0: at the end only "
        f"(default: {d.train.eval_every})",
    )
    p.add_argument(
        "--param",
        "-p",
        action="append",
        metavar="KEY=VALUE",
        help="a method parameter, e.g. -p instance_temperature=0.2 (repeatable)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="any setting of the configuration, e.g. --set optim.schedule=cosine (repeatable)",
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip (and report) images that cannot be decoded",
    )
    p.add_argument(
        "--stream",
        choices=("auto", "on", "off"),
        default=None,
        help="decode image files batch by batch in worker processes instead of holding "
        "them in memory; auto: when the decoded images exceed 2 GiB (default: auto)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="image decoding processes (default: min(4, CPUs))",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out with its own settings (--epochs may lengthen it)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--no-report", action="store_true", help="do not write report.html at the end")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contraclust",
        description="Deep clustering of images and vectors with contrastive learning.",
        allow_abbrev=False,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"contraclust {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _add_parser(sub, "fit", help="train a clustering model and write a run directory")
    _add_fit_options(p)
    p.set_defaults(func=cmd_fit)

    p = _add_parser(sub, "predict", help="assign new data to the clusters of a trained run")
    p.add_argument("run_dir", help="run directory (or model.ckpt)")
    p.add_argument("input", help="image folder, .npy/.npz/.csv/.parquet file or dataset name")
    p.add_argument(
        "--out",
        "-o",
        default=None,
        help="CSV file to write; '-' writes to stdout (default: stdout)",
    )
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to compute"
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

    p = _add_parser(
        sub,
        "evaluate",
        help="print the metrics of a finished run, or score it on other or corrupted data",
    )
    p.add_argument("run_dir", help="run directory (the --out of contraclust fit)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--data",
        default=None,
        help="score the trained model on this dataset, folder or array file instead "
        "(default with --split/--corruption: the training data); the result goes to "
        "RUN_DIR/shift/<data>-<split>-<corruption>-<severity>.json",
    )
    p.add_argument("--split", default=None, help="split of --data (default: the set's)")
    p.add_argument(
        "--corruption",
        choices=("noise", "blur", "contrast"),
        default=None,
        help="score on a corrupted copy: Gaussian noise, Gaussian blur or lower contrast "
        "(default: none)",
    )
    p.add_argument(
        "--severity", type=int, default=None, help="corruption strength 1..5 (default: 3)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the noise corruption")
    p.add_argument(
        "--data-root",
        default=None,
        help="folder of the standard datasets (default: the run's)",
    )
    p.set_defaults(func=cmd_evaluate)

    p = _add_parser(
        sub, "report", help="write report.html of a finished run again (figures, clusters, metrics)"
    )
    p.add_argument("run_dir", help="run directory (the --out of contraclust fit)")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="device for the embedding of the map",
    )
    p.set_defaults(func=cmd_report)

    p = _add_parser(
        sub, "demo", help="cluster scikit-learn's digits: k-means vs the default recipe"
    )
    p.add_argument(
        "--out", "-o", default=None, help="folder for the runs (default: runs/demo-<time>)"
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of the deep run (default: as many as the default budget allows)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to train"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = _add_parser(
        sub, "datasets", help="list, download or verify the standard datasets (default: list)"
    )
    root_help = (
        "folder of the standard datasets (default: $CONTRACLUST_DATA or ~/.cache/contraclust)"
    )
    p.add_argument("--data-root", default=None, help=root_help)
    p.set_defaults(func=cmd_datasets)
    actions = p.add_subparsers(dest="datasets_command", metavar="ACTION")
    q = _add_parser(actions, "list", help="each dataset, where it is looked for, and its state")
    q.add_argument("--data-root", default=argparse.SUPPRESS, help=root_help)
    q = _add_parser(actions, "download", help="download, check and unpack a dataset")
    q.add_argument("name", help="dataset name (see `datasets list`)")
    q.add_argument("--data-root", default=argparse.SUPPRESS, help=root_help)
    q.add_argument(
        "--mirror",
        default=None,
        metavar="URL",
        help="mirror laid out as URL/<family>/<file> (default: $CONTRACLUST_MIRROR, "
        "else the official address)",
    )
    q.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    q = _add_parser(actions, "verify", help="check a dataset's files against their checksums")
    q.add_argument("name", help="dataset name (see `datasets list`)")
    q.add_argument("--data-root", default=argparse.SUPPRESS, help=root_help)

    p = _add_parser(sub, "methods", help="list the clustering methods")
    p.set_defaults(func=cmd_methods)

    p = _add_parser(sub, "presets", help="list the committed presets and the data each is for")
    p.set_defaults(func=cmd_presets)
    return parser


def _flag_words(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Python name of each option -> its flag (``n_clusters`` -> ``--clusters``); the
    options of ``fit`` first, then those only other commands have."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags: dict[str, str] = {}
    for command in ("fit", *sub.choices):
        for action in sub.choices[command]._actions:
            longs = [o for o in action.option_strings if o.startswith("--")]
            if longs and action.dest not in ("help", "data_opt") and action.dest not in flags:
                flags[action.dest] = longs[0]
    flags.update({"run_dir": "--out", "resume": "--resume", "overwrite": "--overwrite"})
    return flags


#: Names that library messages use alone (not as ``name=value``) and that are never
#: words of a sentence, so they can be said as flags.
_BARE_NAMES = ("run_dir", "k_range", "severity", "corruption")


def _in_cli_words(message: str, flags: dict[str, str]) -> str:
    """Library messages name Python arguments (``n_clusters=2``); say them as flags."""
    for name, flag in flags.items():
        message = re.sub(rf"\b{name}=True\b", flag, message)
        message = re.sub(rf"(?<![\w.]){name}=(?=\S)", f"{flag} ", message)
        if name in _BARE_NAMES:
            message = re.sub(rf"(?<![\w.-]){name}\b(?![=\w])", flag, message)
    return message


def _show_warnings(flags: dict[str, str]) -> None:
    """Print the library's warnings to the user as one line each on stderr."""
    default = warnings.showwarning

    def show(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, ContraclustWarning):
            print(f"contraclust: warning: {_in_cli_words(str(message), flags)}", file=sys.stderr)
        else:
            default(message, category, *args, **kwargs)

    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    flags = _flag_words(parser)
    _show_warnings(flags)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (`... | head`): end quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except ContraclustError as exc:
        if args.debug:
            raise
        print(f"contraclust: error: {_in_cli_words(str(exc), flags)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if args.debug:
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"contraclust: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
