"""Test-wide settings: CPU only, quiet TensorFlow, no network needed."""

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

CAPTCHA_CHARSET = "ABCDEFGH23"


@pytest.fixture(scope="session")
def captcha_data(tmp_path_factory):
    """Generated CAPTCHAs (4 glyphs of CAPTCHA_CHARSET): ``train`` (400) and ``test`` (60)."""
    from captcha.cli import main

    root = tmp_path_factory.mktemp("captcha")
    common = ["--length", "4", "--charset", CAPTCHA_CHARSET]
    assert main(["generate", str(root / "train"), "--count", "400", *common, "--seed", "1"]) == 0
    assert main(["generate", str(root / "test"), "--count", "60", *common, "--seed", "2"]) == 0
    return root


@pytest.fixture(scope="session")
def captcha_model_dir(captcha_data):
    """A tiny CAPTCHA model trained once per session on ``captcha_data/train`` (a few seconds)."""
    from captcha.cli import main

    assert (
        main(
            [
                "train",
                str(captcha_data / "train"),
                "--out",
                str(captcha_data / "model"),
                "--epochs",
                "4",
                "--reader",
                "segment",
                "--seed",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    return captcha_data / "model"


# The baseline kind (not the default, attention): the quickest to train, and the model whose
# explanation is gradient saliency (the attention kind's maps are tested in test_vqa_spatial.py).
VQA_TINY_TRAIN_ARGS = [
    "--model",
    "cnn-lstm",
    "--epochs",
    "12",
    "--image-size",
    "32",
    "--filters",
    "8,16",
    "--embed-dim",
    "16",
    "--lstm-units",
    "16",
    "--hidden",
    "32",
    "--batch-size",
    "16",
    "--learning-rate",
    "0.002",  # 0.005 left the model on a plateau (61% validation) on an AVX2-only machine
    "--patience",
    "4",
    "--val-fraction",
    "0.2",
    "--seed",
    "0",
    "--quiet",
]


@pytest.fixture(scope="session")
def vqa_sets(tmp_path_factory):
    """(train manifest, test manifest) of the tiny shapes task (tests/vqa_helpers.py): 240 and 60
    images, one coloured shape each, a colour and a shape question per image."""
    from vqa_helpers import make_shapes_set

    root = tmp_path_factory.mktemp("shapes")
    return make_shapes_set(root / "train", 240, seed=1), make_shapes_set(root / "test", 60, seed=2)


@pytest.fixture(scope="session")
def vqa_model_dir(vqa_sets, tmp_path_factory):
    """A tiny VQA model trained once per session on ``vqa_sets`` through `vqa train`."""
    from vqa.cli import main

    out = tmp_path_factory.mktemp("models") / "tiny"
    argv = ["train", "--dataset", "jsonl", "--train", str(vqa_sets[0]), "--out", str(out)]
    assert main([*argv, *VQA_TINY_TRAIN_ARGS]) == 0
    return out


@pytest.fixture(scope="session")
def vqa_sample(vqa_sets):
    """One image of the tiny training set."""
    return vqa_sets[0].parent / "img0000.png"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(captcha_model_dir, vqa_model_dir, tmp_path_factory):
    """`python -m captcha_vqa serve` on both tiny models, as a user starts it; yields its URL."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    root = Path(__file__).resolve().parents[1]
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    env.pop("CAPTCHA_VQA_API_KEY", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "captcha_vqa",
                "serve",
                "--captcha",
                str(captcha_model_dir),
                "--vqa",
                str(vqa_model_dir),
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start: " + log.read_text()
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
