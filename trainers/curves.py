"""A stage's learning curve as a PNG, drawn from log.jsonl: loss (and validation loss), what the
loss is made of (DPO's reward margin, AFT's or constrained DPO's scores), and the learning rate."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# the parts of a loss worth a line, by trainer: DPO and KTO's rewards, AFT's and constrained DPO's scores
PARTS = (
    "rewards/margins",
    "rewards/chosen",
    "rewards/rejected",
    "scores/chosen",
    "scores/rejected",
    "score_positive",
    "score_negative",
    "boundary",
)


def learning_curve(log: Path, stage: str, path: Path) -> None:
    rows = (
        [r for r in map(json.loads, log.read_text().splitlines()) if r.get("stage") == stage] if log.is_file() else []
    )
    fig, (loss_ax, part_ax, lr_ax) = plt.subplots(1, 3, figsize=(13, 3.6))
    _lines(loss_ax, rows, ("loss", "eval_loss"), "loss")
    _lines(part_ax, rows, PARTS, "reward margin or scores")
    _lines(lr_ax, rows, ("learning_rate",), "learning rate")
    fig.suptitle(f"stage {stage}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _lines(ax, rows: list[dict], keys: tuple[str, ...], ylabel: str) -> None:
    drawn = False
    for key in keys:
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=key)
            drawn = True
    if drawn:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "not logged", ha="center", transform=ax.transAxes, color="grey")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
