"""The HTTP API through FastAPI's TestClient: every endpoint, every error code, limits, API key."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from vqa_helpers import COLOURS, SHAPES, draw_shape

from captcha.data import load_folder
from captcha.model import FORMAT_VERSION as CAPTCHA_FORMAT
from captcha_vqa.app import create_app
from captcha_vqa.batching import MicroBatcher
from captcha_vqa.config import API_KEY_ENV, ServeConfig
from captcha_vqa.models import Loaded
from recognisers.errors import UserError

READ, ANSWER = "/v1/captcha/read", "/v1/vqa/answer"


@pytest.fixture(scope="session")
def loaded(captcha_model_dir, vqa_model_dir):
    return Loaded.load(str(captcha_model_dir), str(vqa_model_dir))


def client_for(loaded: Loaded, config: ServeConfig = ServeConfig()) -> TestClient:
    return TestClient(create_app(config, loaded))


@pytest.fixture(scope="module")
def client(loaded):
    with client_for(loaded) as c:
        yield c


@pytest.fixture(scope="module")
def captchas(captcha_data):
    """(path, label, bytes) of a few test CAPTCHAs."""
    return [(s.path, s.label, s.path.read_bytes()) for s in load_folder(captcha_data / "test")[:8]]


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def red_circle() -> bytes:
    return png(draw_shape("circle", "red", np.random.default_rng(5)))


def files(*blobs: bytes) -> list:
    return [("image", (f"{i}.png", b, "image/png")) for i, b in enumerate(blobs)]


def error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "Traceback" not in detail
    return detail


def test_health_and_models(client, loaded):
    assert client.get("/healthz").json() == {"status": "ok", "captcha": True, "vqa": True}
    models = client.get("/v1/models").json()
    assert models["captcha"]["charset"] == loaded.captcha.charset and models["captcha"]["lengths"] == [4]
    assert models["captcha"]["reader"] == "segment" and models["captcha"]["format_version"] == CAPTCHA_FORMAT
    assert models["vqa"]["answer_vocabulary_size"] == len(COLOURS) + len(SHAPES)
    assert "epochs" in str(models["vqa"]["training"]) or models["vqa"]["training"]


def test_captcha_read_multipart_matches_the_model_in_order(client, loaded, captchas):
    response = client.post(READ, files=files(*(b for _, _, b in captchas)))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    direct = loaded.captcha.read_each([p for p, _, _ in captchas])
    assert [r["text"] for r in results] == [d.text for d in direct]
    assert np.allclose([r["confidence"] for r in results], [d.confidence for d in direct], atol=1e-5)
    assert sum(r["text"] == label for r, (_, label, _) in zip(results, captchas)) >= 5
    first = results[0]
    assert first["reader"] == "segment" and first["ms"] > 0
    assert [c["char"] for c in first["characters"]] == list(first["text"])
    for c in first["characters"]:
        x0, y0, x1, y1 = c["box"]
        assert 0 <= x0 < x1 and 0 <= y0 < y1 and 0 < c["probability"] <= 1


def test_boxes_of_a_huge_captcha_are_in_the_pixels_sent(client, captchas):
    """Readers shrink images over 1,024 px a side; the boxes come back in the sent image's pixels."""
    small = Image.open(io.BytesIO(captchas[0][2])).convert("L")
    factor = -(-1200 // small.width)  # a whole factor taking the width past 1,024
    big = small.resize((small.width * factor, small.height * factor), Image.Resampling.NEAREST)
    results = [client.post(READ, files=files(png(im))).json()["results"][0] for im in (small, big)]
    assert results[1]["text"] == results[0]["text"]
    for a, b in zip(results[0]["characters"], results[1]["characters"]):
        assert np.allclose(np.array(b["box"]) / factor, a["box"], atol=2), (a["box"], b["box"])


def test_captcha_read_json_base64_and_data_uri(client, captchas):
    (_, _, a), (_, _, b) = captchas[:2]
    uri = "data:image/png;base64," + base64.b64encode(b).decode()
    by_json = client.post(READ, json={"images": [base64.b64encode(a).decode(), uri]}).json()
    by_form = client.post(READ, files=files(a, b)).json()
    assert [r["text"] for r in by_json["results"]] == [r["text"] for r in by_form["results"]]


def test_vqa_answer_multipart_and_json(client, loaded, red_circle):
    form = {"question": ["what color is the shape?", "what shape is in the image?"], "top": "2"}
    response = client.post(ANSWER, files=files(red_circle), data=form)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["question"] for r in results] == form["question"]
    assert all(len(r["answers"]) == 2 for r in results)
    colour, shape = (r["answers"][0]["answer"] for r in results)
    assert colour in COLOURS and shape in SHAPES
    image = np.asarray(Image.open(io.BytesIO(red_circle)).convert("RGB"))
    expected = loaded.vqa.predict(image, form["question"][0], top=2)
    assert [(a["answer"], pytest.approx(a["probability"], abs=1e-4)) for a in results[0]["answers"]] == [
        (a, p) for a, p in expected
    ]
    by_json = client.post(
        ANSWER,
        json={"image": base64.b64encode(red_circle).decode(), "questions": form["question"][:1], "top": 2},
    ).json()
    assert by_json["results"][0] == results[0]


