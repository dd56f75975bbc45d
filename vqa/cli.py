"""``vqa``: train, ask and evaluate from the command line (a thin layer over the API)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from recognisers.backend import import_keras
from recognisers.contract import add_config_options, config_from_args
from recognisers.errors import ArgumentParser, UserError, note, run_cli
from vqa.config import EncoderConfig, NetworkConfig, TrainConfig, VQAConfig
from vqa.shapes import ShapesConfig

DATASETS = ("easy-vqa", "vqa2", "jsonl")
NO_KERAS = ("generate",)  # commands that need no TensorFlow
REPORT_NAME = "report.json"  # `vqa evaluate` writes MODEL_DIR/report.json unless --report says


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vqa`` command."""
    return run_cli("vqa", _main, argv)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in NO_KERAS:
        import_keras()
    return args.handler(args)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="vqa", description="Visual question answering: VGG image features + LSTM question encoder."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model on a VQA dataset")
    _dataset_args(train, split_default="train", for_training=True)
    train.add_argument("--out", required=True, help="model directory to write")
    train.add_argument("--force", action="store_true", help="replace an existing vqa model in --out")
    for title, part in (
        ("image encoder", EncoderConfig),
        ("network", NetworkConfig),
        ("training", TrainConfig),
    ):
        add_config_options(train.add_argument_group(title), part)  # type: ignore[arg-type]
    _cache_dir_arg(train)
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    train.set_defaults(handler=cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate a model; table + JSON report + confusion PNG")
    ev.add_argument("model_dir", help="a model directory from `vqa train`")
    _dataset_args(ev, split_default="test", for_training=False)
    ev.add_argument(
        "--report",
        help=f"JSON report path (default: MODEL_DIR/{REPORT_NAME}): metrics and every question's prediction",
    )
    ev.add_argument("--confusion", help="PNG path (default: next to the report, .confusion.png)")
    _cache_dir_arg(ev)
    ev.set_defaults(handler=cmd_evaluate)

    gen = sub.add_parser("generate", help="write a generated data set")
    gen.add_argument("kind", choices=("shapes",), help="shapes: a Sort-of-CLEVR-style set")
    gen.add_argument("out", type=Path, help="folder to write (images/ + questions.jsonl)")
    add_config_options(gen, ShapesConfig)
    gen.add_argument("--force", action="store_true", help="replace a generated set in OUT")
    gen.set_defaults(handler=cmd_generate)

    pr = sub.add_parser("predict", help="answer a question about an image")
    pr.add_argument("model_dir", help="a model directory from `vqa train`")
    pr.add_argument("--image", required=True, help="the image file to ask about")
    pr.add_argument(
        "--question",
        required=True,
        action="append",
        help="a question; repeat for several about the same image",
    )
    pr.add_argument("--top", type=int, default=3, help="how many answers per question, most probable first")
    pr.add_argument(
        "--json", action="store_true", help='one line per question: {"question", "answers", "unknown_words"}'
    )
    pr.add_argument(
        "--explain", metavar="PNG", help="write the image with where the model looked (first question)"
    )
    pr.set_defaults(handler=cmd_predict)
    return parser


def check_cache_dir(cache_dir: str | None) -> None:
    """The feature cache folder is checked before any work, as every output is."""
    if cache_dir is not None:
        from recognisers.paths import check_output_dir

        check_output_dir(cache_dir, "--cache-dir")


def _cache_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        help="where frozen VGG features are cached "
        "(default: $VQA_CACHE_DIR or ~/.cache/captcha-vqa/vqa-features)",
    )


def _dataset_args(parser: argparse.ArgumentParser, split_default: str, for_training: bool) -> None:
    group = parser.add_argument_group("dataset")
    group.add_argument("--dataset", choices=DATASETS, required=True, help="which reader")
    group.add_argument("--split", default=split_default, help="easy-vqa: train or test")
    group.add_argument("--questions", help="vqa2: questions JSON")
    group.add_argument("--annotations", help="vqa2: annotations JSON")
    group.add_argument("--images", help="vqa2: COCO image folder")
    if for_training:
        group.add_argument("--train", help="jsonl: training manifest")
    else:
        group.add_argument("--data", help="jsonl: manifest to evaluate on")
    group.add_argument("--max-questions", type=int, help="use only the first N questions (default: all)")


def read_dataset(args: argparse.Namespace):
    """The dataset the arguments name, or a UserError saying what is missing."""
    from vqa import data

    if args.max_questions is not None and args.max_questions < 1:
        raise UserError("--max-questions must be at least 1")
    if args.dataset == "easy-vqa":
        return data.read_easy_vqa(args.split, args.max_questions)
    if args.dataset == "vqa2":
        missing = [f"--{n}" for n in ("questions", "annotations", "images") if not getattr(args, n)]
        if missing:
            raise UserError(f"--dataset vqa2 needs {', '.join(missing)}")
        return data.read_vqa2(args.questions, args.annotations, args.images, args.max_questions)
    manifest = getattr(args, "train", None) or getattr(args, "data", None)
    if not manifest:
        raise UserError(
            "--dataset jsonl needs " + ("--train FILE" if hasattr(args, "train") else "--data FILE")
        )
    return data.read_jsonl(manifest, args.max_questions)


