"""``captcha``: generate, train, predict, evaluate, segment (a thin front end over the API)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from recognisers.backend import quiet_tensorflow
from recognisers.errors import ArgumentParser, UserError, note, run_cli
from recognisers.paths import check_output_dir, check_output_file

PROG = "captcha"


def build_parser() -> argparse.ArgumentParser:
    from captcha.data import CASES
    from captcha.evaluate import EvaluateConfig
    from captcha.readers import READERS
    from captcha.synth import DEFAULT_CHARSET, STYLES

    parser = ArgumentParser(
        prog=PROG,
        description="Read CAPTCHAs: OpenCV segmentation + a glyph CNN, "
        "or a CNN + BiGRU + CTC sequence reader.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write labelled CAPTCHAs made by the built-in generator")
    p.add_argument("out", type=Path)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--length", default="4", help="glyphs per CAPTCHA: a number, or a range such as 4-8")
    p.add_argument("--charset", default=DEFAULT_CHARSET)
    p.add_argument("--style", choices=STYLES, default="simple")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace the images already in OUT")

    p = sub.add_parser("train", help="train a model on a labelled folder")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="most epochs (default: each reader's own, segment 15, sequence 60)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--case", choices=CASES, default="keep")
    p.add_argument(
        "--reader",
        choices=READERS,
        default="auto",
        help="segment: OpenCV cuts + glyph CNN; sequence: CNN + BiGRU + CTC; "
        "auto: train both, keep the one that reads more of a validation slice",
    )
    p.add_argument(
        "--align-rounds",
        type=int,
        default=1,
        help="rounds of re-cutting hard images by forced alignment, then retraining",
    )
    p.add_argument(
        "--line-kernel",
        type=int,
        default=None,
        help="height of the vertical opening that removes thin lines (default: tuned on the data)",
    )
    p.add_argument(
        "--width",
        type=int,
        default=16,
        help="filters in the CNN's first layer (16: fast; 32: more accurate on hard sets)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing model")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")

    p = sub.add_parser("predict", help="read CAPTCHA images")
    p.add_argument("model_dir", type=Path)
    p.add_argument("images", type=Path, nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("evaluate", help="measure a model on a labelled folder")
    p.add_argument("model_dir", type=Path)
    p.add_argument("data_dir", type=Path)
    p.add_argument("--report", type=Path, required=True)
    p.add_argument("--case", choices=CASES, default=None, help="default: the model's")
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
    p.add_argument("image", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path, default=None, help="use this model's segmentation settings")
    p.add_argument(
        "--read",
        action="store_true",
        help="read the image with --model and draw the boxes the reader used, with its characters",
    )
    p.add_argument("--length", type=int, default=None, help="expected number of glyphs")
    p.add_argument("--line-kernel", type=int, default=0)

    add_audit_parser(sub)
    return parser


def add_audit_parser(sub) -> None:
    from captcha.audit import AuditConfig

    d = AuditConfig()
    p = sub.add_parser("audit", help="learning curve: how many labelled samples it takes to break a CAPTCHA")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sizes", default=",".join(map(str, d.sizes)), help="training sizes, increasing")
    p.add_argument("--time-budget", default=f"{d.time_budget / 60:g}m", help="whole audit: 30m, 90s, 1h")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--human-usd-per-1000",
        type=float,
        default=d.human_usd_per_1000,
        help="what a human solving service charges per 1000 CAPTCHAs (default: Motoyama et al. 2010)",
    )
    p.add_argument(
        "--human-seconds",
        type=float,
        default=d.human_seconds,
        help="a human solving service's seconds per CAPTCHA (default: Motoyama et al. 2010)",
    )
    p.add_argument("--force", action="store_true", help="replace a previous audit in OUT")


def cmd_generate(args: argparse.Namespace) -> int:
    from captcha.data import IMAGE_SUFFIXES
    from captcha.synth import GENERATED_NAME, generate, parse_lengths

    lengths = parse_lengths(args.length)
    if args.count < 1:
        raise UserError("--count must be at least 1")
    if not args.charset or set(args.charset) & set("_/\\.: \t\n"):
        raise UserError("--charset must be non-empty and free of '_', '/', '\\', '.', ':' and spaces")
    check_output_dir(args.out, "OUT")
    old = [p for p in args.out.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES] if args.out.is_dir() else []
    if old and not args.force:
        raise UserError(f"{args.out} already holds images; pass --force to replace them")
    foreign = [p.name for p in old if not GENERATED_NAME.fullmatch(p.name)]
    if foreign:  # --force replaces what generate wrote, never a user's own images
        raise UserError(
            f"{args.out} holds images generate did not write ({foreign[0]}, ...); choose another folder"
        )
    for path in old:
        path.unlink()
    paths = generate(args.out, args.count, lengths, args.charset, args.style, args.seed)
    print(f"wrote {len(paths)} {args.style} CAPTCHAs to {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from captcha.data import load_folder
    from captcha.readers import train_reader

    if (args.epochs is not None and args.epochs < 1) or args.align_rounds < 0 or args.width < 1:
        raise UserError("--epochs and --width must be at least 1, --align-rounds at least 0")
    samples = load_folder(args.data_dir, args.case)
    print(f"{len(samples)} labelled images in {args.data_dir}")
    train_reader(
        samples,
        args.out,
        reader=args.reader,
        seed=args.seed,
        case=args.case,
        force=args.force,
        verbose=0 if args.quiet else 2,
        epochs=args.epochs,
        align_rounds=args.align_rounds,
        line_kernel=args.line_kernel,
        width=args.width,
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from captcha.solver import CaptchaSolver

    solver = CaptchaSolver.load(args.model_dir)
    failed = 0
    for path, reading in zip(args.images, solver.read_each(args.images)):
        if isinstance(reading, UserError):
            print(f"{PROG}: error: {path}: {reading}", file=sys.stderr)
            failed += 1
        elif args.json:
            print(json.dumps({"path": str(path), **reading.as_dict()}))
        else:
            print(f"{path}\t{reading.text}\t{reading.confidence:.3f}")
    return 1 if failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import time

    from captcha.data import load_folder
    from captcha.evaluate import EvaluateConfig, evaluate, worst_cases
    from captcha.solver import CaptchaSolver
    from recognisers.modeldir import write_json
    from recognisers.tables import print_table

    if not 0.0 <= args.label_error_confidence <= 1.0:
        raise UserError("--label-error-confidence must lie between 0 and 1")
    worst = args.worst or args.report.with_suffix(".worst.png")
    check_output_file(args.report, "--report")
    check_output_file(worst, "--worst")
    solver = CaptchaSolver.load(args.model_dir)
    samples = load_folder(args.data_dir, args.case or solver.case)
    report = evaluate(
        solver, samples, args.case, EvaluateConfig(label_error_confidence=args.label_error_confidence)
    )
    if report["unknown_characters"]:
        note(
            f"the labels hold characters the model never saw, which it cannot read: "
            f"{report['unknown_characters']!r}"
        )
    worst_cases(report, samples, worst)
    report = {k: v for k, v in report.items() if not k.startswith("_")}
    report.update(
        dataset=str(args.data_dir),
        model_dir=str(args.model_dir),
        worst_cases_png=str(worst),
        time=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    write_json(args.report, report)
    rows = [
        (k, report[k])
        for k in (
            "count",
            "sequence_accuracy",
            "char_accuracy",
            "segmentation_failure_rate",
            "images_per_second",
            "reader",
            "wrong_count",
        )
    ]
    rows.append(("suspected_label_errors", len(report["suspected_label_errors"])))
    print_table(f"captcha evaluation: {args.data_dir}", rows)
    print(f"report: {args.report}  worst cases: {worst}")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    import cv2

    from captcha.data import grey, read_pixels
    from captcha.segment import SegmentSettings, draw_boxes, segment

    check_output_file(args.out, "--out")
    if args.length is not None and args.length < 1:
        raise UserError("--length must be at least 1")
    pixels = read_pixels(args.image)
    gray = grey(pixels)
    if args.read:
        boxes, text = read_boxes(args)
    else:
        if args.model:
            from captcha.solver import FORMAT_VERSION, KIND, CaptchaSolver
            from recognisers.modeldir import read_meta

            meta = read_meta(args.model, KIND, FORMAT_VERSION)
            settings, lengths = CaptchaSolver.settings_from_meta(meta, args.model)
        else:
            settings, lengths = SegmentSettings(0.5 * gray.shape[0], args.line_kernel), None
        length_hint = [args.length] if args.length is not None else lengths
        boxes, text = segment(pixels, settings, length_hint).boxes, None
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
    from captcha.solver import CaptchaSolver

    if not args.model:
        raise UserError("--read needs --model")
    reading = CaptchaSolver.load(args.model).predict(args.image)
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