@pytest.mark.parametrize(
    "kwargs, status, words",
    [
        ({"files": files(b"just some text")}, 415, "not an image"),
        ({"files": files(b"")}, 415, "empty"),
        ({"files": files(png(Image.new("L", (3, 3))))}, 415, "too small"),
        ({"files": files(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)}, 415, "image"),
        ({"content": b"raw bytes", "headers": {"content-type": "text/plain"}}, 415, "multipart"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "JSON"),
        (
            {"content": b"[" * 100_000 + b"]" * 100_000, "headers": {"content-type": "application/json"}},
            400,
            "JSON",
        ),
        ({"json": {"images": ["@@not base64@@"]}}, 400, "base64"),
        ({"json": {"images": []}}, 422, "images"),
        ({"json": {"pictures": ["x"]}}, 422, "images"),
        ({"json": {"images": ["aGk="] * 65}}, 422, "images"),
        ({"data": {"note": "no file"}}, 422, "image"),
        ({"data": {"image": "a text field"}}, 422, "must be a file"),
    ],
)
def test_captcha_read_errors(client, kwargs, status, words):
    assert words.lower() in error(client.post(READ, **kwargs), status).lower()


def test_too_many_files_is_refused(client, captchas):
    assert "at most 64" in error(client.post(READ, files=files(*[captchas[0][2]] * 65)), 422)


@pytest.mark.parametrize(
    "data, status, words",
    [
        ({}, 422, "question"),
        ({"question": "   "}, 422, "question"),
        ({"question": "x" * 301}, 422, "characters"),
        ({"question": "what shape?", "top": "0"}, 422, "top"),
        ({"question": "what shape?", "top": "many"}, 422, "top"),
        ({"question": "what shape?", "top": "\u00b2"}, 422, "top"),  # a digit to isdigit(), not to int()
    ],
)
def test_vqa_answer_errors(client, red_circle, data, status, words):
    assert words in error(client.post(ANSWER, files=files(red_circle), data=data), status)


def test_a_question_that_is_not_text_is_refused(client, red_circle):
    # a lone surrogate, as a JSON escape can carry it, would fail deep inside TensorFlow
    body = {"image": base64.b64encode(red_circle).decode(), "questions": ["what shape is \ud800?"]}
    sent = client.post(ANSWER, content=json.dumps(body), headers={"content-type": "application/json"})
    assert "not valid text" in error(sent, 422)


def test_vqa_needs_exactly_one_image(client, red_circle):
    two = client.post(ANSWER, files=files(red_circle, red_circle), data={"question": "what shape?"})
    assert "exactly one" in error(two, 422)
    assert "top" in error(client.post(ANSWER, json={"image": "aGk=", "questions": ["q"], "top": 99}), 422)


