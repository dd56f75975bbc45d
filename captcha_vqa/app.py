"""The FastAPI app: JSON API under ``/v1``, the web page at ``/``, interactive docs at ``/docs``.

Models are loaded before the app is built (:class:`~captcha_vqa.models.Loaded`); each has a
:class:`~captcha_vqa.batching.MicroBatcher` started with the app. Handlers only parse, check
and decode (large uploads in a worker thread), hand the arrays to a batcher and shape the answer. Every
refusal is an :class:`~captcha_vqa.uploads.ApiError` -> a status code and ``{"detail": ...}``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from swagger_ui_bundle import swagger_ui_path  # Swagger UI's own files, served here: no CDN

from captcha.data import shrink_scale
from captcha_vqa.batching import MicroBatcher
from captcha_vqa.config import API_KEY_ENV, API_KEY_HEADER, ServeConfig, api_key
from captcha_vqa.models import Loaded, reader_name
from captcha_vqa.schemas import (
    CAPTCHA_BODY,
    VQA_BODY,
    CaptchaJson,
    CaptchaResponse,
    ErrorBody,
    Health,
    ModelsResponse,
    VQAJson,
    VQAResponse,
)
from captcha_vqa.uploads import ApiError, Fields, decode_image, from_base64, read_fields
from recognisers.errors import UserError
from vqa.text import check_text

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("captcha_vqa")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error codes an operation can answer."""
    return {code: {"model": ErrorBody} for code in codes}


def create_app(config: ServeConfig, loaded: Loaded) -> FastAPI:
    """An app serving the loaded models under the config's limits."""
    batchers: dict[str, MicroBatcher] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if loaded.captcha is not None:
            batchers["captcha"] = MicroBatcher(
                loaded.captcha.read_each, "captcha", config.batch_wait_ms, config.max_batch
            )
        if loaded.vqa is not None:
            batchers["vqa"] = MicroBatcher(
                lambda items: answer_items(loaded.vqa, items), "vqa", config.batch_wait_ms, config.max_batch
            )
        for batcher in batchers.values():
            batcher.start()
        yield
        for batcher in batchers.values():
            await batcher.stop()
        batchers.clear()

    app = FastAPI(
        title="captcha-vqa",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        summary="Read text CAPTCHAs and answer questions about images.",
    )
    app.state.batchers = batchers  # for tests and curious operators: calls and items per model
    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_path), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_error_handlers(app)
    auth, auth_errors = key_check(api_key())

    def batcher(name: str) -> MicroBatcher:
        if name not in batchers:
            raise ApiError(503, f"no {name.upper()} model is loaded on this server")
        return batchers[name]

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="captcha-vqa API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    @app.get("/healthz", response_model=Health, responses=errors(503))
    def healthz() -> Health | JSONResponse:
        """200 once the models are loaded and their batchers run."""
        health = Health(status="ok", captcha="captcha" in batchers, vqa="vqa" in batchers)
        if not batchers:
            return JSONResponse({"detail": "starting: no model is ready yet"}, 503)
        return health

    @app.get("/v1/models", response_model=ModelsResponse, dependencies=auth, responses=errors(*auth_errors))
    def models() -> ModelsResponse:
        """What is loaded: kind, format version, charset and lengths or answer vocabulary size,
        the training summary from meta.json."""
        return ModelsResponse(captcha=loaded.captcha_info, vqa=loaded.vqa_info)

    @app.post(
        "/v1/captcha/read",
        response_model=CaptchaResponse,
        dependencies=auth,
        openapi_extra={"requestBody": CAPTCHA_BODY},
        responses=errors(400, *auth_errors, 413, 415, 422, 503),
    )
    async def captcha_read(request: Request) -> CaptchaResponse:
        """Read one or many CAPTCHAs: multipart files named ``image`` (repeatable) or JSON
        ``{"images": [base64 or data URI, ...]}``; up to 64 per request."""
        started = time.perf_counter()
        reader = batcher("captcha")
        fields = await read_fields(request, config, "image")
        if fields.json is not None:
            body = validated(CaptchaJson, fields.json)
            fields.images = [from_base64(b, f"images[{i}]") for i, b in enumerate(body.images)]
        if not fields.images:
            raise ApiError(422, "no image: send one or more files in a field named 'image'")
        if len(fields.images) > config.max_images:
            raise ApiError(422, f"{len(fields.images)} images; at most {config.max_images} per request")
        arrays = await decoded(fields.images, config, "L")
        readings = await reader.submit(arrays)
        ms = round((time.perf_counter() - started) * 1000, 2)
        results = [
            captcha_result(r, i, loaded.captcha, ms, a.shape)
            for i, (r, a) in enumerate(zip(readings, arrays))
        ]
        return CaptchaResponse.model_validate({"results": results})

    @app.post(
        "/v1/vqa/answer",
        response_model=VQAResponse,
        dependencies=auth,
        openapi_extra={"requestBody": VQA_BODY},
        responses=errors(400, *auth_errors, 413, 415, 422, 503),
    )
    async def vqa_answer(request: Request) -> VQAResponse:
        """Answer questions about one image: multipart ``image`` + one or more ``question`` and
        an optional ``top``, or JSON ``{"image": ..., "questions": [...], "top": 3}``."""
        answerer = batcher("vqa")
        fields = await read_fields(request, config, "image")
        image, questions, top = vqa_request(fields, config)
        array = (await decoded([image], config))[0]
        answers = await answerer.submit([(array, q, top) for q in questions])
        results = [
            {"question": q, "answers": [{"answer": a, "probability": round(p, 6)} for a, p in best]}
            for q, best in zip(questions, answers)
        ]
        return VQAResponse.model_validate({"results": results})

    return app


