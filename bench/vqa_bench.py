"""easy-VQA benchmark: accuracy per seed, per-type accuracy, training time, latency, throughput.

One command, one table, one JSON file:

    .venv/bin/python bench/vqa_bench.py [--seeds 0 1 2] [--model KIND] [--out runs/bench/vqa]

Training uses the default settings of ``vqa train`` (chosen on the validation slice cut from
easy-VQA train; the test split is only used here, for the figures); ``--model`` names another
network kind, with that kind's defaults.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recognisers.backend import quiet_tensorflow  # noqa: E402

quiet_tensorflow()


def main() -> int:
    from vqa.config import KINDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="default: vqa train's")
    parser.add_argument("--model", choices=KINDS, help="default: vqa train's")
    parser.add_argument("--out", default="runs/bench/vqa")
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument("--throughput-runs", type=int, default=5)
    args = parser.parse_args()

    from recognisers.modeldir import write_json
    from recognisers.tables import print_table
    from vqa.config import NetworkConfig, TrainConfig, VQAConfig
    from vqa.data import read_easy_vqa
    from vqa.model import VQAModel

    train_set, test_set = read_easy_vqa("train"), read_easy_vqa("test")
    out = Path(args.out)
    runs = []
    for seed in args.seeds:
        model_dir = out / f"seed{seed}"
        started = time.perf_counter()
        training = (
            TrainConfig(seed=seed) if args.epochs is None else TrainConfig(epochs=args.epochs, seed=seed)
        )
        network = NetworkConfig(model=args.model)
        model = VQAModel(VQAConfig(network=network, training=training)).fit(train_set)
        model.save(model_dir, force=True)
        wall = time.perf_counter() - started
        report = VQAModel.load(model_dir).evaluate(test_set).metrics
        runs.append(
            {
                "seed": seed,
                "train_seconds": wall,
                "epochs_run": model.info["epochs_run"],
                "validation_accuracy": model.info["validation_accuracy"],
                "test_accuracy": report["accuracy"],
                "per_type": report["per_type"],
            }
        )
        print(
            f"seed {seed}: test accuracy {100 * report['accuracy']:.2f}%, "
            f"training {wall:.0f} s, {model.info['epochs_run']} epochs",
            flush=True,
        )

    model = VQAModel.load(out / f"seed{args.seeds[0]}")
    latency_ms = single_question_latency(model, args.latency_calls)
    qps = [model.evaluate(test_set).metrics["questions_per_second"] for _ in range(args.throughput_runs)]
    summary = summarise(runs, latency_ms, qps, test_set)
    summary["load_average"] = os.getloadavg()
    write_json(out / "bench.json", summary)
    print_table("easy-VQA benchmark (vqa)", table_rows(summary))
    print(
        f"load average: {' '.join(f'{v:.2f}' for v in summary['load_average'])}; JSON: {out / 'bench.json'}"
    )
    return 0


def single_question_latency(model, calls: int) -> float:
    """Median ms of ``VQAModel.predict`` on the sample image (file read included)."""
    sample = Path(__file__).resolve().parents[1] / "data" / "samples" / "vqa" / "sample.png"
    model.predict(sample, "what shape is in the image?")
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        model.predict(sample, "what shape is in the image?", top=3)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def summarise(runs, latency_ms, qps, test_set) -> dict:
    per_type = {
        kind: statistics.median(r["per_type"][kind]["accuracy"] for r in runs) for kind in runs[0]["per_type"]
    }
    return {
        "dataset": "easy-vqa standard split",
        "test_questions": len(test_set),
        "runs": runs,
        "median_test_accuracy": statistics.median(r["test_accuracy"] for r in runs),
        "min_test_accuracy": min(r["test_accuracy"] for r in runs),
        "median_per_type_accuracy": per_type,
        "median_train_seconds": statistics.median(r["train_seconds"] for r in runs),
        "max_train_seconds": max(r["train_seconds"] for r in runs),
        "single_question_ms_median": latency_ms,
        "batch_questions_per_second_median": statistics.median(qps),
        "batch_questions_per_second_runs": qps,
    }


def table_rows(summary: dict) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for run in summary["runs"]:
        rows.append((f"test accuracy, seed {run['seed']}", run["test_accuracy"]))
    rows.append(("test accuracy, median", summary["median_test_accuracy"]))
    for kind, acc in summary["median_per_type_accuracy"].items():
        rows.append((f"test accuracy: {kind} (median)", acc))
    for run in summary["runs"]:
        rows.append(
            (f"training s, seed {run['seed']} ({run['epochs_run']} epochs)", float(run["train_seconds"]))
        )
    rows.append(("single question ms (median)", float(summary["single_question_ms_median"])))
    rows.append(("batch questions/s (median)", float(summary["batch_questions_per_second_median"])))
    return rows


if __name__ == "__main__":
    sys.exit(main())
