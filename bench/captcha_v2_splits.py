"""captcha-images-v2 over several 80/20 splits: how much the held-out figure moves with the split.

The main bench reports split seed 0, on which some early design choices were checked; other
split seeds give held-out sets that no choice ever saw. Default flags (``--reader auto``), as
the bench; the target is on the median over split seeds 0, 1 and 2.

    .venv/bin/python bench/captcha_v2_splits.py [--v2 DIR] [--splits 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from captcha.data import load_folder, split  # noqa: E402
from captcha.readers import CaptchaReader  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "captcha" / "captcha-images-v2"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--v2", type=Path, default=DATASET)
    p.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-captcha-v2-splits")
    args = p.parse_args()
    if not args.v2.is_dir():
        print(f"captcha_v2_splits: error: dataset folder not found: {args.v2}", file=sys.stderr)
        return 1
    samples = load_folder(args.v2)
    accuracies = []
    for seed in args.splits:
        train_part, test_part = split(samples, 0.2, seed)
        started = time.perf_counter()
        reader = CaptchaReader().fit(train_part, log=lambda line: None, verbose=False)
        reader.save(args.work / f"split{seed}", force=True)
        seconds = time.perf_counter() - started
        r = reader.evaluate(test_part).metrics
        accuracies.append(r["sequence_accuracy"])
        print(
            f"split seed {seed}: sequence {100 * r['sequence_accuracy']:.2f}%, "
            f"chars {100 * r['char_accuracy']:.2f}%, reader {r['reader']}, "
            f"training {seconds:.0f} s",
            flush=True,
        )
    print(f"median over split seeds {args.splits}: {100 * statistics.median(accuracies):.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
