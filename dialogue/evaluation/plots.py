"""PNG plots of a suite's metrics (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from dialogue.records import EvalMetrics

LEVEL = "95% CI"


def error_bars(estimates: list[dict]) -> list[list[float]]:
    """The lengths of error bars below and above each value. A percentile interval need not hold
    its value, and rounding can leave a bound a hair past it: matplotlib refuses a negative
    length, so such a side is drawn as none."""
    return [
        [max(0.0, e["value"] - e["low"]) for e in estimates],
        [max(0.0, e["high"] - e["value"]) for e in estimates],
    ]


def metric_bars(suite: str, metrics: dict[str, dict], path: Path, model: str) -> None:
    """One bar per metric with its bootstrap interval; an undefined metric is marked n/a."""
    names = list(metrics)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(names)), 3.6))
    for x, name in enumerate(names):
        e = metrics[name]
        if e["value"] is None:
            ax.text(x, 0.02, "n/a", ha="center", va="bottom", color="grey")
            continue
        ax.bar(x, e["value"], color="tab:blue", width=0.6)
        ax.errorbar(x, e["value"], yerr=error_bars([e]), color="black", capsize=4)
    lows = [metrics[n]["low"] for n in names if metrics[n]["value"] is not None]
    ax.set_ylim(min([0.0, *lows]) - 0.05, 1.05)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("metric")
    ax.set_ylabel(f"value ({LEVEL})")
    ax.set_title(f"{suite}: {model}", fontsize=10)
    _save(fig, path)


def curve(xs: list[int], metrics: list[dict], path: Path, title: str, xlabel: str, ylabel: str) -> None:
    """A metric over a count (MR@k over k), with its interval as a band."""
    points = [(x, e) for x, e in zip(xs, metrics, strict=True) if e["value"] is not None]
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    if points:
        ax.plot([x for x, _ in points], [e["value"] for _, e in points], marker="o")
        ax.fill_between(
            [x for x, _ in points],
            [e["low"] for _, e in points],
            [e["high"] for _, e in points],
            alpha=0.25,
            label=LEVEL,
        )
        ax.legend()
    else:
        ax.text(0.5, 0.5, "n/a: no question answered correctly first", ha="center", transform=ax.transAxes)
    ax.set_xticks(xs)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def histogram(
    values: list[float], path: Path, title: str, xlabel: str, ylabel: str, bins: int | list[float] = 20
) -> None:
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    if values:
        ax.hist(values, bins=bins, color="tab:orange", edgecolor="black")
    else:
        ax.text(0.5, 0.5, "nothing to count", ha="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def comparison_bars(evaluations: list[EvalMetrics], labels: list[str], path: Path) -> None:
    """One panel per suite: each metric's value for each evaluation, side by side, with its interval."""
    suites = list(dict.fromkeys(s for ev in evaluations for s in ev.suites))
    fig, axes = plt.subplots(len(suites), 1, figsize=(8.0, 3.2 * len(suites)), squeeze=False)
    width = 0.8 / len(evaluations)
    for ax, suite in zip(axes[:, 0], suites, strict=True):
        metrics = [ev.suites[suite].metrics if suite in ev.suites else {} for ev in evaluations]
        names = list(dict.fromkeys(n for found in metrics for n in found))
        for j, (found, label) in enumerate(zip(metrics, labels, strict=True)):
            xs = [
                i + (j - (len(evaluations) - 1) / 2) * width
                for i, n in enumerate(names)
                if found.get(n, {}).get("value") is not None
            ]
            es = [found[n] for n in names if found.get(n, {}).get("value") is not None]
            ax.bar(xs, [e["value"] for e in es], width=width, label=label)
            ax.errorbar(
                xs,
                [e["value"] for e in es],
                fmt="none",
                color="black",
                capsize=3,
                yerr=error_bars(es),
            )
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"value ({LEVEL})")
        ax.set_title(suite, fontsize=10)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.legend(fontsize=8)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(suite: str, result: dict, folder: Path, model: str, extra=None) -> list[str]:
    """The suite's plots under `folder`: its metrics as bars, then the suite's own (`extra`,
    from its entry in SUITES); their file names."""
    model = Path(model).name if Path(model).is_dir() else model  # an adapter's folder, not its whole path
    names = [f"{suite}.png"]
    metric_bars(suite, result["metrics"], folder / names[0], model)
    return names + (extra(result, folder, model) if extra else [])


def misinformation_plots(result: dict, folder: Path, model: str) -> list[str]:
    """MR@k by k, and the turn of each question's first flip."""
    details = result["details"]
    k = details["k"]
    curve(
        list(range(1, k + 1)),
        [result["metrics"][f"MR@{j}"] for j in range(1, k + 1)],
        folder / "misinformation_mr_at_k.png",
        f"misinformation ({details['style']}): {model}",
        "persuasion turns k",
        "MR@k (persuaded / correct at first)",
    )
    flips = [int(turn) for turn, count in details["turns_to_flip"].items() for _ in range(count)]
    histogram(
        flips,
        folder / "misinformation_turns_to_flip.png",
        f"turns to flip: {model}",
        "persuasion turn of the first flip",
        "questions",
        bins=[j + 0.5 for j in range(0, k + 1)],
    )
    return ["misinformation_mr_at_k.png", "misinformation_turns_to_flip.png"]


def assessment_plots(result: dict, folder: Path, model: str) -> list[str]:
    """The score margins of the (positive, negative) pairs."""
    histogram(
        result["details"]["margins"],
        folder / "assessment_margins.png",
        f"assessment: {model}",
        "mean log-prob(positive) - mean log-prob(negative)",
        "pairs",
    )
    return ["assessment_margins.png"]
