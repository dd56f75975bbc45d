"""Every default of the server in one frozen dataclass: the CLI options are built from it."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from recognisers.contract import option
from recognisers.images import MAX_PIXELS

API_KEY_ENV = "CAPTCHA_VQA_API_KEY"  # when set, /v1/* requires it in the API_KEY_HEADER
API_KEY_HEADER = "X-API-Key"
CONFIG_ENV = "CAPTCHA_VQA_SERVE_CONFIG"  # how `--workers N` hands the config to each worker


@dataclass(frozen=True)
class ServeConfig:
    """Models to load, where to listen, and the limits every request is held to."""

    captcha_dir: str | None = None
    vqa_dir: str | None = None
    host: str = option("127.0.0.1", "address to bind (loopback unless told otherwise)")
    port: int = option(8000, "port to listen on")
    workers: int = option(1, "worker processes, each with its own copy of the models")
    max_body_bytes: int = option(
        8 * 1024 * 1024, "largest request body accepted; a larger one is refused unread"
    )
    max_side: int = option(4096, "largest image width or height accepted; checked before decoding")
    max_pixels: int = MAX_PIXELS  # the file tools' limit, checked from the header (413)
    max_images: int = 64  # per /v1/captcha/read request
    max_questions: int = 32  # per /v1/vqa/answer request
    max_question_chars: int = 300
    max_top: int = 10
    batch_wait_ms: float = 2.0  # how long a batch waits for more requests to join it
    max_batch: int = 256  # images (or questions) per model call

    def to_env(self) -> str:
        """The config as JSON, for worker processes (see :func:`from_env`)."""
        import json

        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeConfig:
        import json

        return cls(**json.loads(os.environ[CONFIG_ENV]))


def api_key() -> str | None:
    """The API key the server requires, if the environment sets one (an empty value is none)."""
    return os.environ.get(API_KEY_ENV) or None