def huge_png_header(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge size: refused from the header, never decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def test_limits_refuse_before_decoding(loaded, captchas):
    config = replace(ServeConfig(), max_body_bytes=20_000, max_side=150)
    with client_for(loaded, config) as small:
        assert "limit" in error(small.post(READ, files=files(b"\0" * 30_000)), 413)
        wide = png(Image.new("L", (200, 40), 255))
        assert "200 x 40" in error(small.post(READ, files=files(wide)), 413)
        started = time.perf_counter()
        assert "limit" in error(small.post(READ, files=files(huge_png_header(60_000, 60_000))), 413)
        assert time.perf_counter() - started < 1.0  # nothing was decoded
        assert small.post(READ, files=files(captchas[0][2])).status_code == 200


def test_pillow_bomb_guard_answers_413(client):
    assert "too large" in error(client.post(READ, files=files(huge_png_header(4000, 30_000))), 413)


def test_a_missing_model_is_503(loaded, captchas, red_circle):
    only_captcha = Loaded(captcha=loaded.captcha, captcha_info=loaded.captcha_info)
    with client_for(only_captcha) as c:
        assert c.get("/healthz").json()["vqa"] is False
        assert "VQA" in error(c.post(ANSWER, files=files(red_circle), data={"question": "q"}), 503)
        assert c.get("/v1/models").json()["vqa"] is None
    with client_for(Loaded(vqa=loaded.vqa, vqa_info=loaded.vqa_info)) as c:
        assert "CAPTCHA" in error(c.post(READ, files=files(captchas[0][2])), 503)


def test_api_key(loaded, captchas, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "s3cret")
    with client_for(loaded) as c:
        assert c.get("/healthz").status_code == 200  # health and the page stay open
        assert c.get("/").status_code == 200
        assert "X-API-Key" in error(c.get("/v1/models"), 401)
        assert error(c.post(READ, files=files(captchas[0][2]), headers={"X-API-Key": "wrong"}), 401)
        ok = c.post(READ, files=files(captchas[0][2]), headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200


def test_page_docs_and_schema_are_served(client):
    assert "<html" in client.get("/").text.lower()
    docs = client.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/v1/models", READ, ANSWER} <= set(paths)
    assert set(paths[READ]["post"]["requestBody"]["content"]) == {"multipart/form-data", "application/json"}


def test_concurrent_requests_are_batched(loaded, captchas):
    with client_for(loaded) as c:
        batcher = c.app.state.batchers["captcha"]
        before = batcher.batches
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda i: c.post(READ, files=files(captchas[i % 8][2])), range(32)))
        texts = [r.json()["results"][0]["text"] for r in responses]
        alone = [c.post(READ, files=files(b)).json()["results"][0]["text"] for _, _, b in captchas]
        assert texts == [alone[i % 8] for i in range(32)]
        assert batcher.batches - before - 8 < 32  # some requests shared a model call


def test_batcher_keeps_order_isolates_errors_and_never_blocks_the_loop():
    calls = []

    def slow_double(items):
        calls.append(len(items))
        if "bad" in items:
            raise ValueError("bad item")
        time.sleep(0.2)
        return [2 * x for x in items]

    async def scenario():
        batcher = MicroBatcher(slow_double, "test", wait_ms=20)
        batcher.start()
        ticks = 0

        async def ticker():
            nonlocal ticks
            for _ in range(10):
                await asyncio.sleep(0.01)
                ticks += 1

        results = await asyncio.gather(
            *[batcher.submit([i, i + 100]) for i in range(5)],
            batcher.submit(["bad"]),
            ticker(),
            return_exceptions=True,
        )
        await batcher.stop()
        return results, ticks

    results, ticks = asyncio.run(scenario())
    assert results[:5] == [[2 * i, 2 * i + 200] for i in range(5)]
    assert isinstance(results[5], ValueError)
    assert calls[0] == 11  # the six requests went through one call first
    assert ticks == 10  # the loop ran while the model "thought"


def test_transparent_pixels_decode_as_white_paper():
    from captcha_vqa.uploads import decode_image

    clear = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    clear.putpixel((3, 3), (0, 0, 0, 255))
    grey = decode_image(png(clear), ServeConfig(), mode="L")
    assert grey.shape == (10, 20) and grey[0, 0] == 255 and grey[3, 3] == 0
    assert decode_image(png(clear), ServeConfig()).shape == (10, 20, 3)


def test_a_port_in_use_is_one_error_line():
    import socket

    from captcha_vqa.cli import check_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", port)  # free again
