"""metrics.json -> report.md, and side-by-side tables of several evaluations."""

from __future__ import annotations

import json
from pathlib import Path

from agents.errors import AgoraError

ABOUT = {
    "balanced": "Greedy reply to held-out persuasion turns: accuracy when the persuasion argues for a wrong "
                "answer (should resist), for the right one (should accept), and their mean.",
    "are_you_sure": "Answer, a fixed challenge, a final answer: accuracy before and after, and how often the "
                    "answer flips.",
    "misinformation": "A persuader argues for a fixed wrong answer; MR@k = persuaded to it within k turns / "
                      "answered correctly at first.",
    "team_debate": "Two agents answer on their own, then debate four turns; team accuracy is the mean of both "
                   "agents' correctness, per speaking order (order 1: the model speaks first).",
    "assessment": "Fraction of (correct, wrong) answer pairs the model scores in the right order by mean token "
                  "log-probability.",
    "critique": "The model critiques worked solutions with known step truth (F1 with 'incorrect' as the positive "
                "class), then revises; correction gain = fix rate - break rate.",
}


def cell(e: dict) -> str:
    if e["value"] is None:
        return "n/a"
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def report_markdown(metrics: dict) -> str:
    lines = [f"# Evaluation: {metrics['model']}", ""]
    lines.append(f"partner: {metrics['partner']} · persona: {metrics['persona']} · seed: {metrics['seed']} · "
                 f"intervals: 95% percentile bootstrap over questions ({metrics['resamples']} resamples)")
    lines.append("")
    for suite, result in metrics["suites"].items():
        lines += [f"## {suite}", "", ABOUT[suite], "", f"questions: {result['questions']}", "",
                  "| metric | value [95% CI] | n |", "|---|---|---|"]
        lines += [f"| {name} | {cell(e)} | {e['n']} |" for name, e in result["metrics"].items()]
        details = {k: v for k, v in result.get("details", {}).items() if k != "margins"}
        if details:
            lines += ["", "details: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in details.items())]
        lines += [""] + [f"![{suite}](plots/{name})" for name in result.get("plots", [])] + [""]
    for suite, why in metrics.get("not_run", {}).items():
        lines += [f"## {suite}", "", f"not run: {why}", ""]
    return "\n".join(lines)


def load_metrics(folder: str | Path) -> dict:
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        raise AgoraError(f"{folder}: no metrics.json (not a finished `agora eval` output)")
    return json.loads(path.read_text())


def compare_markdown(evaluations: list[dict], labels: list[str]) -> str:
    """One row per (suite, metric) any evaluation has; one column per evaluation, and for two
    the difference (second - first)."""
    rows: dict[tuple[str, str], None] = {}
    for ev in evaluations:
        for suite, result in ev["suites"].items():
            for name in result["metrics"]:
                rows[(suite, name)] = None
    two = len(evaluations) == 2
    header = ["suite", "metric", *labels] + ([f"{labels[1]} - {labels[0]}"] if two else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for suite, name in rows:
        found = [ev["suites"].get(suite, {}).get("metrics", {}).get(name) for ev in evaluations]
        cells = [cell(e) if e else "-" for e in found]
        if two:
            a, b = found
            ok = a and b and a["value"] is not None and b["value"] is not None
            cells.append(f"{b['value'] - a['value']:+.3f}" if ok else "-")
        lines.append("| " + " | ".join([suite, name, *cells]) + " |")
    return "\n".join(lines)


def compare(folders: list[str], labels: list[str] | None = None) -> str:
    evaluations = [load_metrics(f) for f in folders]
    if labels is None:
        names = [Path(f).name for f in folders]
        labels = names if len(set(names)) == len(names) else [str(f) for f in folders]
    models = "\n".join(f"- {label}: model {ev['model']}, persona {ev['persona']} ({folder})"
                       for label, ev, folder in zip(labels, evaluations, folders))
    return f"# Comparison\n\n{models}\n\n{compare_markdown(evaluations, labels)}\n"
