"""``captcha-vqa serve``: load the models once and serve the API and the web page with uvicorn."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from dataclasses import replace

from captcha_vqa.config import API_KEY_ENV, CONFIG_ENV, ServeConfig
from recognisers.backend import quiet_tensorflow
from recognisers.contract import add_config_options, config_from_args
from recognisers.errors import ArgumentParser, UserError, run_cli

PROG = "captcha-vqa"
DEFAULTS = ServeConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="Both recognisers behind one command.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "serve",
        help="serve the models: HTTP API, web page, API docs",
        description=f"Serve a CAPTCHA model, a VQA model or both. Set {API_KEY_ENV} "
        "to require that key in an X-API-Key header on /v1/*.",
    )
    p.add_argument("--captcha", metavar="MODEL_DIR", help="a model directory from `captcha train`")
    p.add_argument("--vqa", metavar="MODEL_DIR", help="a model directory from `vqa train`")
    add_config_options(p, ServeConfig)
    return parser


def config_from(args: argparse.Namespace) -> ServeConfig:
    if not (args.captcha or args.vqa):
        raise UserError("name at least one model: --captcha MODEL_DIR and/or --vqa MODEL_DIR")
    for name in ("port", "workers", "max_body_bytes", "max_side"):
        value = getattr(args, name)
        if value < (0 if name == "port" else 1) or (name == "port" and value > 65535):
            raise UserError(f"--{name.replace('_', '-')} {value} is out of range")
    return replace(config_from_args(ServeConfig, args, DEFAULTS), captcha_dir=args.captcha, vqa_dir=args.vqa)


def build_app_from_env():
    """App factory for uvicorn's worker processes (``--workers N``): config from the environment."""
    from captcha_vqa.app import create_app
    from captcha_vqa.models import Loaded

    config = ServeConfig.from_env()
    return create_app(config, Loaded.load(config.captcha_dir, config.vqa_dir))


def check_port(host: str, port: int) -> None:
    """One error line when the address is taken or not ours (uvicorn would log and exit with 3)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(config: ServeConfig) -> int:
    """Load the models (errors end here, before binding), then run uvicorn until Ctrl-C."""
    import uvicorn

    from captcha_vqa.app import create_app
    from captcha_vqa.models import Loaded

    loaded = Loaded.load(config.captcha_dir, config.vqa_dir)
    check_port(config.host, config.port)
    print(f"{PROG}: serving on http://{config.host}:{config.port}/ (API docs at /docs)", flush=True)
    if config.workers == 1:
        app = create_app(config, loaded)
        uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
    else:
        del loaded  # each worker loads its own copy
        os.environ[CONFIG_ENV] = config.to_env()
        uvicorn.run(
            "captcha_vqa.cli:build_app_from_env",
            factory=True,
            host=config.host,
            port=config.port,
            workers=config.workers,
            log_level="warning",
        )
    return 0


def _main(argv: Sequence[str] | None) -> int:
    quiet_tensorflow()
    args = build_parser().parse_args(argv)
    return serve(config_from(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: returns the exit status; user errors are one line on stderr."""
    return run_cli(PROG, _main, argv)
