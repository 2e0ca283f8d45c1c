"""metrics.json -> report.md, and comparisons of several evaluations paired by question."""

from __future__ import annotations

import json
from pathlib import Path

from agents.errors import AgoraError
from dialogue.evaluation.metrics import differences_of, records_from_json
from dialogue.evaluation.plots import comparison_bars
from dialogue.evaluation.stats import holm
from dialogue.evaluation.suites import SUITES
from dialogue.records import EvalMetrics


def cell(e: dict, signed: bool = False) -> str:
    if e["value"] is None:
        return "n/a"
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(e['value'])} [{f.format(e['low'])}, {f.format(e['high'])}]"


INTERVALS = (
    "95% intervals: Wilson score for a proportion with one record per question; otherwise a percentile "
    "bootstrap over whole questions ({resamples} resamples), or Wilson over the number of questions where "
    "every record agrees. The method column says which."
)


def report_markdown(metrics: EvalMetrics) -> str:
    lines = [f"# Evaluation: {metrics.model}", ""]
    lines.append(
        f"model: {metrics.model} · partner: {metrics.partner} · persona: {metrics.persona} · "
        f"stimulus: {metrics.stimulus} · seed: {metrics.seed}"
    )
    data = metrics.data
    if data:
        lines.append(
            f"questions: {data['dataset']}, split {data['split']}"
            + (f" · exports: {', '.join(data['exports'])}" if data.get("exports") else "")
        )
    if metrics.overlap:
        lines += [
            "",
            "**Trained-on questions were evaluated (allow_overlap=true):** "
            + ", ".join(f"{suite}: {len(ids)}" for suite, ids in metrics.overlap.items()),
        ]
    lines += ["", INTERVALS.format(resamples=metrics.resamples), ""]
    for suite, result in metrics.suites.items():
        source = result.source
        lines += [
            f"## {suite}",
            "",
            SUITES[suite].about,
            "",
            f"questions: {result.questions}" + (f" ({source})" if source else ""),
            "",
            "| metric | value [95% CI] | n | method |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {cell(e)} | {e['n']} | {e.get('method', 'bootstrap')} |" for name, e in result.metrics.items()
        ]
        details = {k: v for k, v in result.details.items() if k != "margins"}
        if details:
            lines += ["", "details: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in details.items())]
        lines += [""] + [f"![{suite}](plots/{name})" for name in result.plots] + [""]
    for suite, why in metrics.not_run.items():
        lines += [f"## {suite}", "", f"not run: {why}", ""]
    return "\n".join(lines)


def load_metrics(folder: str | Path) -> EvalMetrics:
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        raise AgoraError(f"{folder}: no metrics.json (not a finished `agora eval` output)")
    return EvalMetrics.read(path)


def compare_markdown(evaluations: list[EvalMetrics], labels: list[str], plot: Path | None = None) -> str:
    """One row per (suite, metric); one column per evaluation and, for every evaluation after the
    first, its difference from the first, paired by question, with a paired bootstrap interval
    (marked * where it excludes 0). Evaluations of a suite on different questions are refused."""
    first = evaluations[0]
    suites = list(dict.fromkeys(s for ev in evaluations for s in ev.suites))
    differences: dict[tuple[str, str, int], dict] = {}
    for suite in suites:
        if suite not in first.suites:
            continue
        base = _records(first, suite, labels[0])
        statistics = SUITES[suite].statistics(first.suites[suite].details)
        for i, ev in enumerate(evaluations[1:], start=1):
            if suite not in ev.suites:
                continue
            other = _records(ev, suite, labels[i])
            _same_questions(suite, base, other, labels[0], labels[i])
            found = differences_of(base, other, statistics, first.resamples, first.seed)
            for name, e in found.items():
                differences[(suite, name, i)] = e.to_dict()
    tested = [key for key, d in differences.items() if d.get("p_value") is not None]
    for key, adjusted in zip(tested, holm([differences[key]["p_value"] for key in tested]), strict=True):
        differences[key]["holm"] = adjusted
    header = ["suite", "metric", *labels, *(f"{label} - {labels[0]}" for label in labels[1:])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for suite in suites:
        names = dict.fromkeys(n for ev in evaluations for n in _metrics_of(ev, suite))
        for name in names:
            found = [_metrics_of(ev, suite).get(name) for ev in evaluations]
            cells = [
                f"{cell(e)} (n={e['n']})" if e and e["value"] is not None else ("n/a" if e else "-") for e in found
            ]
            for i in range(1, len(evaluations)):
                d = differences.get((suite, name, i))
                cells.append("-" if d is None else cell(d, signed=True) + _significance(d))
            lines.append("| " + " | ".join([suite, name, *cells]) + " |")
    if plot is not None:
        comparison_bars(evaluations, labels, plot)
    note = (
        "Differences: the later evaluation minus the first, over the same questions, with a 95% paired "
        "bootstrap interval; * marks an interval that excludes 0. Holm p: the bootstrap p-value of no "
        f"difference adjusted by Holm's method over all {len(tested)} differences of this table, so that "
        "the chance of any false finding among them stays at 5%; ** marks Holm p < 0.05. A * without ** "
        "is a lead to test again on new questions, not a finding."
    )
    return "\n".join(lines) + "\n\n" + note


def _metrics_of(evaluation: EvalMetrics, suite: str) -> dict[str, dict]:
    """A suite's metrics in one evaluation; none where it did not run that suite."""
    return evaluation.suites[suite].metrics if suite in evaluation.suites else {}


def _records(evaluation: EvalMetrics, suite: str, label: str) -> dict[str, list]:
    stored = evaluation.suites[suite].records
    if stored is None:
        raise AgoraError(
            f"{label}: its metrics.json has no per-question records for {suite} (it was written by an "
            "older agora); evaluate again to compare it"
        )
    return records_from_json(stored)


def _same_questions(suite: str, a: dict, b: dict, label_a: str, label_b: str) -> None:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:

        def some(ids: list[str]) -> str:
            return ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")

        raise AgoraError(
            f"{suite}: {label_a} and {label_b} were evaluated on different questions, so they cannot be "
            f"paired: {len(only_a)} only in {label_a} ({some(only_a)}), {len(only_b)} only in {label_b} "
            f"({some(only_b)}); evaluate both with the same dataset and split"
        )


def _excludes_zero(e: dict) -> bool:
    return e["value"] is not None and (e["low"] > 0 or e["high"] < 0)


def _significance(d: dict) -> str:
    """The raw interval's mark, then the Holm-adjusted p-value beside it."""
    if d.get("holm") is None:
        return " *" if _excludes_zero(d) else ""
    marks = "**" if d["holm"] < 0.05 else "*" if _excludes_zero(d) else ""
    return (f" {marks}" if marks else "") + f" (Holm p={d['holm']:.3f})"


def folder_labels(folders: list[str]) -> list[str]:
    """Each folder's name, or its whole path where two names are the same."""
    names = [Path(f).name or str(f) for f in folders]
    return names if len(set(names)) == len(names) else [str(f) for f in folders]


def compare(folders: list[str], labels: list[str] | None = None, plot: Path | None = None) -> tuple[str, list[str]]:
    """(the comparison as markdown, the label of each evaluation)."""
    evaluations = [load_metrics(f) for f in folders]
    labels = labels or folder_labels(folders)
    models = "\n".join(
        f"- {label}: model {ev.model}, persona {ev.persona}, stimulus {ev.stimulus} ({folder})"
        for label, ev, folder in zip(labels, evaluations, folders, strict=True)
    )
    return f"# Comparison\n\n{models}\n\n{compare_markdown(evaluations, labels, plot)}\n", labels
