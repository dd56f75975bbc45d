"""Seeding, the standard training callbacks, and the plot of the training curves."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

from recognisers.backend import import_keras
from recognisers.modeldir import current_umask

HISTORY_CSV = "history.csv"
HISTORY_PNG = "history.png"


def set_seed(seed: int) -> None:
    """One seed for Python, NumPy and Keras/TensorFlow, so that runs repeat."""
    keras = import_keras()  # often the first Keras use of a run: keep it quiet

    keras.utils.set_random_seed(int(seed))


def training_callbacks(model_dir: Path, patience: int = 3, monitor: str = "val_loss") -> list:
    """History to CSV and early stopping that restores the best weights seen on validation."""
    import keras

    return [
        keras.callbacks.CSVLogger(str(model_dir / HISTORY_CSV)),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True),
    ]


def kept_epoch(rows: list[dict], monitor: str = "val_loss") -> str:
    """The line a training summary prints: which epoch was kept, and by which validation measure.

    :func:`training_callbacks` restores the weights of the epoch with the lowest ``monitor``, which
    need not be the one with the best validation accuracy; saying so avoids a surprise.
    ``rows`` are the history rows (CSVLogger's, or ``History.history`` turned into rows).
    """
    scored = [(float(r[monitor]), i) for i, r in enumerate(rows) if r.get(monitor) not in (None, "")]
    if not scored:
        return "kept the last epoch (no validation measure recorded)"
    best, i = min(scored)
    others = ", ".join(
        f"{k} {float(v):.4g}" for k, v in rows[i].items() if k.startswith("val_") and k != monitor
    )
    return f"kept epoch {i + 1} of {len(rows)}: lowest {monitor} {best:.4g}" + (
        f" ({others})" if others else ""
    )


def plot_history(csv_path: Path, png_path: Path, title: str) -> None:
    """Loss and accuracy curves (train vs. validation) from a CSVLogger file, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    metrics = [k for k in rows[0] if k not in ("epoch", "learning_rate") and not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        ax.plot(epochs, [float(r[name]) for r in rows], "o-", label="train")
        if f"val_{name}" in rows[0]:
            ax.plot(epochs, [float(r[f"val_{name}"]) for r in rows], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, png_path)
    plt.close(fig)


def save_figure(fig, png_path: str | os.PathLike) -> None:
    """Save a matplotlib figure atomically as PNG."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{png_path.stem}.", suffix=".png", dir=png_path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, png_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
