"""CAPTCHA benchmark: every real set and every generated style, default flags, one table.

Each real set in ``../shared/datasets/captcha/`` is split 80/20 by file with seed 0; training
(``captcha train`` defaults: ``--reader auto`` carves its own validation slice from the 80%)
never sees the 20% the figures come from. Every style of the built-in generator
(``captcha.synth.STYLES``, so new styles appear here by themselves) is trained and tested on
generated folders with different seeds, at 4 glyphs, and so are two variants
(:data:`GENERATED`): variable length and lower case. Nothing is set per set: what differs, the code chooses
on validation. CAPTCHAs/s is batch reading of the held-out files (decoding included, median of
three runs after a warm-up). Each set runs in a fresh process (:func:`run_apart`). The
zero-shot column is read from the JSON that ``bench/ddddocr_baseline.py`` writes (empty where
it has no figure).

    .venv/bin/python bench/captcha_bench.py [--sets cc-digits,noisy] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from captcha.data import Sample, load_folder, split  # noqa: E402
from captcha.model import SegmentConfig  # noqa: E402
from captcha.readers import READERS, CaptchaReader, ReaderConfig  # noqa: E402
from captcha.sequence import SequenceConfig  # noqa: E402
from captcha.synth import DEFAULT_CHARSET, STYLES, generate  # noqa: E402
from recognisers.modeldir import write_json  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets" / "captcha"
WORK = ROOT / "runs" / "bench-captcha"
STYLE_COUNTS = {"full": (3000, 500), "quick": (600, 100)}  # generated train / test images
QUICK_CAP = (1000, 300)  # --quick: at most this many training / held-out images of a real set
STYLE_SEEDS = (101, 202)
# Generated sets: every style at 4 glyphs, and variants with what the unseen styles of issue 7
# bring that 4 glyphs of the default charset do not: labels of 4 to 8 glyphs (the transparent
# style's widely spaced ones), six lower-case letters (the curved-lines style's).
LOWER = "abcdefghjkmnpqrstuvwxyz"  # no i, l, o: ambiguous beside each other in some fonts
GENERATED: dict[str, tuple[str, int | tuple[int, int], str]] = {
    **{style: (style, 4, DEFAULT_CHARSET) for style in STYLES},
    "transparent-4to8": ("transparent", (4, 8), DEFAULT_CHARSET),
    "curved-lines-6lower": ("curved-lines", 6, LOWER),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", type=Path, default=DATASETS)
    p.add_argument("--sets", default="", help="comma-separated set or style names (default: all)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: real sets capped at {QUICK_CAP[0]}/{QUICK_CAP[1]} images, "
        f"styles {STYLE_COUNTS['quick'][0]}/{STYLE_COUNTS['quick'][1]}",
    )
    p.add_argument("--reader", choices=READERS, default="auto")
    p.add_argument("--work", type=Path, default=WORK)
    p.add_argument("--json", type=Path, help="default: WORK/results.json (--work's folder)")
    p.add_argument(
        "--ddddocr",
        type=Path,
        default=WORK / "ddddocr.json",
        help="zero-shot accuracies written by bench/ddddocr_baseline.py",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.json = args.json or args.work / "results.json"  # two benches with their own --work keep their own
    return args


def real_sets(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []


def held_out_split(name: str, args) -> tuple[list[Sample], list[Sample]]:
    """(training, held-out) samples of a real set or a generated style."""
    if name in GENERATED:
        style, length, charset = GENERATED[name]
        counts = STYLE_COUNTS["quick" if args.quick else "full"]
        parts = []
        for part, count, seed in zip(("train", "test"), counts, STYLE_SEEDS):
            folder = args.work / "styles" / name / part
            if not folder.is_dir() or len(list(folder.glob("*.png"))) != count:
                for old in folder.glob("*.png"):
                    old.unlink()
                generate(folder, count, length, charset, style=style, seed=seed)
            parts.append(load_folder(folder))
        return parts[0], parts[1]
    train, test = real_split(args.datasets / name, args.seed)
    return (train[: QUICK_CAP[0]], test[: QUICK_CAP[1]]) if args.quick else (train, test)


def real_split(folder: Path, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(training, held-out) of a real set: 80/20 by file."""
    return split(load_folder(folder), 0.2, seed)


