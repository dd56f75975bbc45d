"""The one contract every model follows, and the config plumbing that makes it hold.

Every model (the segmenting CAPTCHA reader, the sequence reader, the VQA model, any later one)
is used the same way, so that CLIs, the server, the audit and the benches call nothing below it::

    model = Model(Config(...)).fit(train_data)    # learned state is set by fit only
    model.predict(x); model.predict_batch(xs)
    report = model.evaluate(test_data)            # a Report: metrics + per-item predictions
    model.save("runs/m", force=False)             # atomic: staged, then renamed into place
    model = Model.load("runs/m")

Defaults live in one frozen config dataclass per model. Its fields carry their help text
(:func:`option`), so the CLI's options are built from the config (:func:`add_config_options`,
:func:`config_from_args`) and cannot drift from it; the config is saved whole in ``meta.json``
(:func:`config_to_json`) and read back with every field checked (:func:`config_from_json`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from recognisers.metafields import dataclass_from_meta
from recognisers.modeldir import staged_model_dir, write_json

C = TypeVar("C")


def option(default: Any, help: str, *, choices: Sequence[Any] | None = None) -> Any:
    """A config field with the help text (and choices) its CLI option shows."""
    metadata = {"help": help, "choices": tuple(choices) if choices else None}
    if isinstance(default, (list, dict, set)):
        raise TypeError("config defaults must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata=metadata)


def config_to_json(config: Any) -> dict[str, Any]:
    """The config as JSON-ready values (tuples become lists, nested configs objects)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def config_from_json(cls: type[C], obj: Any, where: str) -> C:
    """The config saved by :func:`config_to_json`: unknown or mistyped fields are a UserError.

    ``where`` names the file for the error (``model/meta.json``). Fields absent from an older
    file take the config's default.
    """
    return dataclass_from_meta(cls, obj, where, "config.")


# -- the CLI, built from the config -------------------------------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar(hint: Any) -> tuple[Any, bool]:
    """(the scalar type of a field's hint, whether it is a tuple of that type); Optional unwrapped."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _scalar(next(a for a in args if a is not type(None)))
    if origin is tuple:
        return args[0], True
    return hint, False


def _tuple_of(kind: type) -> Any:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            message = f"expected comma-separated {kind.__name__}s, not {text!r}"
            raise argparse.ArgumentTypeError(message) from None

    parse.__name__ = f"comma-separated {kind.__name__}s"
    return parse


def add_config_options(
    parser: argparse.ArgumentParser, cls: type, *, skip: Sequence[str] = (), defaults: Any = None
) -> None:
    """One ``--field-name`` option per config field that has help text (nested configs too).

    ``defaults`` (an instance of ``cls``) overrides the shown defaults, for a CLI whose
    defaults depend on another option; fields named in ``skip`` are left to the caller.
    """
    hints = typing.get_type_hints(cls)
    defaults = cls() if defaults is None else defaults
    for field in dataclasses.fields(cls):
        value = getattr(defaults, field.name)
        if dataclasses.is_dataclass(hints[field.name]):
            add_config_options(parser, hints[field.name], skip=skip, defaults=value)
            continue
        if field.name in skip or "help" not in field.metadata:
            continue
        kind, many = _scalar(hints[field.name])
        if kind is bool:
            parser.add_argument(
                _flag(field.name),
                action=argparse.BooleanOptionalAction,
                default=value,
                help=field.metadata["help"],
            )
            continue
        parser.add_argument(
            _flag(field.name),
            type=_tuple_of(kind) if many else kind,
            default=value,
            choices=field.metadata["choices"],
            metavar=",".join(["N"] * 2) if many else None,
            help=field.metadata["help"],
        )


def config_from_args(cls: type[C], args: argparse.Namespace, base: Any = None) -> C:
    """The config ``cls`` with every field the parsed ``args`` carry (others from ``base``)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        inner = getattr(base, field.name) if base is not None else None
        if dataclasses.is_dataclass(hints[field.name]):
            values[field.name] = config_from_args(hints[field.name], args, inner)
        elif hasattr(args, field.name):
            values[field.name] = getattr(args, field.name)
        elif base is not None:
            values[field.name] = inner
    return cls(**values)


# -- reports and saving ---------------------------------------------------------------------------


@dataclasses.dataclass
class Report:
    """What ``evaluate`` returns: the figures, and one entry per item that was predicted.

    ``metrics`` are JSON-ready (accuracies, counts, speed); ``predictions`` hold, per item, what
    was predicted and what was expected, so a script can look at any item without re-reading.
    """

    metrics: dict[str, Any]
    predictions: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {**self.metrics, "predictions": self.predictions}

    def write(self, path: str | os.PathLike) -> None:
        """Write the report as JSON, atomically (a crash never leaves half a report)."""
        write_json(Path(path), self.to_json())


class SavesModelDir:
    """``save(dir, force)`` for every model: staged in a hidden sibling, renamed into place.

    A model class sets ``KIND`` (the ``meta.json`` kind, also what ``--force`` may replace) and
    writes its files in :meth:`write_files`; the replace rules live in ``recognisers.modeldir``.
    """

    KIND: ClassVar[str]

    def save(self, model_dir: str | os.PathLike, force: bool = False) -> None:
        with staged_model_dir(model_dir, kind=self.KIND, force=force) as tmp:
            self.write_files(tmp)

    def write_files(self, model_dir: Path) -> None:
        """Write the model's files and ``meta.json`` into ``model_dir`` (a staged directory)."""
        raise NotImplementedError


M = TypeVar("M", bound="Model")


class Model(Protocol):
    """The contract (for type checkers and readers; the classes do not inherit from it)."""

    config: Any

    def fit(self: M, data: Any) -> M: ...

    def predict(self, x: Any) -> Any: ...

    def predict_batch(self, xs: Sequence[Any]) -> list[Any]: ...

    def evaluate(self, data: Any) -> Report: ...

    def save(self, model_dir: str | os.PathLike, force: bool = False) -> None: ...

    @classmethod
    def load(cls: type[M], model_dir: str | os.PathLike) -> M: ...
