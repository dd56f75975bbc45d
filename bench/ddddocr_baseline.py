"""Zero-shot baseline: a pretrained CAPTCHA OCR package (ddddocr) on the bench's held-out files.

ddddocr is never a dependency of the project: run this script with the python of a venv of
its own, which needs neither TensorFlow nor this project (ddddocr ships its ONNX model in the
wheel, so it runs offline):

    python3.11 -m venv /work/tools/ddddocr-venv && /work/tools/ddddocr-venv/bin/pip install ddddocr
    /work/tools/ddddocr-venv/bin/python bench/ddddocr_baseline.py

For every set in ../shared/datasets/captcha/ it reads the same held-out 20% as the bench (split
by file with seed 0: the file listing, labels and split of ``captcha.data`` are reimplemented
here without importing the project; ``--list SET`` prints the held-out names so they can be
compared with ``captcha.data.split``). ``--folder NAME=DIR`` adds a whole folder as a test set
(a generated style's test folder). Accuracy is whole-sequence and case-insensitive. Writes
{"set": accuracy, ...} to runs/bench-captcha/ddddocr.json (the bench reads that file).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets" / "captcha"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}  # = captcha.data


def labelled_files(folder: Path) -> list[tuple[Path, str]]:
    """Same files, order and labels as ``captcha.data.load_folder(folder)`` (case "keep")."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    overrides = {}
    if (folder / "labels.csv").is_file():
        with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
            rows = [row for row in csv.reader(fh) if row]
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["filename", "label"]:
            rows = rows[1:]
        overrides = {row[0].strip(): row[1].strip() for row in rows}
    samples = [(p, overrides.get(p.name, p.stem.split("_", 1)[0]).strip()) for p in files]
    return [(p, label) for p, label in samples if label]


def held_out(samples: list, fraction: float = 0.2, seed: int = 0) -> list:
    """The held-out part of ``captcha.data.split(samples, fraction, seed)``."""
    order = np.random.default_rng(seed).permutation(len(samples))
    return [samples[i] for i in sorted(order[: int(round(len(samples) * fraction))])]


def score(ocr, samples: list[tuple[Path, str]]) -> tuple[float, float, dict[str, str]]:
    """Case-insensitive sequence accuracy, images per second (one at a time), and every reading."""
    started, right, readings = time.perf_counter(), 0, {}
    for path, label in samples:
        try:
            text = ocr.classification(path.read_bytes(), png_fix=True).strip()  # RGBA onto white
        except Exception:  # noqa: BLE001  an unreadable file counts as wrong
            text = ""
        readings[path.name] = text
        right += text.lower() == label.lower()
    return right / len(samples), len(samples) / (time.perf_counter() - started), readings


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", type=Path, default=DATASETS)
    p.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also score every file of DIR as set NAME (e.g. a generated test folder)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-captcha" / "ddddocr.json")
    p.add_argument("--list", metavar="SET", help="print the held-out file names of SET and stop")
    p.add_argument("--only", nargs="+", metavar="SET", help="score only these sets")
    p.add_argument("--readings", type=Path, help="also write every file's reading: {set: {file: text}}")
    args = p.parse_args()
    sets = {d.name: held_out(labelled_files(d)) for d in sorted(args.datasets.iterdir()) if d.is_dir()}
    if args.list:
        print("\n".join(path.name for path, _ in sets[args.list]))
        return 0
    for spec in args.folder:
        name, _, folder = spec.partition("=")
        sets[name] = labelled_files(Path(folder))
    if args.only:
        sets = {name: sets[name] for name in args.only}
    import ddddocr

    ocr = ddddocr.DdddOcr(show_ad=False)
    results, readings = {}, {}
    for name, samples in sets.items():
        results[name], rate, readings[name] = score(ocr, samples)
        print(f"{name}: {results[name]:.4f} of {len(samples)} held-out images ({rate:.0f}/s)", flush=True)
    write_json(args.out, results)
    if args.readings:
        write_json(args.readings, readings)
    return 0


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (a temporary sibling renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
