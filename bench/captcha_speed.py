"""Reading speed of a saved CAPTCHA model: batch CAPTCHAs/s and one image's latency.

Reads the held-out 20% of a real set (the split ``bench/captcha_bench.py`` uses: 80/20 by file,
seed 0), or with ``--whole`` every file of a folder (a generated style's test folder), with a
model the bench saved, so speed can be measured again on a quiet machine without training
again:

    .venv/bin/python bench/captcha_speed.py runs/bench-captcha/models/really-simple \\
        ../shared/datasets/captcha/really-simple [--runs 5] [--calls 200]

Batch: one ``predict_batch`` of every held-out file, decoding included (median of ``--runs``
after a warm-up). One image: ``predict`` of one file (median of ``--calls``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recognisers.backend import quiet_tensorflow  # noqa: E402

quiet_tensorflow()


def main() -> int:
    from captcha_bench import reading_rates, real_split

    from captcha.data import load_folder
    from captcha.readers import CaptchaReader

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir")
    p.add_argument(
        "folder", type=Path, help="the real set the model's bench run split (--whole: the folder to read)"
    )
    p.add_argument("--seed", type=int, default=0, help="the bench's split seed")
    p.add_argument("--whole", action="store_true", help="read every file of FOLDER (a generated test folder)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--calls", type=int, default=200)
    args = p.parse_args()

    reader = CaptchaReader.load(args.model_dir)
    held_out = load_folder(args.folder) if args.whole else real_split(args.folder, args.seed)[1]
    paths = [s.path for s in held_out]
    rates = reading_rates(reader, paths, args.runs)
    one = []
    for i in range(args.calls):
        started = time.perf_counter()
        reader.predict(paths[i % len(paths)])
        one.append(time.perf_counter() - started)
    result = {
        "model": args.model_dir,
        "held_out": len(paths),
        "captchas_per_second": round(statistics.median(rates), 1),
        "rates": [round(r, 1) for r in rates],
        "one_image_ms": round(1000 * statistics.median(one), 2),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
