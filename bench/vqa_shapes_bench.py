"""Shapes benchmark (Sort-of-CLEVR style): held-out accuracy per question type, training time.

One command, one table, one JSON file:

    .venv/bin/python bench/vqa_shapes_bench.py [--models attention cnn-lstm] [--epochs N]
                                               [--out runs/bench/shapes]

The training set (``--train-images`` images, seed 101) and the held-out set (1,000 images,
seed 404, never looked at while the model was designed) come from ``vqa generate shapes``.
Training uses the default settings of ``vqa train`` for each model kind; its validation
slice is cut from the training images.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recognisers.backend import quiet_tensorflow  # noqa: E402

quiet_tensorflow()


def main() -> int:
    from vqa.config import KINDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=KINDS, default=["attention"])
    parser.add_argument("--train-images", type=int, default=9_800)
    parser.add_argument("--test-images", type=int, default=1_000)
    parser.add_argument("--epochs", type=int, help="default: vqa train's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench/shapes")
    args = parser.parse_args()

    from recognisers.modeldir import write_json
    from recognisers.tables import print_table
    from vqa.config import NetworkConfig, TrainConfig, VQAConfig
    from vqa.data import read_jsonl, split_by_image
    from vqa.model import VQAModel
    from vqa.shapes import ShapesConfig, write_shapes_set

    out = Path(args.out)
    sets = {}
    for name, images, seed in (("train", args.train_images, 101), ("test", args.test_images, 404)):
        folder = out / f"data-{name}-{images}-{seed}"
        manifest = folder / "questions.jsonl"
        if not manifest.is_file():
            write_shapes_set(folder, ShapesConfig(images=images, seed=seed), force=True)
        sets[name] = read_jsonl(manifest)
    runs = []
    for kind in args.models:
        training = TrainConfig(seed=args.seed)
        if args.epochs:
            training = replace(training, epochs=args.epochs)
        model_dir = out / kind
        started = time.perf_counter()
        model = VQAModel(VQAConfig(network=NetworkConfig(model=kind), training=training)).fit(sets["train"])
        model.save(model_dir, force=True)
        wall = time.perf_counter() - started
        loaded = VQAModel.load(model_dir)
        report = loaded.evaluate(sets["test"]).metrics
        # per type on the validation slice too: what a design choice may be made on
        validation = split_by_image(sets["train"], training.val_fraction, training.seed)[1]
        validation_per_type = loaded.evaluate(validation).metrics["per_type"]
        runs.append(
            {
                "model": kind,
                "train_seconds": wall,
                "info": model.info,
                "test_accuracy": report["accuracy"],
                "per_type": report["per_type"],
                "validation_per_type": validation_per_type,
                "questions_per_second": report["questions_per_second"],
            }
        )
        print(f"{kind}: held-out accuracy {100 * report['accuracy']:.2f}%, training {wall:.0f} s", flush=True)
    summary = {
        "train_images": args.train_images,
        "test_images": args.test_images,
        "test_questions": len(sets["test"]),
        "runs": runs,
        "load_average": os.getloadavg(),
    }
    write_json(out / "bench.json", summary)
    rows: list[tuple[str, object]] = []
    for run in runs:
        rows.append((f"{run['model']}: held-out accuracy", run["test_accuracy"]))
        for kind, entry in run["per_type"].items():
            rows.append((f"{run['model']}: {kind} ({entry['count']})", entry["accuracy"]))
        rows.append((f"{run['model']}: validation accuracy", run["info"]["validation_accuracy"]))
        for kind, entry in run["validation_per_type"].items():
            rows.append((f"{run['model']}: validation {kind} ({entry['count']})", entry["accuracy"]))
        rows.append(
            (f"{run['model']}: training s ({run['info']['epochs_run']} epochs)", float(run["train_seconds"]))
        )
    print_table("shapes benchmark (vqa)", rows)
    print(f"JSON: {out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