def cmd_train(args: argparse.Namespace) -> int:
    from recognisers.modeldir import check_writable_target
    from vqa.model import VQAModel

    check_writable_target(Path(args.out), args.force, VQAModel.KIND)
    check_cache_dir(args.cache_dir)
    model = VQAModel(config_from_args(VQAConfig, args), cache_dir=args.cache_dir)  # checks the settings
    dataset = read_dataset(args)
    model.fit(dataset, verbose=0 if args.quiet else 2)
    model.save(args.out, force=args.force)
    info = model.info
    print(
        f"saved {args.out}: {len(model.answers)} answers, {info['train_questions']} training "
        f"questions, {info['epochs_run']} epochs, {info['train_seconds']} s; {model.kept_epoch}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recognisers.paths import check_apart, check_output_file
    from recognisers.tables import print_table
    from vqa.evaluate import plot_confusion, report_rows
    from vqa.model import VQAModel

    report_path = Path(args.report) if args.report else Path(args.model_dir) / REPORT_NAME
    confusion = Path(args.confusion) if args.confusion else report_path.with_suffix(".confusion.png")
    check_output_file(report_path, "--report")
    check_output_file(confusion, "--confusion")
    inputs = tuple(getattr(args, name, None) for name in ("data", "images", "questions", "annotations"))
    own = (REPORT_NAME, Path(REPORT_NAME).with_suffix(".confusion.png").name)
    check_apart({"--report": report_path, "--confusion": confusion}, inputs, args.model_dir, own)
    check_cache_dir(args.cache_dir)
    model = VQAModel.load(args.model_dir, cache_dir=args.cache_dir)
    dataset = read_dataset(args)
    report = model.evaluate(dataset)
    report.metrics["confusion_png"] = str(confusion)
    predicted = [p["predicted"] for p in report.predictions]
    plot_confusion(dataset.answers, predicted, report.metrics["per_type"], confusion, f"vqa: {dataset.name}")
    report.write(report_path)
    if report.metrics.get("vqa_accuracy_under_four_answers"):
        note(
            f"{report.metrics['vqa_accuracy_under_four_answers']} question(s) carry fewer than four human "
            "answers: the official metric, made for ten, scores them below 1.0 even when right "
            "(one answer: 0; three alike: 0.67)"
        )
    print_table(f"vqa evaluate: {dataset.name}", report_rows(report.metrics))
    print(f"report: {report_path}  confusion matrix: {confusion}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from vqa.shapes import write_shapes_set

    manifest = write_shapes_set(args.out, config_from_args(ShapesConfig, args), force=args.force)
    print(f"wrote {args.images} images and their questions to {manifest}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from vqa.model import VQAModel

    questions = args.question
    if any(not q.strip() for q in questions):
        raise UserError("empty question")
    if args.top < 1:
        raise UserError("--top must be at least 1")
    if args.explain:
        from recognisers.paths import check_output_file

        check_output_file(args.explain, "--explain")
    model = VQAModel.load(args.model_dir)
    if args.explain and model.config.encoder.frozen:
        raise UserError("--explain needs a model with the compact image encoder")
    # one image, many questions: predict_batch encodes the image once
    results = model.predict_batch([args.image] * len(questions), questions, top=args.top)
    for question, answers in zip(questions, results):
        unknown = model.questions.unknown_words(question)
        none_known = set(unknown) >= set(model.questions.words(question))  # also: no word at all
        _warn_unknown(question, unknown, none_known, len(questions) > 1)
        _warn_cut(question, model.questions.cut_words(question), model.questions.max_length)
        if args.json:
            print(
                json.dumps(
                    {
                        "question": question,
                        "answers": [{"answer": a, "probability": round(p, 6)} for a, p in answers],
                        "unknown_words": unknown,
                    }
                )
            )
            continue
        prefix = f"{question}\t" if len(questions) > 1 else ""
        for answer, prob in answers:
            print(f"{prefix}{answer}\t{prob:.3f}")
    if args.explain:
        from vqa.explain import write_explanation

        write_explanation(model, args.image, questions[0], args.explain)
        sys.stdout.flush()
        print(f"explanation: {args.explain}", file=sys.stderr)
    return 0


def _warn_unknown(question: str, unknown: list[str], none_known: bool, name_it: bool) -> None:
    """One warning line on stderr when the model does not know some of the question's words."""
    if not unknown and not none_known:
        return
    where = f" ({question!r})" if name_it else ""
    words = ", ".join(unknown)
    if none_known:
        print(
            f"vqa: warning: no word of the question{where} is in the model's vocabulary "
            f"({words or 'no words at all'}): the answer ignores the question",
            file=sys.stderr,
        )
    else:
        print(
            f"vqa: warning: not in the model's vocabulary, read as unknown{where}: {words}", file=sys.stderr
        )


def _warn_cut(question: str, cut: list[str], max_length: int) -> None:
    """One warning line on stderr when the question is longer than the model reads."""
    if cut:
        print(
            f"vqa: warning: the model reads the first {max_length} words; not read of {question!r}: "
            + " ".join(cut),
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
