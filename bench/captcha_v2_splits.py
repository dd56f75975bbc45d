"""captcha-images-v2 over several 80/20 splits: how much the held-out figure moves with the split.

The main bench reports split seed 0, on which some early design choices were checked; other
split seeds give held-out sets that no choice ever saw. Same training settings as the bench.

    .venv/bin/python bench/captcha_v2_splits.py [--v2 DIR] [--splits 1 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from captcha.data import load_folder, split  # noqa: E402
from captcha.evaluate import evaluate  # noqa: E402
from captcha.train import train  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "captcha" / "captcha-images-v2"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--v2", type=Path, default=DATASET)
    p.add_argument("--splits", type=int, nargs="+", default=[1, 2])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-captcha-v2-splits")
    args = p.parse_args()
    if not args.v2.is_dir():
        print(f"captcha_v2_splits: error: dataset folder not found: {args.v2}", file=sys.stderr)
        return 1
    samples = load_folder(args.v2)
    for seed in args.splits:
        train_part, test_part = split(samples, 0.2, seed)
        started = time.perf_counter()
        solver = train(train_part, args.work / f"split{seed}", epochs=40, width=32, seed=0,
                       force=True, verbose=0, log=lambda line: None)
        seconds = time.perf_counter() - started
        r = evaluate(solver, test_part)
        print(f"split seed {seed}: sequence {100 * r['sequence_accuracy']:.2f}%, "
              f"chars {100 * r['char_accuracy']:.2f}%, segmentation failures "
              f"{100 * r['segmentation_failure_rate']:.2f}%, training {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
