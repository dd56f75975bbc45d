"""CAPTCHA strength audit: how many labelled samples does it take to break a CAPTCHA?

A fixed, seeded part of the folder is held out (by file). For each training size n a seeded
subset of the rest trains the default reader (several seeds for small n, so a point is not one
lucky draw), and the held-out sequence accuracy is measured with a Wilson 95% interval on the
pooled counts. The curve gives the verdict: the number of labelled samples at which the scheme
is broken (>= 1% of attempts, Bursztein, Martin and Mitchell, CCS 2011), read half the time and
read reliably, interpolated on log(size). ``report.json`` is rewritten (atomically) after every
point, so an interrupted or budget-stopped audit leaves a readable partial report.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from captcha.data import Sample, split
from recognisers.contract import Report
from recognisers.errors import Terminated, UserError, note
from recognisers.modeldir import (
    check_writable_target,
    clean_stale,
    model_kind,
    stage_dir,
    write_json,
    write_meta,
)

KIND = "captcha-audit"
FORMAT_VERSION = 1
REPORT = "report.json"


@dataclass(frozen=True)
class AuditConfig:
    """Every default of ``captcha audit``.

    Human-solver defaults: Motoyama et al., "Re: CAPTCHAs -- Understanding CAPTCHA-Solving
    Services in an Economic Context" (USENIX Security 2010) measured services selling about
    1,000 solved CAPTCHAs for $1 (0.80 to 1.20), answering in roughly 10 to 20 seconds.
    """

    sizes: tuple[int, ...] = (50, 100, 200, 500, 1000, 2000)
    seeds_small: int = 3  # draws per size up to small_size (one lucky draw is no point)
    small_size: int = 200
    test_fraction: float = 0.2  # of the folder, held out by file
    max_test: int = 1000  # held-out images read per fit at most (bounds the reading time)
    min_test: int = 20  # fewer held-out images give no usable interval
    time_budget: float = 1800.0  # seconds for the whole audit
    min_fit_seconds: float = 20.0  # a fit given less than this cannot train a reader
    seed: int = 0
    reader: str = "auto"  # the readers' default choice (the best reader)
    epochs: int | None = None  # None: each reader's own (tests pass a few)
    thresholds: tuple[float, float, float] = (0.01, 0.5, 0.9)  # broken, half, reliable
    human_usd_per_1000: float = 1.0  # Motoyama et al. 2010
    human_seconds: float = 15.0  # Motoyama et al. 2010 (10 to 20 s)
    z: float = 1.96  # 95% interval
    min_confusions: int = 5  # a confusion seen fewer times is no advice

    def seeds_for(self, size: int) -> int:
        return self.seeds_small if size <= self.small_size else 1


# --- arithmetic -------------------------------------------------------------------------------


def wilson(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion: sound at 0 and 1 and for small counts."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    low = 0.0 if correct == 0 else max(0.0, centre - half)  # exact at the ends (no round-off)
    return low, 1.0 if correct == total else min(1.0, centre + half)


def crossing(sizes: Sequence[int], accuracies: Sequence[float], threshold: float) -> float | None:
    """The smallest size at which accuracy reaches ``threshold``, interpolated on log(size).

    Reached at the first point: that size (the curve says nothing below it). Never reached: None.
    """
    for i, (n, a) in enumerate(zip(sizes, accuracies)):
        if a >= threshold:
            if i == 0:
                return float(n)
            n0, a0 = sizes[i - 1], accuracies[i - 1]
            t = (threshold - a0) / (a - a0)
            return float(math.exp(math.log(n0) + t * (math.log(n) - math.log(n0))))
    return None


def verdict(points: list[dict], config: AuditConfig) -> dict:
    sizes = [p["size"] for p in points]
    accs = [p["sequence_accuracy"] for p in points]
    found = [crossing(sizes, accs, t) for t in config.thresholds]
    out: dict[str, Any] = {
        key: (None if v is None else round(v))
        for key, v in zip(("broken_at", "half_at", "reliable_at"), found)
    }
    out["thresholds"] = list(config.thresholds)
    out["largest_size"] = max(sizes) if sizes else None
    out["sentence"] = sentence(out, sizes)
    return out


def sentence(v: dict, sizes: list[int]) -> str:
    """The verdict in one sentence a site owner can act on."""
    if not sizes:
        return "No point was measured, so there is no verdict."
    parts = []
    for key, what in (
        ("broken_at", "broken (>= 1% read)"),
        ("half_at", "read half the time"),
        ("reliable_at", "read reliably (>= 90%)"),
    ):
        n = v[key]
        if n is None:
            parts.append(f"{what}: not reached with {sizes[-1]} samples")
        elif n <= sizes[0]:
            parts.append(f"{what} with at most {n} labelled samples")
        else:
            parts.append(f"{what} with about {n} labelled samples")
    return "This CAPTCHA is " + "; ".join(parts) + "."


# --- planning -------------------------------------------------------------------------------


def plan(samples: list[Sample], config: AuditConfig) -> tuple[list[Sample], list[Sample], list[int]]:
    """(training pool, held-out test, sizes that fit); bad input is one clear UserError."""
    sizes = list(config.sizes)
    if not sizes or any(n < 2 for n in sizes) or any(b <= a for a, b in itertools.pairwise(sizes)):
        raise UserError(f"--sizes must be increasing whole numbers of at least 2, got {sizes}")
    pool, test = split(samples, config.test_fraction, config.seed)
    test = test[: config.max_test]
    if len(test) < config.min_test or len(pool) < sizes[0]:
        raise UserError(
            f"{len(samples)} labelled images are too few: the smallest size {sizes[0]} "
            f"needs at least {needed(sizes[0], config)} (the test part is "
            f"{config.test_fraction:.0%}, at least {config.min_test} images)"
        )
    first_needs = config.seeds_for(sizes[0]) * config.min_fit_seconds
    if config.time_budget < first_needs:
        raise UserError(
            f"--time-budget {config.time_budget:.0f}s is too small for one point: the first "
            f"size's {config.seeds_for(sizes[0])} fits need at least {first_needs:.0f}s"
        )
    fit = [n for n in sizes if n <= len(pool)]
    if len(fit) < len(sizes):
        note(f"only {len(pool)} images to train on: sizes above {fit[-1]} dropped")
    return pool, test, fit


def needed(size: int, config: AuditConfig) -> int:
    """Images a folder needs so that ``size`` files remain after the held-out part."""
    total = max(math.ceil(size / (1 - config.test_fraction)), size + config.min_test)
    while (
        round(total * config.test_fraction) < config.min_test
        or total - round(total * config.test_fraction) < size
    ):
        total += 1
    return total


def draws(pool: list[Sample], size: int, seeds: int, seed: int) -> list[list[Sample]]:
    """``seeds`` seeded subsets of ``size`` training files each (same seed, same files)."""
    out = []
    for k in range(seeds):
        order = np.random.default_rng([seed, size, k]).permutation(len(pool))[:size]
        out.append([pool[i] for i in sorted(order)])
    return out


def fit_cap(remaining: float, size: int, todo: list[int], config: AuditConfig) -> float:
    """Seconds one fit of ``size`` may train: the remaining budget shared in proportion to size."""
    return max(config.min_fit_seconds, remaining * size / max(1, sum(todo)))


def next_point_estimate(points: list[dict], size: int, seeds: int) -> float | None:
    """Seconds the next point will take: its fits' time, linear in n through the last two points
    (one point: proportional to n, which over-estimates, so the budget is kept)."""
    if not points:
        return None
    per_fit = [(p["size"], p["point_seconds"] / p["seeds"]) for p in points[-2:]]
    if len(per_fit) == 1:
        ((n0, t0),) = per_fit
        return t0 * size / n0 * seeds
    (n0, t0), (n1, t1) = per_fit
    slope = max(0.0, (t1 - t0) / (n1 - n0))
    return max(t1, t1 + slope * (size - n1)) * seeds


# --- training and measuring -------------------------------------------------------------------

Trainer = Callable[[list[Sample], int, float, AuditConfig], Any]  # returns a fitted reader


def fit_reader(samples: list[Sample], seed: int, cap: float, config: AuditConfig):
    """The default reader choice fitted within ``cap`` seconds (the readers' contract; not saved)."""
    from captcha.model import SegmentConfig
    from captcha.readers import CaptchaReader, ReaderConfig
    from captcha.sequence import SequenceConfig

    segment, sequence = SegmentConfig(seed=seed), SequenceConfig(seed=seed)
    if config.epochs:
        segment, sequence = replace(segment, epochs=config.epochs), replace(sequence, epochs=config.epochs)
    # the audit's whole run has a wall-clock budget, so the sequence reader gets a wall-clock
    # cap on top of its step budget (under auto, half the fit's share: the segmenter may follow;
    # where it cannot train on so few images, auto keeps the sequence reader and says why)
    seconds = cap / 2 if config.reader == "auto" else cap
    reader_config = ReaderConfig(
        reader=config.reader, segment=segment, sequence=replace(sequence, max_seconds=seconds)
    )
    return CaptchaReader(reader_config).fit(samples, log=lambda _: None, verbose=False)


def measure(reader, test: list[Sample]) -> Report:
    return reader.evaluate(test)


def failed_fit(count: int, seconds: float, reason: str) -> dict:
    """A draw no reader could train on: none of the held-out images is read."""
    return {
        "sequence_accuracy": 0.0,
        "count": count,
        "char_accuracy": 0.0,
        "train_seconds": seconds,
        "images_per_second": None,
        "reader": "none",
        "failed": reason,
    }


def pooled_point(size: int, fits: list[dict], config: AuditConfig) -> dict:
    """One curve point from its fits: pooled held-out counts, Wilson interval, mean times."""
    correct = sum(round(f["sequence_accuracy"] * f["count"]) for f in fits)
    total = sum(f["count"] for f in fits)
    low, high = wilson(correct, total, config.z)
    return {
        "size": size,
        "seeds": len(fits),
        "sequence_accuracy": correct / total,
        "ci_low": low,
        "ci_high": high,
        "correct": correct,
        "read": total,
        "char_accuracy": float(np.mean([f["char_accuracy"] for f in fits])),
        "train_seconds": float(np.mean([f["train_seconds"] for f in fits])),
        "ms_per_captcha": mean_or_none(
            [1000.0 / f["images_per_second"] for f in fits if f["images_per_second"]]
        ),
        "readers": [f["reader"] for f in fits],
        "failed": [f["failed"] for f in fits if "failed" in f],
    }


def mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


# --- the output folder -------------------------------------------------------------------------


def prepare_out(out: Path, force: bool) -> Path | None:
    """Same rules as model folders: never a user's folder; ``force`` replaces only an audit.

    The audit it replaces is moved aside, not deleted: :func:`settle_previous` drops it once
    the new one has measured a point, or puts it back. Returns where it went (None: none).
    """
    check_writable_target(out, force, KIND)
    previous = None
    if out.exists() and model_kind(out) == KIND:
        previous, fd = stage_dir(out, ".old")  # clean_stale restores it if this run is killed
        os.close(fd)
        os.rename(out, previous)  # onto the empty directory just made: atomic
    out.mkdir(parents=True, exist_ok=True)
    write_meta(
        out, KIND, FORMAT_VERSION, {"what": "captcha audit output (report.json, report.html, curve.png)"}
    )
    return previous


def settle_previous(out: Path, previous: Path | None, points: int) -> None:
    """Drop the replaced audit once the new one holds a point; else put the old one back."""
    if previous is None:
        return
    if points:
        shutil.rmtree(previous, ignore_errors=True)
        return
    shutil.rmtree(out, ignore_errors=True)
    os.rename(previous, out)
    note(f"no point was measured, so the previous audit in {out} was kept")


# --- the audit -----------------------------------------------------------------------------------


def run_audit(
    samples: list[Sample],
    out: Path,
    config: AuditConfig = AuditConfig(),
    *,
    force: bool = False,
    dataset: str = "",
    trainer: Trainer = fit_reader,
    clock: Callable[[], float] = time.monotonic,
    progress=None,
) -> dict:
    """Measure the learning curve into ``out``; returns the report (also on budget stop).

    Ctrl-C or SIGTERM: the points measured so far are written (report, page, curve), then it re-raises.
    """
    pool, test, sizes = plan(samples, config)
    clean_stale(out, note)
    previous = prepare_out(out, force)
    started = clock()
    report: dict[str, Any] = {
        "dataset": dataset,
        "images": len(samples),
        "test_count": len(test),
        "train_pool": len(pool),
        "config": jsonable(config),
        "points": [],
        "sizes_dropped": [n for n in config.sizes if n not in sizes],
        "stopped": None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    last: Report | None = None  # the last fit's evaluation (the pages draw its worst cases)
    last_solver = None
    todo = [n for n in sizes for _ in range(config.seeds_for(n))]
    try:
        for size in sizes:
            seeds = config.seeds_for(size)
            estimate = next_point_estimate(report["points"], size, seeds)
            left = config.time_budget - (clock() - started)
            if estimate is not None and estimate > left:
                report["stopped"] = (
                    f"time budget: size {size} would take about {estimate:.0f}s, "
                    f"{max(0.0, left):.0f}s left of {config.time_budget:.0f}s"
                )
                note(f"stopped before size {size}: {report['stopped']}")
                break
            point_started, fits = clock(), []
            for k, subset in enumerate(draws(pool, size, seeds, config.seed)):
                cap = fit_cap(config.time_budget - (clock() - started), size, todo, config)
                t = clock()
                try:
                    solver = trainer(subset, config.seed + k, cap, config)
                except UserError as exc:  # no reader trains on so few: this draw reads nothing
                    fits.append(failed_fit(len(test), clock() - t, str(exc)))
                else:
                    train_seconds = clock() - t
                    result = measure(solver, test)
                    fits.append({**result.metrics, "train_seconds": train_seconds, "reader": solver.reader})
                    last, last_solver = result, solver
                todo.remove(size)
                if progress:
                    progress(size, clock() - started, todo)
            point = pooled_point(size, fits, config)
            point["point_seconds"] = clock() - point_started
            report["points"].append(point)
            if last is not None:
                report["details"] = details(last.metrics, point, clean_cut_share(last_solver, test))
            finish(report, out, config, write_pages=False)
    except (KeyboardInterrupt, Terminated):
        report["stopped"] = f"interrupted after {len(report['points'])} point(s)"
        finish(report, out, config, last, test)
        raise
    else:
        finish(report, out, config, last, test)
    finally:
        settle_previous(out, previous, len(report["points"]))
    return report


def clean_cut_share(solver, test: list[Sample]) -> float | None:
    """Share of held-out images the segmenter cuts by shape alone into as many glyphs as the label.

    A property of the CAPTCHA more than of the model (the cut uses only the clean-up settings
    tuned at training). None when the reader kept does not segment.
    """
    chosen = getattr(solver, "chosen", solver)  # the reader the reader choice kept
    segmenter: Any = (
        chosen if getattr(chosen, "reader", None) == "segment" else getattr(chosen, "segment", None)
    )
    if not callable(getattr(segmenter, "segment", None)):
        return None
    cut = 0
    for sample in test:
        try:
            seg = segmenter.segment(sample.path)
        except UserError:
            continue
        cut += seg.clean and len(seg.boxes) == len(sample.label)
    return cut / len(test)


def details(result: dict, point: dict, clean: float | None) -> dict:
    """Where the CAPTCHA is weak or strong, from the largest size's last fit."""
    per_char = result["per_character_accuracy"]
    return {
        "size": point["size"],
        "reader": result["reader"],
        "per_character_accuracy": per_char,
        "weakest_characters": sorted(per_char, key=per_char.get)[:5],
        "strongest_characters": sorted(per_char, key=per_char.get, reverse=True)[:5],
        "top_confusions": result["top_confusions"],
        "clean_cut_share": clean,
        "length_mismatch_rate": result["segmentation_failure_rate"],
    }


def attacker_cost(points: list[dict], config: AuditConfig) -> dict:
    """What breaking it costs at the largest size, next to a human solving service."""
    if not points:
        return {}
    top = points[-1]
    acc = top["sequence_accuracy"]
    per_solve = config.human_usd_per_1000 / 1000
    return {
        "size": top["size"],
        "attempts_per_success": (1.0 / acc) if acc > 0 else None,
        "train_cpu_seconds": top["train_seconds"],
        "ms_per_solve": top["ms_per_captcha"],
        "ms_per_success": top["ms_per_captcha"] / acc if acc > 0 and top["ms_per_captcha"] else None,
        "labelling_usd_at_human_rate": round(top["size"] * per_solve, 2),
        "human_usd_per_1000": config.human_usd_per_1000,
        "human_seconds_per_solve": config.human_seconds,
        "human_source": "Motoyama et al., Re: CAPTCHAs, USENIX Security 2010",
    }


def advice(report: dict, config: AuditConfig) -> list[str]:
    """Concrete advice, each line backed by a measured figure (none where the data says nothing)."""
    out: list[str] = []
    points, d = report["points"], report.get("details") or {}
    if not points:
        return out
    v, top = report["verdict"], points[-1]
    if v["broken_at"] is not None and v["broken_at"] <= 500:
        out.append(
            f"Broken (>= 1% read) with about {v['broken_at']} labelled samples: Ye et al. "
            "(CCS 2018) broke 11 live schemes with about 500 each; an attacker can afford this."
        )
    if v["broken_at"] is None:
        out.append(
            f"Not broken by this reader with {top['size']} samples "
            f"(95% interval up to {top['ci_high']:.1%}); a stronger attacker with more labels may still."
        )
    if d.get("clean_cut_share") is not None and d["clean_cut_share"] >= 0.8:
        out.append(
            f"Characters rarely touch: {d['clean_cut_share']:.0%} of held-out images were cut "
            "cleanly by shape alone; make glyphs overlap or join them."
        )
    pair, count = next(iter((d.get("top_confusions") or {"": 0}).items()))
    if count >= config.min_confusions:
        a, b = pair.split("->")
        out.append(
            f"'{a}' is read as '{b}' most often ({count} times at {d['size']} samples): "
            "keeping look-alike characters in the charset is what makes it harder."
        )
    if len(points) >= 2 and top["ci_low"] > points[-2]["ci_high"]:
        out.append(
            f"Accuracy is still rising at {top['size']} samples "
            f"({points[-2]['sequence_accuracy']:.1%} -> {top['sequence_accuracy']:.1%}): "
            "more labels would read more."
        )
    return out


def finish(
    report: dict,
    out: Path,
    config: AuditConfig,
    last: Report | None = None,
    test: list[Sample] | None = None,
    write_pages: bool = True,
) -> None:
    """Verdict, cost and advice from the points so far; report.json (atomic), then the pages."""
    report["verdict"] = verdict(report["points"], config)
    report["attacker_cost"] = attacker_cost(report["points"], config)
    report["advice"] = advice(report, config)
    report["files"] = {
        "report": REPORT,
        "html": "report.html",
        "curve": "curve.png",
        "hardest": "hardest.png",
    }
    write_json(out / REPORT, report)
    if write_pages:
        from captcha.audit_report import render

        render(report, out, last, test)


def jsonable(config: AuditConfig) -> dict:
    data = asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--sizes must be comma-separated whole numbers, got {text!r}") from None


def parse_duration(text: str) -> float:
    """``30m``, ``90s``, ``1h``, ``600`` (seconds) -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    unit = units.get(text[-1:].lower())
    try:
        seconds = float(text[:-1] if unit else text) * (unit or 1)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:  # nan, inf and 1e999m would never stop the audit
        raise UserError(f"--time-budget must be a duration such as 30m, 90s or 1h, got {text!r}")
    return seconds


def with_options(config: AuditConfig, **changes) -> AuditConfig:
    return replace(config, **{k: v for k, v in changes.items() if v is not None})


def command(args) -> int:
    """``captcha audit``: run it with a progress bar, then print the verdict and where the files are."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from captcha.data import load_folder

    config = with_options(
        AuditConfig(),
        sizes=parse_sizes(args.sizes),
        seed=args.seed,
        time_budget=parse_duration(args.time_budget),
        human_usd_per_1000=args.human_usd_per_1000,
        human_seconds=args.human_seconds,
    )
    if config.human_usd_per_1000 < 0 or config.human_seconds < 0:
        raise UserError("--human-usd-per-1000 and --human-seconds must not be negative")
    samples = load_folder(args.data_dir)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("left about"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        total = sum(n * config.seeds_for(n) for n in config.sizes if n <= len(samples))
        task = bar.add_task("audit", total=total)

        def progress(size: int, elapsed: float, todo: list[int]) -> None:
            bar.update(task, completed=total - sum(todo), description=f"size {size} done, {elapsed:.0f}s")

        report = run_audit(
            samples, args.out, config, force=args.force, dataset=str(args.data_dir), progress=progress
        )
    print(report["verdict"]["sentence"])
    if report["stopped"]:
        print(f"stopped early: {report['stopped']}")
    print(f"report: {args.out / REPORT}  page: {args.out / 'report.html'}  curve: {args.out / 'curve.png'}")
    return 0
