"""The contract plumbing: CLI options built from a config, configs saved and read back, reports."""

import json
from dataclasses import dataclass, field

import pytest

from recognisers.contract import (
    Report,
    add_config_options,
    config_from_args,
    config_from_json,
    config_to_json,
    option,
)
from recognisers.errors import ArgumentParser, UserError


@dataclass(frozen=True)
class Inner:
    filters: tuple[int, ...] = option((8, 16), "filters per block")
    kind: str = option("compact", "encoder", choices=("compact", "vgg16"))


@dataclass(frozen=True)
class Outer:
    epochs: int = option(10, "most epochs")
    rate: float = option(2e-3, "learning rate")
    limit: int | None = option(None, "most items (default: all)")
    augment: bool = option(True, "random shifts while training")
    inner: Inner = field(default_factory=Inner)
    internal: int = 3  # no help text: not a CLI option


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="t")
    add_config_options(p, Outer)
    return p


def test_cli_defaults_are_the_configs():
    assert config_from_args(Outer, parser().parse_args([])) == Outer()


def test_cli_options_reach_every_field_nested_too():
    args = parser().parse_args(
        [
            "--epochs",
            "3",
            "--rate",
            "0.1",
            "--limit",
            "5",
            "--no-augment",
            "--filters",
            "4,8,16",
            "--kind",
            "vgg16",
        ]
    )
    assert config_from_args(Outer, args) == Outer(3, 0.1, 5, False, Inner((4, 8, 16), "vgg16"))


def test_cli_refuses_bad_values_with_usage_error(capsys):
    for bad in (["--filters", "4,x"], ["--kind", "nope"], ["--epochs", "1.5"]):
        with pytest.raises(SystemExit) as info:
            parser().parse_args(bad)
        assert info.value.code == 2
    assert capsys.readouterr().err.startswith("t: error: argument")


def test_help_shows_each_default_once():
    text = " ".join(parser().format_help().split())
    assert "most epochs (default: 10)" in text
    assert "(default: 8,16)" in text  # as it is typed
    assert "most items (default: all)" in text and "default: None" not in text
    assert "--internal" not in text


def test_config_round_trips_through_json():
    config = Outer(3, 0.5, None, False, Inner((1, 2), "vgg16"), 7)
    saved = json.loads(json.dumps(config_to_json(config)))
    assert saved["inner"]["filters"] == [1, 2]
    assert config_from_json(Outer, saved, "m/meta.json") == config


@pytest.mark.parametrize(
    "damage, message",
    [
        ({"epochs": "ten"}, "config.epochs must be an integer"),
        ({"inner": {"filters": [1, "a"]}}, "config.inner.filters must be a list of integers"),
        ({"colour": 1}, "unknown field(s) config.colour"),
        ({"inner": 3}, "config.inner must be an object"),
    ],
)
def test_damaged_config_is_one_clear_error(damage, message):
    with pytest.raises(UserError, match="m/meta.json is damaged") as info:
        config_from_json(Outer, {**config_to_json(Outer()), **damage}, "m/meta.json")
    assert message in str(info.value)


def test_report_writes_metrics_and_predictions(tmp_path):
    report = Report({"accuracy": 0.5}, [{"truth": "a", "predicted": "b"}])
    report.write(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == {
        "accuracy": 0.5,
        "predictions": [{"truth": "a", "predicted": "b"}],
    }


def test_kept_epoch_names_the_epoch_and_measure():
    from recognisers.training import kept_epoch

    rows = [
        {"epoch": 0, "val_loss": 0.9, "val_accuracy": 0.5},
        {"epoch": 1, "val_loss": 0.4, "val_accuracy": 0.7},
        {"epoch": 2, "val_loss": 0.6, "val_accuracy": 0.8},
    ]
    assert kept_epoch(rows) == "kept epoch 2 of 3: lowest val_loss 0.4 (val_accuracy 0.7)"
    # an accuracy is better higher; of equal ones the lowest validation loss, then the first
    rows += [
        {"epoch": 3, "val_loss": 0.3, "val_accuracy": 0.8},
        {"epoch": 4, "val_loss": 0.3, "val_accuracy": 0.8},
    ]
    assert kept_epoch(rows, "val_accuracy") == "kept epoch 4 of 5: highest val_accuracy 0.8 (val_loss 0.3)"
    assert kept_epoch([{"epoch": 0, "loss": 1.0}]).startswith("kept the last epoch")