def run_set(name: str, args) -> dict:
    """Train with default flags on one set's training part, measure on its held-out part."""
    train, test = held_out_split(name, args)
    started = time.perf_counter()
    seed = args.seed  # both readers' (as captcha train --seed)
    config = ReaderConfig(args.reader, SegmentConfig(seed=seed), SequenceConfig(seed=seed))
    reader = CaptchaReader(config).fit(
        train, log=lambda line: print(f"[{name}] {line}", flush=True), verbose=False
    )
    reader.save(args.work / "models" / name, force=True)
    seconds = time.perf_counter() - started
    report = reader.evaluate(test).metrics
    rates = reading_rates(reader, [s.path for s in test])
    row = {
        "set": name,
        "train_images": len(train),
        "held_out": len(test),
        "sequence_accuracy": report["sequence_accuracy"],
        "char_accuracy": report["char_accuracy"],
        "reader": report["reader"],
        "read_by": report["read_by"],
        "train_seconds": round(seconds, 1),
        "captchas_per_second": round(statistics.median(rates), 1),
        "rates": rates,
        "selection": reader.selection,
    }
    print(f"[{name}] {json.dumps({k: row[k] for k in list(row)[:10]})}", flush=True)
    return row


def run_apart(name: str, args) -> dict:
    """:func:`run_set` in a fresh process, so that a seeded row repeats whatever ran before it.

    In one process, a seeded training after another set's can drift from the same training run
    alone (the tiny sequence network: the second epoch's loss differed in its 6th digit, then
    more; op determinism did not help), so rows depended on the order of ``--sets``.
    """
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(run_set, name, args).result()


def reading_rates(reader, paths: list, runs: int = 3) -> list[float]:
    """CAPTCHAs/s of ``runs`` batch reads of ``paths`` (decoding the files included), after a
    warm-up read that traces the predict functions."""
    reader.predict_batch(paths[:200])
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        reader.predict_batch(paths)
        rates.append(len(paths) / (time.perf_counter() - started))
    return rates


def table(rows: list[dict], zero_shot: dict) -> str:
    """The README's markdown table."""
    lines = [
        "| set (held-out images) | sequence accuracy | char accuracy | reader | training | "
        "CAPTCHAs/s | ddddocr zero-shot |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        z = zero_shot.get(r["set"])
        lines.append(
            f"| {r['set']} ({r['held_out']:,}) | **{r['sequence_accuracy']:.2%}** | "
            f"{r['char_accuracy']:.2%} | {r['reader']} | {r['train_seconds']:.0f} s "
            f"({r['train_images']:,} images) | {r['captchas_per_second']:,.0f} | "
            f"{'' if z is None else f'{z:.1%}'} |"
        )
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    names = real_sets(args.datasets) + list(GENERATED)
    if args.sets:
        wanted = [n.strip() for n in args.sets.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            print(
                f"captcha_bench: error: unknown set(s) {', '.join(unknown)}; known: {', '.join(names)}",
                file=sys.stderr,
            )
            return 1
        names = wanted
    zero_shot = json.loads(args.ddddocr.read_text()) if args.ddddocr.is_file() else {}
    results = {
        "command": " ".join(sys.argv),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "quick": args.quick,
        "sets": [],
    }
    for name in names:
        results["sets"].append(run_apart(name, args))
        write_json(args.json, results)  # a long run keeps what it has measured so far
    results["load_after"] = os.getloadavg()
    write_json(args.json, results)
    print(table(results["sets"], zero_shot))
    print(f"load average before/after: {results['load_before']} / {results['load_after']}; json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
