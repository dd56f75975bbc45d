"""Server under load: throughput and p50/p99 latency from N concurrent clients on loopback,
with the single-process batch figure of the same models beside it, in the same run.

    .venv/bin/python bench/serve_bench.py [--captcha runs/demo/captcha] [--vqa runs/demo/vqa]
        [--clients 16] [--seconds 15] [--workers 1] [--images data/generated/captcha-test]

Starts ``python -m captcha_vqa serve`` in a subprocess and drives it with a light keep-alive
HTTP/1.1 client (pre-built multipart requests over asyncio streams), so that the client costs
the shared cores as little as possible. Scenarios: single-image CAPTCHA requests, batch CAPTCHA
requests (32 images each), single-question VQA requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recognisers.backend import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
BOUNDARY = "benchboundary7f3a"


def multipart(fields: list[tuple[str, str | bytes]]) -> bytes:
    """A multipart/form-data body; bytes values are sent as PNG files."""
    out = b""
    for name, value in fields:
        if isinstance(value, bytes):
            out += (
                (
                    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
                    f'filename="x.png"\r\nContent-Type: image/png\r\n\r\n'
                ).encode()
                + value
                + b"\r\n"
            )
        else:
            out += (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            ).encode()
    return out + f"--{BOUNDARY}--\r\n".encode()


def request(path: str, body: bytes, port: int) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; "
        f"boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def client(port: int, requests: list[bytes], stop: float, latencies: list[float], k: int) -> None:
    """One keep-alive connection sending requests back to back until ``stop``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = k
    while time.perf_counter() < stop:
        started = time.perf_counter()
        writer.write(requests[i % len(requests)])
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        if b" 200 " not in status:
            raise RuntimeError(f"{status!r} {body[:200]!r}")
        latencies.append(time.perf_counter() - started)
        i += 1
    writer.close()


async def drive(port: int, requests: list[bytes], clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    await asyncio.gather(*[client(port, requests, stop, latencies, k) for k in range(clients)])
    return latencies


def load(port: int, requests: list[bytes], clients: int, seconds: float, per_request: int) -> dict:
    asyncio.run(drive(port, requests, clients, min(2.0, seconds)))  # warm-up
    started = time.perf_counter()
    latencies = asyncio.run(drive(port, requests, clients, seconds))
    elapsed = time.perf_counter() - started
    ms = sorted(1000 * x for x in latencies)
    return {
        "requests_per_s": len(ms) / elapsed,
        "items_per_s": len(ms) * per_request / elapsed,
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        "requests": len(ms),
    }


def batch_figures(args, captcha_images: list[bytes], vqa_images: list[bytes]) -> dict:
    """Reads/s and answers/s of the same models called directly, in one process, in one batch
    of every image, decoding from bytes inside the timing (as the server does); median of 3."""
    from captcha_vqa.app import decode_all
    from captcha_vqa.config import ServeConfig
    from captcha_vqa.models import load_captcha
    from vqa.model import VQAModel

    def per_second(run, n: int) -> float:
        run()  # warm-up
        times = []
        for _ in range(3):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return n / statistics.median(times)

    figures, config = {}, ServeConfig()
    if args.captcha:
        model, blobs = load_captcha(args.captcha), captcha_images * 2
        figures["captcha"] = per_second(lambda: model.read_each(decode_all(blobs, config, "L")), len(blobs))
    if args.vqa:
        model, blobs = VQAModel.load(args.vqa), vqa_images * 128
        questions = ["what shape is in the image?"] * len(blobs)
        figures["vqa"] = per_second(
            lambda: model.predict_batch(decode_all(blobs, config), questions, top=3), len(blobs)
        )
    return figures


def start_server(args, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "captcha_vqa", "serve", "--port", str(port), "--workers", str(args.workers)]
    cmd += ["--captcha", args.captcha] if args.captcha else []
    cmd += ["--vqa", args.vqa] if args.vqa else []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise SystemExit("the server did not start")
    proc.terminate()
    raise SystemExit("the server did not answer within 180 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captcha", default="runs/demo/captcha")
    parser.add_argument("--vqa", default="runs/demo/vqa")
    parser.add_argument(
        "--images",
        default="data/generated/captcha-test",
        help="CAPTCHA images to send (a folder; default: the demo's test set)",
    )
    parser.add_argument(
        "--vqa-images",
        default="captcha_vqa/static/samples",
        help="a folder whose shape*.png images are asked about",
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch-clients", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", default="runs/bench/serve.json")
    args = parser.parse_args()

    captcha_images = [p.read_bytes() for p in sorted(Path(args.images).glob("*.png"))[:256]]
    if not captcha_images:
        captcha_images = [p.read_bytes() for p in sorted((ROOT / "data/samples/captcha").glob("*.png"))]
    vqa_images = [p.read_bytes() for p in sorted(Path(args.vqa_images).glob("shape*.png"))]
    batch = batch_figures(args, captcha_images, vqa_images)

    proc = start_server(args, args.port)
    rows = []
    try:
        if args.captcha:
            singles = [
                request("/v1/captcha/read", multipart([("image", b)]), args.port) for b in captcha_images
            ]
            rows.append(
                (
                    "CAPTCHA, 1 image per request",
                    args.clients,
                    load(args.port, singles, args.clients, args.seconds, 1),
                    batch["captcha"],
                )
            )
            n = args.batch_size
            batches = [
                request(
                    "/v1/captcha/read",
                    multipart([("image", captcha_images[(i + j) % len(captcha_images)]) for j in range(n)]),
                    args.port,
                )
                for i in range(0, len(captcha_images), n)
            ]
            rows.append(
                (
                    f"CAPTCHA, {n} images per request",
                    args.batch_clients,
                    load(args.port, batches, args.batch_clients, args.seconds, n),
                    batch["captcha"],
                )
            )
        if args.vqa:
            questions = ["what shape is in the image?", "what color is the shape?", "is there a circle?"]
            asks = [
                request("/v1/vqa/answer", multipart([("image", im), ("question", q)]), args.port)
                for im in vqa_images
                for q in questions
            ]
            rows.append(
                (
                    "VQA, 1 question per request",
                    args.clients,
                    load(args.port, asks, args.clients, args.seconds, 1),
                    batch["vqa"],
                )
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    print(
        f"\n{'scenario':32} {'clients':>7} {'items/s':>9} {'req/s':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'batch/s in-process':>19}"
    )
    for name, clients, r, direct in rows:
        print(
            f"{name:32} {clients:>7} {r['items_per_s']:>9.0f} {r['requests_per_s']:>8.0f} "
            f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {direct:>19.0f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "batch_in_process": batch,
                "scenarios": [{"name": n, "clients": c, **r} for n, c, r, _ in rows],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
