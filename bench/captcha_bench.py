"""CAPTCHA benchmark: accuracy on the real sets and the project's noisy style, speed; one table.

Each real set is split 80/20 by file with a fixed seed; training sees only the 80% (it carves
its own validation slice from it), the figures come from the 20%. The noisy style is trained
and tested on generated sets with different seeds. Throughput is the batch reading speed on
the really-simple held-out set (files read and decoded inside the timing); latency is one
image through ``CaptchaSolver.predict`` on a loaded model. Times are medians of several runs.

    .venv/bin/python bench/captcha_bench.py [--really-simple DIR] [--v2 DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from captcha.data import load_folder, split  # noqa: E402
from captcha.evaluate import evaluate, read_all  # noqa: E402
from captcha.solver import CaptchaSolver  # noqa: E402
from captcha.synth import generate  # noqa: E402
from captcha.train import train  # noqa: E402
from recognisers.modeldir import write_json  # noqa: E402
from recognisers.tables import print_table  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets" / "captcha"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--really-simple", type=Path, default=DATASETS / "really-simple")
    p.add_argument("--v2", type=Path, default=DATASETS / "captcha-images-v2")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-captcha")
    p.add_argument("--json", type=Path, default=ROOT / "runs" / "bench-captcha" / "results.json")
    p.add_argument("--epochs", type=int, nargs=3, default=(10, 40, 15), metavar=("RS", "V2", "NOISY"))
    p.add_argument("--width", type=int, nargs=3, default=(16, 32, 32), metavar=("RS", "V2", "NOISY"),
                   help="CNN width per set (chosen on validation slices of the training parts)")
    p.add_argument("--noisy-count", type=int, nargs=2, default=(6000, 500), metavar=("TRAIN", "TEST"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=5, help="timing runs (medians are reported)")
    return p.parse_args()


def run_set(name: str, train_samples, test_samples, which: int, args) -> tuple[dict, CaptchaSolver]:
    """Train on one set, measure on its held-out part."""
    started = time.perf_counter()
    solver = train(train_samples, args.work / name, epochs=args.epochs[which], width=args.width[which],
                   seed=args.seed, force=True, verbose=0, log=lambda line: print(f"[{name}] {line}", flush=True))
    seconds = time.perf_counter() - started
    report = evaluate(solver, test_samples)
    print(f"[{name}] sequence {report['sequence_accuracy']:.4f}, chars {report['char_accuracy']:.4f}, "
          f"train {seconds:.0f} s", flush=True)
    keep = ("count", "sequence_accuracy", "char_accuracy", "segmentation_failure_rate",
            "read_by_recognition_rate", "top_confusions")
    return {**{k: report[k] for k in keep}, "train_images": len(train_samples),
            "train_seconds": round(seconds, 1), "epochs": args.epochs[which], "width": args.width[which],
            "training": solver.training}, solver


def speed(solver: CaptchaSolver, samples, repeats: int) -> dict:
    """Median batch throughput over the held-out set and median single-image latency."""
    read_all(solver, samples[:200])  # warm-up: compile the predict function
    rates = [len(samples) / read_all(solver, samples)[1] for _ in range(repeats)]
    paths = [s.path for s in samples[:50]]
    solver.predict(paths[0])
    latencies = []
    for _ in range(repeats):
        for path in paths:
            t = time.perf_counter()
            solver.predict(path)
            latencies.append(1000 * (time.perf_counter() - t))
    return {"batch_captchas_per_second": statistics.median(rates), "batch_rates": rates,
            "single_image_ms": statistics.median(latencies)}


def main() -> int:
    args = parse_args()
    for folder in (args.really_simple, args.v2):
        if not folder.is_dir():
            print(f"captcha_bench: error: dataset folder not found: {folder}", file=sys.stderr)
            return 1
    results: dict = {"command": " ".join(sys.argv), "machine": platform.platform(),
                     "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    rs_train, rs_test = split(load_folder(args.really_simple), 0.2, args.seed)
    results["really-simple"], rs_solver = run_set("really-simple", rs_train, rs_test, 0, args)
    results["speed"] = speed(rs_solver, rs_test, args.repeats)
    v2_train, v2_test = split(load_folder(args.v2), 0.2, args.seed)
    results["captcha-images-v2"], _ = run_set("captcha-images-v2", v2_train, v2_test, 1, args)
    results["noisy"] = run_noisy(args)
    results["load_after"] = os.getloadavg()
    write_json(args.json, results)
    print_table("captcha benchmark (held-out figures)", table_rows(results))
    print(f"load average before/after: {results['load_before']} / {results['load_after']}; json: {args.json}")
    return 0


def run_noisy(args) -> dict:
    """The project's own noisy style: generated train and test sets with different seeds."""
    folders = {}
    for part, count, seed in (("train", args.noisy_count[0], 101), ("test", args.noisy_count[1], 202)):
        folder = args.work / f"noisy-{part}"
        if not folder.is_dir() or len(list(folder.glob("*.png"))) != count:
            generate(folder, count, 4, style="noisy", seed=seed)
        folders[part] = load_folder(folder)
    return run_set("noisy", folders["train"], folders["test"], 2, args)[0]


def table_rows(results: dict) -> list[tuple[str, object]]:
    rows = []
    for name in ("really-simple", "captcha-images-v2", "noisy"):
        r = results[name]
        rows += [(f"{name}: sequence accuracy", r["sequence_accuracy"]),
                 (f"{name}: char accuracy", r["char_accuracy"]),
                 (f"{name}: segmentation failure rate", r["segmentation_failure_rate"]),
                 (f"{name}: train time (s)", r["train_seconds"]),
                 (f"{name}: held-out images", r["count"])]
    rows += [("batch throughput, really-simple (CAPTCHAs/s)", results["speed"]["batch_captchas_per_second"]),
             ("single image, Python API (ms)", results["speed"]["single_image_ms"])]
    return rows


if __name__ == "__main__":
    sys.exit(main())