def key_check(key: str | None) -> tuple[list, tuple[int, ...]]:
    """The dependency that checks the API key, and the error it adds, when a key is set.

    Without a key the schema declares no security at all: it describes the running server.
    """
    if not key:
        return [], ()
    header = APIKeyHeader(
        name=API_KEY_HEADER, auto_error=False, description=f"required because the server sets {API_KEY_ENV}"
    )

    def check_key(given: str | None = Depends(header)) -> None:
        if not hmac.compare_digest((given or "").encode(), key.encode()):
            raise ApiError(401, f"a valid {API_KEY_HEADER} header is required")

    return [Depends(check_key)], (401,)


def validated(model: type[BaseModel], data: dict) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, one_line(exc.errors())) from None


def one_line(problems: Sequence[Mapping[str, Any]]) -> str:
    """Pydantic's validation errors as one readable line: ``field: message; ...``."""
    parts = []
    for problem in problems[:3]:
        where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
        parts.append(f"{where}: {problem.get('msg', 'invalid')}" if where else problem.get("msg", ""))
    return "; ".join(parts) or "invalid request"


INLINE_BYTES = 64 * 1024  # smaller uploads decode in well under a millisecond: no thread hop


async def decoded(blobs: list[bytes], config: ServeConfig, mode: str = "RGB") -> list:
    """:func:`decode_all`, in a worker thread unless the images are small enough to decode at once."""
    if sum(len(b) for b in blobs) <= INLINE_BYTES:
        return decode_all(blobs, config, mode)
    return await asyncio.to_thread(decode_all, blobs, config, mode)


def decode_all(blobs: list[bytes], config: ServeConfig, mode: str = "RGB") -> list:
    """Every image of a request decoded (``mode`` "RGB" or "L"); the first bad one refuses it."""
    many = len(blobs) > 1
    return [
        decode_image(b, config, f"image {i + 1}" if many else "the image", mode) for i, b in enumerate(blobs)
    ]


def vqa_request(fields: Fields, config: ServeConfig) -> tuple[bytes, list[str], int]:
    """The image bytes, the checked questions and ``top`` of a VQA request, however it was sent."""
    if fields.json is not None:
        body = validated(VQAJson, fields.json)
        image, questions, top = from_base64(body.image, "image"), body.questions, body.top
    else:
        if len(fields.images) != 1:
            raise ApiError(422, f"send exactly one file named 'image' (got {len(fields.images)})")
        image, questions = fields.images[0], fields.text.get("question", [])
        top = parse_top(fields.text.get("top", ["1"]), config)
    questions = [q.strip() for q in questions]
    if not questions or not all(questions):
        raise ApiError(422, "ask at least one question, and no empty ones ('question' fields)")
    if len(questions) > config.max_questions:
        raise ApiError(422, f"{len(questions)} questions; at most {config.max_questions} per request")
    if max(len(q) for q in questions) > config.max_question_chars:
        raise ApiError(422, f"a question is over {config.max_question_chars} characters")
    try:
        for question in questions:
            check_text(question)
    except UserError as exc:
        raise ApiError(422, str(exc)) from None
    return image, questions, top


def parse_top(values: list[str], config: ServeConfig) -> int:
    # fullmatch, not isdigit(): isdigit() takes '²', which int() refuses
    if (
        len(values) == 1
        and re.fullmatch(r"[0-9]{1,3}", values[0].strip())
        and 1 <= int(values[0]) <= config.max_top
    ):
        return int(values[0])
    raise ApiError(422, f"top must be one whole number from 1 to {config.max_top}")


def captcha_result(reading, index: int, model, ms: float, shape: tuple[int, ...]) -> dict:
    """One reading as the API answers it, its boxes in the pixels of the image sent.

    A reader shrinks a huge image (:func:`captcha.data.shrink`) and finds its boxes there; the
    page draws them on the image as sent, so they are scaled back.
    """
    if isinstance(reading, UserError):
        raise ApiError(422, f"image {index + 1} cannot be read: {reading}")
    scale = 1.0 / shrink_scale(shape)
    return {
        "text": reading.text,
        "confidence": round(reading.confidence, 6),
        "characters": [
            {"char": c, "probability": round(p, 6), "box": [round(v * scale) for v in box]}
            for c, p, box in zip(reading.text, reading.char_confidences, reading.boxes)
        ],
        "reader": reader_name(model),
        "ms": ms,
    }


def answer_items(model, items: list[tuple[Any, str, int]]) -> list[list[tuple[str, float]]]:
    """One VQA call for many (image array, question, top) items; each keeps its own top."""
    images, questions, tops = zip(*items)
    best = model.predict_batch(list(images), list(questions), top=max(tops))
    return [answers[:top] for answers, top in zip(best, tops)]


def add_error_handlers(app: FastAPI) -> None:
    """Every error is a status code and ``{"detail": "one line"}``; never a traceback."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": one_line(list(exc.errors()))}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server log"}, 500)
