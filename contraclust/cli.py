"""The ``contraclust`` command.

Verbs: ``fit``, ``predict``, ``evaluate``, ``report``, ``demo``, ``datasets``,
``methods``, ``presets``. Errors the user can fix print one line and exit with status 2
(``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from contraclust import __version__
from contraclust.errors import ConfigError, ContraclustError, RunDirectoryError

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
    """Defaults < preset < command-line flags."""
    from contraclust.config import RunConfig, load_preset, merge

    raw: dict[str, Any] = load_preset(args.preset) if args.preset else {}
    over: dict[str, Any] = {}

    def put(section: str | None, key: str, value: Any) -> None:
        if value is None:
            return
        if section is None:
            over[key] = value
        else:
            over.setdefault(section, {})[key] = value

    put(None, "method", args.method)
    put(None, "n_clusters", args.clusters)
    put("data", "name", args.data)
    put("data", "root", args.data_root)
    put("data", "image_size", args.image_size)
    put("data", "split", args.split)
    put("data", "stream", args.stream)
    put("data", "workers", args.workers)
    put("data", "label_column", args.label_column)
    put("data", "features", args.features)
    put("data", "features_image_size", args.features_image_size)
    put("k_search", "k_range", args.k_range)
    if args.skip_bad_images:
        put("data", "skip_bad_images", True)
    put("model", "backbone", args.backbone)
    put("augment", "name", args.augment)
    put("optim", "lr", args.lr)
    put("optim", "name", args.optimizer)
    put("train", "epochs", args.epochs)
    put("train", "self_label_epochs", args.self_label)
    put("train", "batch_size", args.batch_size)
    put("train", "seed", args.seed)
    put("train", "device", args.device)
    put("train", "devices", args.devices)
    put("train", "precision", args.precision)
    put("train", "predict_with", args.predict_with)
    put("train", "eval_every", args.eval_every)
    if args.param:
        over["params"] = dict(_parse_param(p) for p in args.param)
    if args.method and raw.get("method", args.method) != args.method:
        raw.pop("params", None)
    return RunConfig.from_dict(merge(raw, over))


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
    from contraclust.training.loop import check_method_settings, launched_rank

    cfg = build_config(args)
    out = Path(args.out) if args.out else _default_out(cfg)
    if args.resume:
        _keep_run_settings(args, cfg, out)
    else:
        check_method_settings(cfg)  # a refused setting prints its one line only
    if args.download and launched_rank() == 0:
        from contraclust.data.download import ensure_dataset

        ensure_dataset(cfg.data.name, cfg.data.root, split=cfg.data.split, progress=not args.quiet)
    if not args.quiet and launched_rank() == 0:
        print(
            f"contraclust {__version__}: {cfg.method} on {cfg.data.name}, K={cfg.n_clusters}, "
            f"{cfg.train.epochs} epochs -> {out}",
            file=sys.stderr,
        )
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
        chosen = f"K={result.config.n_clusters} (chosen), " if result.k_search else ""
        print(
            f"{cfg.method} on {cfg.data.name}: {chosen}{_format_metrics(result.metrics)}  "
            f"({result.seconds:.1f} s) -> {out}"
        )
    return 0


def _keep_run_settings(args: argparse.Namespace, cfg: Any, out: Path) -> None:
    """``fit --resume --out DIR`` continues the run with its own method and length
    unless --method / --epochs / --self-label say otherwise (fit refuses another method)."""
    from contraclust.training.checkpoint import read_checkpoint
    from contraclust.training.rundir import LAST

    if not (out / LAST).is_file():
        return  # fit says there is nothing to resume
    saved = read_checkpoint(out / LAST)["config"]
    if args.method is None:
        cfg.method = saved["method"]
    if args.epochs is None:
        cfg.train.epochs = saved["train"]["epochs"]
    if args.self_label is None:
        cfg.train.self_label_epochs = saved["train"].get("self_label_epochs", 0)


def cmd_evaluate(args: argparse.Namespace) -> int:
    run = Path(args.run_dir)
    if args.data or args.split or args.corruption or args.severity is not None:
        return _evaluate_shift(args, run)
    path = run / "metrics.json"
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

    path, warnings = rebuild_report(args.run_dir, device=args.device)
    for warning in warnings:
        print(f"contraclust: warning: {warning}", file=sys.stderr)
    print(f"report written to {path}")
    return 0


def _evaluate_shift(args: argparse.Namespace, run: Path) -> int:
    """Score a trained run on other data, another split, or a corrupted copy."""
    from contraclust.api import load
    from contraclust.data.corruptions import corrupt
    from contraclust.data.registry import get_dataset_info
    from contraclust.errors import DataError
    from contraclust.evaluation import evaluate
    from contraclust.training.loop import cluster_summary
    from contraclust.utils import atomic_write_json

    if args.severity is not None and not args.corruption:
        raise ConfigError("--severity needs --corruption noise, blur or contrast")
    est = load(run)
    cfg = est.config_
    if args.data_root:
        cfg.data.root = args.data_root
    spec = args.data or cfg.data.name
    try:
        info = get_dataset_info(spec)
        split = args.split or info.default_split or "all"
    except DataError:  # a folder or an array file: always read whole
        info, split = None, args.split or "all"
    ds = _load_for_model(spec, est.model_.input_shape, cfg, split=split if info else args.split)
    severity = None
    if args.corruption:
        if ds.kind != "image":
            raise ConfigError(f"--corruption applies to images; {ds.name} holds vectors")
        severity = 3 if args.severity is None else args.severity
        ds.data = corrupt(ds.data, args.corruption, severity, seed=args.seed)
    pred = est._predict(ds)
    metrics = evaluate(ds.labels, pred.labels) if ds.labels is not None else None
    data_name = info.name if info else (Path(spec).name or "data")
    shift = f"{args.corruption}-{severity}" if args.corruption else "clean"
    result = {
        "run": str(run),
        "method": cfg.method,
        "trained_on": {"data": cfg.data.name, "split": cfg.data.split},
        "data": spec,
        "split": split,
        "corruption": args.corruption,
        "severity": severity,
        "seed": args.seed if args.corruption == "noise" else None,
        "n_samples": len(ds),
        "metrics": metrics,
        "note": None if metrics else "the data have no labels: metrics need labels",
        **cluster_summary(pred.labels, est.model_.n_clusters),
    }
    out = run / "shift" / f"{_slug(data_name)}-{_slug(split)}-{shift}.json"
    out.parent.mkdir(exist_ok=True)
    atomic_write_json(out, result)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    what = f"{args.corruption}, severity {severity}" if args.corruption else "no corruption"
    print(f"run        {run}  ({cfg.method}, trained on {cfg.data.name})")
    print(f"data       {spec}  split {split}, {what}  ({len(ds)} samples)")
    print(f"clusters   {est.model_.n_clusters}  sizes {result['cluster_sizes']}")
    if metrics:
        for key in ("acc", "acc_many_to_one", "nmi", "ari", "ami"):
            print(f"{key:<10} {metrics[key]:.4f}")
    else:
        print("metrics    none: the data have no labels (metrics need labels)")
    print(f"written    {out}")
    return 0


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _load_for_model(spec: str, input_shape: tuple[int, ...], cfg: Any, split: str | None = None):
    """Load new data the way the model's training data was shaped."""
    import torch

    from contraclust.data import load_dataset

    image_size = input_shape[1] if len(input_shape) == 3 else None
    if cfg.data.features:  # the images go through the feature backbone as in training
        image_size = cfg.data.image_size
    ds = load_dataset(
        spec,
        root=cfg.data.root,
        image_size=image_size,
        skip_bad=cfg.data.skip_bad_images,
        split=split,
        label_column=cfg.data.label_column,
    )
    if len(input_shape) == 3 and ds.kind == "image" and ds.data.shape[1] != input_shape[0]:
        if input_shape[0] == 1:  # colour data, grey model
            ds.data = ds.data.float().mean(dim=1, keepdim=True).round().to(torch.uint8)
        else:  # grey data, colour model
            ds.data = ds.data.expand(-1, 3, -1, -1).contiguous()
    if len(input_shape) == 3 and ds.kind == "image" and ds.data.shape[2:] != input_shape[1:]:
        ds.data = (
            torch.nn.functional.interpolate(
                ds.data.float(),
                size=tuple(input_shape[1:]),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
    return ds


def cmd_predict(args: argparse.Namespace) -> int:
    from contraclust.api import load
    from contraclust.evaluation import evaluate
    from contraclust.training.rundir import write_assignments

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise RunDirectoryError(f"{out} exists; pass --overwrite to replace it")
    est = load(args.run_dir)
    est.device = args.device
    est.verbose = not args.quiet
    ds = _load_for_model(args.input, est.model_.input_shape, est.config_)
    pred = est._predict(ds)
    write_assignments(out, pred.labels, pred.confidence, ds.labels, ds.paths, ds.class_names)
    line = f"{len(ds)} samples of {ds.name} assigned -> {out}"
    if ds.labels is not None:
        line += f"  ({_format_metrics(evaluate(ds.labels, pred.labels))})"
    print(line)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from contraclust.config import RunConfig, load_preset
    from contraclust.data import load_dataset
    from contraclust.training import fit

    out = Path(args.out) if args.out else Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    dataset = load_dataset("digits")
    rows = []
    for method, preset in (("kmeans", None), ("cc", "cc/digits")):
        raw = load_preset(preset) if preset else {"method": method}
        cfg = RunConfig.from_dict(raw)
        cfg.train.seed = args.seed
        if args.epochs is not None and method != "kmeans":
            cfg.train.epochs = args.epochs
        cfg.train.device = args.device
        result = fit(cfg, dataset, run_dir=out / method, quiet=args.quiet)
        rows.append((method, result.metrics, result.seconds))
    print(f"\ndigits (1797 images, 10 classes), seed {args.seed}; runs in {out}")
    print(f"{'method':<10}{'ACC':>8}{'NMI':>8}{'ARI':>8}{'seconds':>10}")
    for method, m, seconds in rows:
        assert m is not None
        print(f"{method:<10}{m['acc']:>8.4f}{m['nmi']:>8.4f}{m['ari']:>8.4f}{seconds:>10.1f}")
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
    from contraclust.config import PRESET_DIR, available_presets

    print(f"presets in {PRESET_DIR}:")
    for name in available_presets():
        print(f"  {name}")
    return 0


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contraclust",
        description="Deep clustering of images and vectors with contrastive learning.",
    )
    parser.add_argument("--version", action="version", version=f"contraclust {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("fit", help="train a clustering model and write a run directory")
    p.add_argument(
        "data",
        nargs="?",
        default=None,
        help="dataset name, image folder or .npy/.npz/.csv/.parquet file (default: digits)",
    )
    p.add_argument("--method", "-m", default=None, help="clustering method (default: cc)")
    p.add_argument(
        "--clusters",
        "-k",
        type=_clusters,
        default=None,
        metavar="K|auto",
        help="number of clusters K, or 'auto' to choose it (see --k-range)",
    )
    p.add_argument(
        "--k-range",
        default=None,
        metavar="MIN:MAX",
        help="candidates of --clusters auto (default: 2:min(20, N/10))",
    )
    p.add_argument("--epochs", "-e", type=int, default=None)
    p.add_argument(
        "--self-label",
        type=int,
        default=None,
        metavar="EPOCHS",
        help="epochs of self-labelling after training (SCAN's step 3; default 0)",
    )
    p.add_argument(
        "--out", "-o", default=None, help="run directory (default: runs/<method>-<data>)"
    )
    p.add_argument("--preset", default=None, help="preset name (see `presets`) or YAML file")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    p.add_argument("--devices", type=int, default=None, help="processes (DDP) to train on")
    p.add_argument("--precision", default=None, help="auto, 32, bf16-mixed or 16-mixed")
    p.add_argument("--batch-size", "-b", type=int, default=None, help="global batch size")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--optimizer", default=None, help="adam, adamw or sgd")
    p.add_argument("--backbone", default=None, help="auto, small_cnn, resnet18, resnet34, mlp ...")
    p.add_argument("--augment", default=None, help="auto, grey, simclr, vector or none")
    p.add_argument("--image-size", type=int, default=None, help="resize images to this side")
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
        "(computed once, cached in $CONTRACLUST_CACHE/features)",
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
        choices=("head", "kmeans"),
        default=None,
        help="read-out: argmax of the cluster head or k-means on the embedding",
    )
    p.add_argument(
        "--eval-every", type=int, default=None, help="score every N epochs when labels exist"
    )
    p.add_argument(
        "--param",
        "-p",
        action="append",
        metavar="KEY=VALUE",
        help="a method parameter, e.g. -p instance_temperature=0.2 (repeatable)",
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
        "them in memory (auto: when the decoded images exceed 2 GiB)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="image decoding processes (default min(4, CPUs))"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out with its own settings (--epochs may lengthen it)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--no-report", action="store_true", help="do not write report.html at the end")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("predict", help="assign new data to the clusters of a trained run")
    p.add_argument("run_dir", help="run directory (or model.ckpt)")
    p.add_argument("input", help="image folder, .npy/.npz/.csv/.parquet file or dataset name")
    p.add_argument("--out", "-o", required=True, help="CSV file to write")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "evaluate",
        help="print the metrics of a finished run, or score it on other or corrupted data",
    )
    p.add_argument("run_dir")
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
        help="score on a corrupted copy: Gaussian noise, Gaussian blur or lower contrast",
    )
    p.add_argument("--severity", type=int, default=None, help="corruption strength 1..5 (3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise corruption")
    p.add_argument("--data-root", default=None, help="folder of the standard datasets")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "report", help="write report.html of a finished run again (figures, clusters, metrics)"
    )
    p.add_argument("run_dir", help="run directory (the --out of contraclust fit)")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="device for the embedding of the map",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="cluster scikit-learn's digits: k-means vs cc")
    p.add_argument("--out", "-o", default=None, help="folder for the runs")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "datasets", help="list, download or verify the standard datasets (default: list)"
    )
    p.add_argument("--data-root", default=None, help="folder of the standard datasets")
    p.set_defaults(func=cmd_datasets)
    actions = p.add_subparsers(dest="datasets_command", metavar="ACTION")
    q = actions.add_parser("list", help="each dataset, where it is looked for, and its state")
    q.add_argument("--data-root", default=argparse.SUPPRESS)
    q = actions.add_parser("download", help="download, check and unpack a dataset")
    q.add_argument("name", help="dataset name (see `datasets list`)")
    q.add_argument("--data-root", default=argparse.SUPPRESS)
    q.add_argument(
        "--mirror",
        default=None,
        metavar="URL",
        help="mirror laid out as URL/<family>/<file> (default: $CONTRACLUST_MIRROR, "
        "else the official address)",
    )
    q.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    q = actions.add_parser("verify", help="check a dataset's files against their checksums")
    q.add_argument("name", help="dataset name (see `datasets list`)")
    q.add_argument("--data-root", default=argparse.SUPPRESS)

    p = sub.add_parser("methods", help="list the clustering methods")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("presets", help="list the committed presets")
    p.set_defaults(func=cmd_presets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except ContraclustError as exc:
        if args.debug:
            raise
        print(f"contraclust: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if args.debug:
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"contraclust: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
