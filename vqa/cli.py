"""``vqa``: train, ask and evaluate from the command line (a thin layer over the API)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from recognisers.backend import import_keras
from recognisers.errors import ArgumentParser, UserError, run_cli
from vqa.model import KINDS, ModelConfig
from vqa.shapes import ShapesConfig

DATASETS = ("easy-vqa", "vqa2", "jsonl")
NO_KERAS = ("generate",)  # commands that need no TensorFlow


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
    train.add_argument("--force", action="store_true", help="replace an existing model")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=128, help="questions per batch (about)")
    train.add_argument(
        "--learning-rate",
        type=float,
        help="default: 2e-3 for cnn-lstm, 5e-4 for attention, 1e-3 for relation",
    )
    train.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of training images kept for validation / early stopping",
    )
    train.add_argument("--patience", type=int, default=3, help="early-stopping patience")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--top-answers", type=int, default=1000, help="answer vocabulary size")
    train.add_argument("--image-encoder", choices=("compact", "vgg16", "vgg19"), default="compact")
    train.add_argument("--image-size", type=int, help="default 64 (compact; 80 for relation), 224 (vgg)")
    train.add_argument(
        "--filters",
        help="compact CNN widths per block (default: 32,64,128 "
        "for cnn-lstm, 16,32,64 for attention, 16,32,64,64 for relation)",
    )
    train.add_argument("--vgg-layer", choices=("fc7", "pool"), default="fc7")
    train.add_argument("--vgg-weights", default="none", help="none, imagenet or a weights file")
    train.add_argument(
        "--model",
        choices=KINDS,
        default=ModelConfig.kind,
        help="cnn-lstm: pooled image vector (baseline); attention: question-"
        "guided attention over a feature map with coordinates; relation: a "
        "question-conditioned relation module over pairs of cells",
    )
    train.add_argument(
        "--hops", type=int, default=ModelConfig.hops, help="attention rounds (--model attention)"
    )
    train.add_argument(
        "--relation-units",
        type=int,
        default=ModelConfig.relation_units,
        help="width of g, run per pair of cells (--model relation)",
    )
    train.add_argument("--embed-dim", type=int, default=64)
    train.add_argument("--lstm-units", default="64", help="comma list, one per LSTM layer")
    train.add_argument("--hidden", type=int, default=128)
    train.add_argument("--fusion", choices=("product", "concat"), default="product")
    train.add_argument("--dropout", type=float, default=0.2)
    train.add_argument("--cache-dir", help="where frozen VGG features are cached")
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    train.set_defaults(handler=cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate a model; table + JSON report + confusion PNG")
    ev.add_argument("model_dir")
    _dataset_args(ev, split_default="test", for_training=False)
    ev.add_argument("--report", default="vqa-report.json", help="JSON report path")
    ev.add_argument("--confusion", help="PNG path (default: next to the report)")
    ev.add_argument("--cache-dir", help="where frozen VGG features are cached")
    ev.set_defaults(handler=cmd_evaluate)

    gen = sub.add_parser("generate", help="write a generated data set")
    gen.add_argument("kind", choices=("shapes",), help="shapes: a Sort-of-CLEVR-style set")
    gen.add_argument("out", type=Path, help="folder to write (images/ + questions.jsonl)")
    gen.add_argument("--images", type=int, default=ShapesConfig.images)
    gen.add_argument("--seed", type=int, default=ShapesConfig.seed)
    gen.add_argument("--force", action="store_true", help="replace a generated set in OUT")
    gen.set_defaults(handler=cmd_generate)

    pr = sub.add_parser("predict", help="answer a question about an image")
    pr.add_argument("model_dir")
    pr.add_argument("--image", required=True)
    pr.add_argument(
        "--question",
        required=True,
        action="append",
        help="a question; repeat for several about the same image",
    )
    pr.add_argument("--top", type=int, default=3)
    pr.add_argument(
        "--json", action="store_true", help='one line per question: {"question", "answers", "unknown_words"}'
    )
    pr.add_argument(
        "--explain", metavar="PNG", help="write the image with where the model looked (first question)"
    )
    pr.set_defaults(handler=cmd_predict)
    return parser


def _dataset_args(parser: argparse.ArgumentParser, split_default: str, for_training: bool) -> None:
    group = parser.add_argument_group("dataset")
    group.add_argument("--dataset", choices=DATASETS, required=True)
    group.add_argument("--split", default=split_default, help="easy-vqa: train or test")
    group.add_argument("--questions", help="vqa2: questions JSON")
    group.add_argument("--annotations", help="vqa2: annotations JSON")
    group.add_argument("--images", help="vqa2: COCO image folder")
    if for_training:
        group.add_argument("--train", help="jsonl: training manifest")
    else:
        group.add_argument("--data", help="jsonl: manifest to evaluate on")
    group.add_argument("--max-questions", type=int, help="use only the first N questions")


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


def _int_list(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise UserError(f"{name} must be a comma list of positive integers, not {text!r}")
    return values


def cmd_train(args: argparse.Namespace) -> int:
    from recognisers.modeldir import check_writable_target, staged_model_dir
    from recognisers.training import HISTORY_CSV, HISTORY_PNG, plot_history
    from vqa.answerer import KIND
    from vqa.features import EncoderConfig
    from vqa.trainer import TrainSettings, settings_for, train

    check_writable_target(Path(args.out), args.force, KIND)
    weights = None if args.vgg_weights.lower() == "none" else args.vgg_weights
    defaults = settings_for(args.model)
    default_size = defaults.encoder.image_size if args.image_encoder == "compact" else 224
    filters = _int_list(args.filters, "--filters") if args.filters else defaults.encoder.filters
    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate or defaults.learning_rate,
        val_fraction=args.val_fraction,
        patience=args.patience,
        seed=args.seed,
        top_answers=args.top_answers,
        cache_dir=args.cache_dir,
        verbose=0 if args.quiet else 2,
        encoder=EncoderConfig(
            args.image_encoder, args.image_size or default_size, filters, args.vgg_layer, weights
        ),
        network=ModelConfig(
            args.model,
            args.embed_dim,
            _int_list(args.lstm_units, "--lstm-units"),
            args.hidden,
            args.fusion,
            args.dropout,
            args.hops,
            args.relation_units,
        ),
    )
    settings.encoder.check()
    settings.network.check(settings.encoder)
    dataset = read_dataset(args)
    with staged_model_dir(args.out, kind=KIND, force=args.force) as workdir:
        model = train(dataset, workdir, settings)
        model.save(workdir)
        plot_history(workdir / HISTORY_CSV, workdir / HISTORY_PNG, f"vqa: {dataset.name}")
    info = model.info
    print(
        f"saved {args.out}: {len(model.answers)} answers, {info['train_questions']} training "
        f"questions, best epoch {info['best_epoch']}/{info['epochs_run']}, validation "
        f"accuracy {100 * (info['validation_accuracy'] or 0):.2f}%, {info['train_seconds']} s"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recognisers.modeldir import write_json
    from recognisers.paths import check_output_file
    from recognisers.tables import print_table
    from vqa.answerer import VQAModel
    from vqa.evaluation import evaluate, plot_confusion, report_rows
    from vqa.features import default_cache_dir

    report_path = Path(args.report)
    confusion = Path(args.confusion) if args.confusion else report_path.with_suffix(".confusion.png")
    check_output_file(report_path, "--report")
    check_output_file(confusion, "--confusion")
    model = VQAModel.load(args.model_dir)
    dataset = read_dataset(args)
    # only a frozen VGG encoder uses the cache; the compact CNN ignores it
    report, predictions = evaluate(model, dataset, args.model_dir, args.cache_dir or default_cache_dir())
    report["confusion_png"] = str(confusion)
    plot_confusion(dataset.answers, predictions, report["per_type"], confusion, f"vqa: {dataset.name}")
    write_json(report_path, report)
    print_table(f"vqa evaluate: {dataset.name}", report_rows(report))
    print(f"report: {report_path}  confusion matrix: {confusion}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from vqa.shapes import write_shapes_set

    manifest = write_shapes_set(args.out, ShapesConfig(images=args.images, seed=args.seed), force=args.force)
    print(f"wrote {args.images} images and their questions to {manifest}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from vqa.answerer import VQAModel

    questions = args.question
    if any(not q.strip() for q in questions):
        raise UserError("empty question")
    if args.top < 1:
        raise UserError("--top must be at least 1")
    model = VQAModel.load(args.model_dir)
    if args.explain and model.encoder_config.frozen:
        raise UserError("--explain needs a model with the compact image encoder")
    # one image, many questions: predict_batch encodes the image once
    results = model.predict_batch([args.image] * len(questions), questions, top=args.top)
    for question, answers in zip(questions, results):
        unknown = model.questions.unknown_words(question)
        none_known = set(unknown) >= set(model.questions.words(question))  # also: no word at all
        _warn_unknown(question, unknown, none_known, len(questions) > 1)
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


if __name__ == "__main__":
    sys.exit(main())
