"""The short human table every evaluation prints (rich, which Keras already depends on)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table


def print_table(
    title: str, rows: Iterable[tuple[str, object]], headers: tuple[str, str] = ("metric", "value")
) -> None:
    """Print two-column rows; floats in [0, 1] named like accuracies/rates print as percentages."""
    table = Table(title=title)
    table.add_column(headers[0])
    table.add_column(headers[1], justify="right")
    for name, value in rows:
        table.add_row(str(name), format_value(name, value))
    Console().print(table)


def format_value(name: str, value: object) -> str:
    """Human form of one metric value."""
    if isinstance(value, float):
        if any(w in name for w in ("accuracy", "rate")) and 0.0 <= value <= 1.0:
            return f"{100 * value:.2f}%"
        return f"{value:,.1f}" if value >= 100 else f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)
