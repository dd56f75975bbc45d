"""The audit's pictures and page: ``curve.png``, ``hardest.png`` and a self-contained ``report.html``.

The page embeds its pictures as data URIs so that it can be mailed or attached as one file.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from recognisers.contract import Report
from recognisers.training import save_figure

LABELS = ("broken (1%)", "half (50%)", "reliable (90%)")


def plot_curve(report: dict, png: Path) -> None:
    """Held-out sequence accuracy against labelled samples (log x) with its 95% band and the lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = report["points"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if points:
        sizes = [p["size"] for p in points]
        ax.fill_between(
            sizes,
            [p["ci_low"] for p in points],
            [p["ci_high"] for p in points],
            alpha=0.25,
            label="95% interval (Wilson)",
        )
        acc = [p["sequence_accuracy"] for p in points]
        err = [
            [max(0.0, a - p["ci_low"]) for a, p in zip(acc, points)],
            [max(0.0, p["ci_high"] - a) for a, p in zip(acc, points)],
        ]
        ax.errorbar(sizes, acc, yerr=err, fmt="o-", capsize=3, label="sequence accuracy")
        ax.plot(sizes, [p["char_accuracy"] for p in points], "s--", ms=3, lw=1, label="character accuracy")
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.set_xticks([], minor=True)  # the log scale's own minor labels (6x10^1...) overprint ours
    for t, name, colour in zip(
        report["verdict"]["thresholds"], LABELS, ("tab:red", "tab:orange", "tab:green")
    ):
        ax.axhline(t, color=colour, lw=0.8, ls=":")
        ax.text(1.0, t, f" {name}", color=colour, fontsize=7, va="center", transform=ax.get_yaxis_transform())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("labelled training samples")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(
        f"{Path(report['dataset']).name or 'audit'}: {report['test_count']} held-out CAPTCHAs", fontsize=9
    )
    if points:
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def table(rows: list[list], head: list[str]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def fmt(value, spec: str = ".1%") -> str:
    return "n/a" if value is None else format(value, spec)


def page(report: dict, curve: Path, hardest: Path | None) -> str:
    """The whole page as one HTML string."""
    points = [
        [
            p["size"],
            p["seeds"],
            fmt(p["sequence_accuracy"]),
            f"{fmt(p['ci_low'])} to {fmt(p['ci_high'])}",
            fmt(p["char_accuracy"]),
            f"{p['train_seconds']:.0f}",
            fmt(p["ms_per_captcha"], ".1f"),
            ", ".join(sorted(set(p["readers"]))),
        ]
        for p in report["points"]
    ]
    cost = report["attacker_cost"]
    cost_rows = [
        [k.replace("_", " "), v if not isinstance(v, float) else f"{v:.4g}"] for k, v in cost.items()
    ]
    d = report.get("details") or {}
    chars = [
        [c, fmt(a)] for c, a in sorted((d.get("per_character_accuracy") or {}).items(), key=lambda x: x[1])
    ]
    confusions = [[pair, n] for pair, n in (d.get("top_confusions") or {}).items()]
    stopped = f"<p><b>Stopped early:</b> {html.escape(report['stopped'])}</p>" if report["stopped"] else ""
    advice = "".join(f"<li>{html.escape(a)}</li>" for a in report["advice"]) or "<li>No measured advice.</li>"
    clean = d.get("clean_cut_share")
    parts = [
        f"<h1>CAPTCHA audit: {html.escape(report['dataset'])}</h1>",
        f"<p class=verdict>{html.escape(report['verdict']['sentence'])}</p>",
        stopped,
        (
            f"<p>{report['images']} labelled images; {report['test_count']} held out by file, "
            f"training subsets drawn from the other {report['train_pool']}.</p>"
        ),
        f"<img src='{data_uri(curve)}' alt='learning curve'>",
        "<h2>Learning curve</h2>",
        table(
            points,
            [
                "samples",
                "seeds",
                "sequence acc.",
                "95% interval",
                "char acc.",
                "train s",
                "ms/CAPTCHA",
                "reader",
            ],
        ),
        "<h2>What an attacker pays</h2>",
        table(cost_rows, ["", "value"]),
        "<h2>Advice (measured)</h2>",
        f"<ul>{advice}</ul>",
        f"<h2>Weak and strong points (at {d.get('size', 'n/a')} samples, "
        f"reader {d.get('reader', 'n/a')})</h2>",
        f"<p>Images cut cleanly by shape alone: {fmt(clean)}"
        + ("" if clean is not None else " (the chosen reader does not segment)")
        + "</p>",
        "<div class=row>",
        table(chars, ["character", "accuracy"]),
        table(confusions, ["label->read", "count"]),
        "</div>",
    ]
    if hardest and hardest.exists():
        parts += ["<h2>Hardest held-out CAPTCHAs</h2>", f"<img src='{data_uri(hardest)}' alt='hardest'>"]
    style = (
        "body{font-family:sans-serif;max-width:900px;margin:2em auto}table{border-collapse:collapse;"
        "margin:0.5em 1em 0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}"
        ".verdict{font-size:120%;font-weight:bold}.row{display:flex;align-items:flex-start}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>CAPTCHA audit</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )


def render(report: dict, out: Path, last: Report | None, test: list | None) -> None:
    """Write curve.png, hardest.png (when a fit was read) and report.html into ``out``."""
    from captcha.evaluate import worst_cases

    curve, hardest = out / "curve.png", out / "hardest.png"
    plot_curve(report, curve)
    if last is not None and test:
        worst_cases(last, hardest)
    tmp = out / ".report.html.tmp"
    tmp.write_text(page(report, curve, hardest if last is not None else None), encoding="utf-8")
    tmp.replace(out / "report.html")
