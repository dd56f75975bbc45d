"""Seeding, input pipelines without autotuning, the standard training callbacks, the training curves."""

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


def without_autotune(dataset):
    """``dataset`` with a prefetch of two batches and tf.data's autotuning off.

    Why: an autotuned pipeline's iterator runs a tuning thread that sleeps between rounds for a
    period that doubles up to 60 s, and deleting the iterator waits for that sleep to end.
    Keras makes a new iterator for every epoch and every validation pass, so epochs took up to
    twice their time, at random, with the process idle for the difference (a stack dump of an
    idle second: the iterator's destructor waiting on ``Model::OptimizeLoop``). These pipelines
    only cut arrays held in memory: there is nothing for autotuning to tune.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def higher_is_better(monitor: str) -> bool:
    """Whether a larger ``monitor`` is a better epoch (accuracies) or a smaller one (losses)."""
    return monitor.endswith("accuracy")


def training_callbacks(
    model_dir: Path,
    patience: int = 3,
    monitor: str = "val_loss",
    tie_break: str = "val_loss",
    start_from_epoch: int = 0,
) -> list:
    """History to CSV and early stopping on ``monitor``: training ends after ``patience`` epochs
    without a better value, and the weights of the best epoch are restored at the end (stopped
    early or not); of epochs equal on ``monitor``, the one lowest on ``tie_break``
    (:mod:`recognisers.stopping`). Epochs before ``start_from_epoch`` (0-based) are neither
    watched nor kept (Keras's warm-up)."""
    import keras

    from recognisers.stopping import EarlyStoppingWithTieBreak

    mode = "max" if higher_is_better(monitor) else "min"
    stop = EarlyStoppingWithTieBreak(
        monitor=monitor, mode=mode, patience=patience, tie_break=tie_break, start_from_epoch=start_from_epoch
    )
    return [keras.callbacks.CSVLogger(str(model_dir / HISTORY_CSV)), stop]


def best_epoch(
    rows: list[dict], monitor: str = "val_loss", tie_break: str = "val_loss", start_from_epoch: int = 0
) -> int | None:
    """The index of the epoch :func:`training_callbacks` keeps: the best ``monitor`` from
    ``start_from_epoch`` on, of equal ones the lowest ``tie_break``, of equal ones the first;
    None without a ``monitor``. ``rows`` are the history rows (CSVLogger's, or
    ``History.history`` turned into rows)."""
    sign = -1 if higher_is_better(monitor) else 1

    def rank(i: int) -> tuple[float, float, int]:
        return sign * float(rows[i][monitor]), float(rows[i].get(tie_break) or 0.0), i

    scored = [i for i, r in enumerate(rows) if r.get(monitor) not in (None, "") and i >= start_from_epoch]
    return min(scored, key=rank) if scored else None


def kept_epoch(rows: list[dict], monitor: str = "val_loss", start_from_epoch: int = 0) -> str:
    """The line a training summary prints: which epoch was kept, and by which validation measure.

    The epoch kept by ``monitor`` need not be the one that is best by the other validation
    measures; showing them beside it avoids a surprise.
    """
    i = best_epoch(rows, monitor, start_from_epoch=start_from_epoch)
    if i is None:
        return "kept the last epoch (no validation measure recorded)"
    others = ", ".join(
        f"{k} {float(v):.4g}" for k, v in rows[i].items() if k.startswith("val_") and k != monitor
    )
    word = "highest" if higher_is_better(monitor) else "lowest"
    return f"kept epoch {i + 1} of {len(rows)}: {word} {monitor} {float(rows[i][monitor]):.4g}" + (
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
