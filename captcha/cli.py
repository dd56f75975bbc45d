"""``captcha``: generate, train, predict, evaluate, segment (a thin front end over the API)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from recognisers.backend import quiet_tensorflow
from recognisers.errors import ArgumentParser, UserError, note, run_cli
from recognisers.paths import check_apart, check_output_dir, check_output_file

PROG = "captcha"


SHARED = ("seed", "case", "epochs")  # fields both readers' configs hold: one option each
DEFAULT_REPORT = "report.json"  # evaluate --report default: in the model directory
# segment --length: the cut search's work grows with it, and no CAPTCHA holds more glyphs
MAX_SEGMENT_LENGTH = 64


def build_parser() -> argparse.ArgumentParser:
    from captcha.data import CASES
    from captcha.evaluate import EvaluateConfig
    from captcha.synth import DEFAULT_CHARSET, STYLES

    parser = ArgumentParser(
        prog=PROG,
        description="Read CAPTCHAs: OpenCV segmentation + a glyph CNN, "
        "or a CNN + BiGRU + CTC sequence reader.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write labelled CAPTCHAs made by the built-in generator")
    p.add_argument("out", type=Path, help="folder to write the images into")
    p.add_argument("--count", type=int, default=100, help="how many CAPTCHAs")
    p.add_argument("--length", default="4", help="glyphs per CAPTCHA: a number, or a range such as 4-8")
    p.add_argument("--charset", default=DEFAULT_CHARSET, help="characters to draw from")
    p.add_argument("--style", choices=STYLES, default="simple", help="look of the CAPTCHAs")
    p.add_argument("--seed", type=int, default=0, help="the same seed writes the same images")
    p.add_argument("--force", action="store_true", help="replace the images already in OUT")

    add_train_parser(sub)

    p = sub.add_parser("predict", help="read CAPTCHA images")
    p.add_argument("model_dir", type=Path, help="a model directory written by captcha train")
    p.add_argument("images", type=Path, nargs="+", help="image files to read")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("evaluate", help="measure a model on a labelled folder")
    p.add_argument("model_dir", type=Path, help="a model directory written by captcha train")
    p.add_argument("data_dir", type=Path, help="labelled folder to read")
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help=f"JSON report to write (default: MODEL_DIR/{DEFAULT_REPORT})",
    )
    p.add_argument(
        "--case", choices=CASES, default=None, help="how labels are normalised (default: the model's)"
    )
    p.add_argument(
        "--worst", type=Path, default=None, help="PNG of the worst cases (default: next to the report)"
    )
    p.add_argument(
        "--label-error-confidence",
        type=float,
        default=EvaluateConfig.label_error_confidence,
        help="flag a wrong reading at least this confident as a suspected label error",
    )

    p = sub.add_parser("segment", help="draw the glyph boxes the segmenter finds")
    p.add_argument("image", type=Path, help="image file to segment")
    p.add_argument("--out", type=Path, required=True, help="PNG to draw the boxes on")
    p.add_argument("--model", type=Path, default=None, help="use this model's segmentation settings")
    p.add_argument(
        "--read",
        action="store_true",
        help="read the image with --model and draw the boxes the reader used, with its characters",
    )
    p.add_argument("--length", type=int, default=None, help="expected number of glyphs")
    p.add_argument(
        "--line-kernel",
        type=int,
        default=0,
        help="height of the opening that removes thin lines (without --model)",
    )

    add_audit_parser(sub)
    return parser


def add_train_parser(sub) -> None:
    """``captcha train``: its options are built from :class:`captcha.readers.ReaderConfig`.

    Both readers' configs have a seed, a case and a number of epochs: ``--seed`` and ``--case``
    set both readers', ``--epochs`` caps both (each keeps its own default without it).
    """
    from captcha.model import SegmentConfig
    from captcha.readers import ReaderConfig
    from captcha.sequence import SequenceConfig
    from recognisers.contract import add_config_options

    p = sub.add_parser("train", help="train a model on a labelled folder")
    p.add_argument("data_dir", type=Path, help="labelled folder (labels from file names or labels.csv)")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    add_config_options(p, ReaderConfig, skip=SHARED)
    shared = {f.name: f for f in dataclasses.fields(SegmentConfig)}
    p.add_argument("--seed", type=int, default=SegmentConfig.seed, help=shared["seed"].metadata["help"])
    p.add_argument(
        "--case",
        default=SegmentConfig.case,
        choices=shared["case"].metadata["choices"],
        help=shared["case"].metadata["help"],
    )
    p.add_argument(
        "--epochs",
        dest="most_epochs",
        metavar="N",
        type=int,
        default=None,
        help=f"most epochs of each reader, of each training round for the segmenter (default: each "
        f"reader's own, segment {SegmentConfig.epochs}, sequence {SequenceConfig.epochs})",
    )
    p.add_argument("--force", action="store_true", help="replace an existing model")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def train_config(args: argparse.Namespace):
    """The :class:`ReaderConfig` the ``train`` options describe (``--epochs`` capping both readers)."""
    from captcha.readers import ReaderConfig
    from recognisers.contract import config_from_args

    config = config_from_args(ReaderConfig, args)
    if args.most_epochs is None:
        return config
    if args.most_epochs < 1:
        raise UserError("--epochs must be at least 1")
    return dataclasses.replace(
        config,
        segment=dataclasses.replace(config.segment, epochs=args.most_epochs),
        sequence=dataclasses.replace(config.sequence, epochs=args.most_epochs),
    )


def add_audit_parser(sub) -> None:
    from captcha.audit import AuditConfig

    d = AuditConfig()
    p = sub.add_parser("audit", help="learning curve: how many labelled samples it takes to break a CAPTCHA")
    p.add_argument("data_dir", type=Path, help="labelled folder to audit")
    p.add_argument("--out", type=Path, required=True, help="folder for the report, page and curve")
    p.add_argument("--sizes", default=",".join(map(str, d.sizes)), help="training sizes, increasing")
    p.add_argument("--time-budget", default=f"{d.time_budget / 60:g}m", help="whole audit: 30m, 90s, 1h")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the draws and the fits")
    p.add_argument(
        "--human-usd-per-1000",
        type=float,
        default=d.human_usd_per_1000,
        help="USD a human solving service asks per 1000 CAPTCHAs (default: %(default)s, Motoyama 2010)",
    )
    p.add_argument(
        "--human-seconds",
        type=float,
        default=d.human_seconds,
        help="a human solving service's seconds per CAPTCHA (default: %(default)s, Motoyama et al. 2010)",
    )
    p.add_argument("--force", action="store_true", help="replace a previous audit in OUT")


def cmd_generate(args: argparse.Namespace) -> int:
    from captcha.data import IMAGE_SUFFIXES
    from captcha.synth import GENERATED_NAME, generate, parse_lengths

    lengths = parse_lengths(args.length)
    if args.count < 1:
        raise UserError("--count must be at least 1")
    if (
        not args.charset
        or set(args.charset) & set("_/\\.:")
        or not all(c.isprintable() and not c.isspace() for c in args.charset)
    ):
        raise UserError(
            "--charset must be non-empty and free of '_', '/', '\\', '.', ':', spaces and control characters"
        )
    check_output_dir(args.out, "OUT")
    old = (
        [p for p in args.out.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        if args.out.is_dir()
        else []
    )
    if old and not args.force:
        raise UserError(f"{args.out} already holds images; pass --force to replace them")
    foreign = [p.name for p in old if not GENERATED_NAME.fullmatch(p.name)]
    if foreign:  # --force replaces what generate wrote, never a user's own images
        raise UserError(
            f"{args.out} holds images generate did not write ({foreign[0]}, ...); choose another folder"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.", suffix=".tmp", dir=args.out.parent))
    try:  # written aside first: an interrupted run leaves the old images as they were
        paths = generate(staging, args.count, lengths, args.charset, args.style, args.seed)
        for path in old:
            path.unlink()
        for path in paths:
            path.rename(args.out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {len(paths)} {args.style} CAPTCHAs to {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import time

    from captcha.data import load_folder
    from captcha.model import KIND
    from captcha.readers import CaptchaReader
    from recognisers.modeldir import check_writable_target

    config = train_config(args)
    problem = config.segment.problem() or config.sequence.problem() or config.choice.problem()
    if problem:
        raise UserError(problem.replace("_", "-"))
    check_writable_target(args.out, args.force, KIND)  # refuse before minutes of training
    samples = load_folder(args.data_dir, args.case)
    print(f"{len(samples)} labelled images in {args.data_dir}")
    started = time.perf_counter()
    model = CaptchaReader(config).fit(samples, verbose=not args.quiet)
    model.save(args.out, force=args.force)
    print(f"saved {args.out} ({model.reader} reader) in {time.perf_counter() - started:.0f} s")
    return 0


def error_line(path: Path, error: UserError) -> str:
    """``path: message``, naming the path once (the message may name it already)."""
    message = str(error)
    return message if str(path) in message else f"{path}: {message}"


def cmd_predict(args: argparse.Namespace) -> int:
    from captcha.readers import CaptchaReader

    model = CaptchaReader.load(args.model_dir)
    failed = 0
    for path, reading in zip(args.images, model.read_each(args.images)):
        if isinstance(reading, UserError):
            print(f"{PROG}: error: {error_line(path, reading)}", file=sys.stderr)
            failed += 1
        elif args.json:
            print(json.dumps({"path": str(path), **reading.as_dict()}))
        else:
            print(f"{path}\t{reading.text}\t{reading.confidence:.3f}")
    return 1 if failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import time

    from captcha.data import load_folder
    from captcha.evaluate import EvaluateConfig, worst_cases
    from captcha.readers import CaptchaReader
    from recognisers.tables import print_table

    if not 0.0 <= args.label_error_confidence <= 1.0:
        raise UserError("--label-error-confidence must lie between 0 and 1")
    report_path = args.report or args.model_dir / DEFAULT_REPORT
    worst = args.worst or report_path.with_suffix(".worst.png")
    check_output_file(report_path, "--report")
    check_output_file(worst, "--worst")
    own = (DEFAULT_REPORT, Path(DEFAULT_REPORT).with_suffix(".worst.png").name)
    check_apart({"--report": report_path, "--worst": worst}, (args.data_dir,), args.model_dir, own)
    model = CaptchaReader.load(args.model_dir)
    samples = load_folder(args.data_dir, args.case or model.case)
    report = model.evaluate(
        samples, args.case, EvaluateConfig(label_error_confidence=args.label_error_confidence)
    )
    metrics = report.metrics
    if metrics["unknown_characters"]:
        note(
            f"the labels hold characters the model never saw, which it cannot read: "
            f"{metrics['unknown_characters']!r}"
        )
    worst_cases(report, worst)
    metrics.update(
        dataset=str(args.data_dir),
        model_dir=str(args.model_dir),
        worst_cases_png=str(worst),
        time=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    report.write(report_path)
    shown = ("count", "sequence_accuracy", "char_accuracy", "segmentation_failure_rate", "images_per_second")
    rows = [(k, metrics[k]) for k in (*shown, "reader", "wrong_count")]
    rows.append(("suspected_label_errors", len(metrics["suspected_label_errors"])))
    print_table(f"captcha evaluation: {args.data_dir}", rows)
    print(f"report: {report_path}  worst cases: {worst}")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    import cv2

    from captcha.data import grey, read_pixels
    from captcha.segment import SegmentSettings, draw_boxes, segment

    check_output_file(args.out, "--out")
    check_apart({"--out": args.out}, (args.image,))
    if args.length is not None and not 1 <= args.length <= MAX_SEGMENT_LENGTH:
        raise UserError(f"--length must lie in 1 to {MAX_SEGMENT_LENGTH}")
    pixels = read_pixels(args.image)
    gray = grey(pixels)
    if args.read:
        boxes, text = read_boxes(args)
    else:
        if args.model:
            from captcha.model import FORMAT_VERSION, KIND, CaptchaSolver
            from recognisers.modeldir import read_meta

            meta = read_meta(args.model, KIND, FORMAT_VERSION)
            if meta.get("reader") != "segment":
                raise UserError(
                    f"{args.model} holds a {meta.get('reader')} reader, which has no segmentation settings "
                    "of its own: add --read to draw the boxes it reads"
                )
            settings, lengths = CaptchaSolver.settings_from_meta(meta, args.model)
        else:
            settings, lengths = SegmentSettings(0.5 * gray.shape[0], args.line_kernel), None
        seg = segment(pixels, settings, [args.length] if args.length is not None else lengths)
        if seg is None:
            raise UserError(f"{args.image}: no ink found in the image (blank, too faint, or only noise)")
        boxes, text = seg.boxes, None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        written = cv2.imwrite(str(args.out), draw_boxes(gray, boxes, text))
    except cv2.error:
        written = False
    if not written:
        raise UserError(f"cannot write {args.out} (use a .png name in a writable folder)")
    read = f", read {text!r}" if text is not None else ""
    print(f"{len(boxes)} glyph boxes: {boxes}{read} -> {args.out}")
    return 0


def read_boxes(args: argparse.Namespace) -> tuple[list, str]:
    """The boxes and text of the model's own reading (what ``predict`` does, cuts included)."""
    from captcha.readers import CaptchaReader

    if not args.model:
        raise UserError("--read needs --model")
    reading = CaptchaReader.load(args.model).predict(args.image)
    return reading.boxes, reading.text


def cmd_audit(args: argparse.Namespace) -> int:
    from captcha.audit import command

    return command(args)


COMMANDS = {
    "generate": cmd_generate,
    "train": cmd_train,
    "predict": cmd_predict,
    "evaluate": cmd_evaluate,
    "segment": cmd_segment,
    "audit": cmd_audit,
}


def _main(argv: Sequence[str] | None) -> int:
    quiet_tensorflow()
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: returns the exit status; user errors are one line on stderr."""
    return run_cli(PROG, _main, argv)
