"""`agora eval`: run the chosen suites against a model and write metrics.json, report.md and
plots/.

Layout of `out`: one folder per suite (its run directory or replies, which resume when the same
command is run again), `plots/`, `report.md`, and `metrics.json`, written last: an `out` without
it is not a finished evaluation.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agents.backends import BACKENDS
from agents.errors import AgoraError
from agents.models import check_model_name
from dialogue.core.questions import DatasetConfig
from dialogue.evaluation.config import EvalConfig
from dialogue.evaluation.leakage import check_overlap
from dialogue.evaluation.metrics import metrics_of, records_to_json
from dialogue.evaluation.plots import draw
from dialogue.evaluation.report import compare_markdown, load_metrics, report_markdown
from dialogue.evaluation.report_page import write_report_page
from dialogue.evaluation.suites import SUITES, Shared, planned_questions
from dialogue.records import Card, EvalMetrics
from dialogue.running.config import load_persona
from dialogue.running.rundir import now, one_writer


def evaluate(config: EvalConfig, overrides: list[str] | None = None, log=print) -> EvalMetrics:
    out = Path(config.out)
    exports = find_exports(config.data)
    to_run, not_run = plan(config, exports)
    for persona in (config.persona.name, config.partner_persona):
        load_persona(persona)
    check_models(config)
    planned = {suite: planned_questions(config, suite, exports) for suite in to_run}
    seen = check_overlap(config.model, planned, config.allow_overlap)
    with one_writer(out):
        return _evaluate(config, out, exports, to_run, not_run, seen, overrides or [], log)


def check_models(config: EvalConfig) -> None:
    """The evaluated model and its partner can be loaded here (a served one is the server's business)."""
    if BACKENDS[config.backend.type].local_weights:
        for model in dict.fromkeys([config.model, config.partner or config.model]):
            check_model_name(model)


def _evaluate(
    config: EvalConfig,
    out: Path,
    exports: dict[str, Path],
    to_run: list[str],
    not_run: dict[str, str],
    seen: dict[str, list[str]],
    overrides: list[str],
    log,
) -> EvalMetrics:
    if (out / "metrics.json").exists():
        if not config.overwrite:
            raise AgoraError(f"out={out}: holds a finished evaluation; choose a new out=DIR or pass overwrite=true")
        for entry in out.iterdir():  # Hydra's own files stay, and the lock this process holds
            if not entry.name.startswith((".hydra", ".lock")) and entry.suffix != ".log":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    suites, shared = {}, Shared(exports)
    try:
        for suite in to_run:
            log(f"== {suite}", flush=True)
            result = SUITES[suite].run(config, out / suite, shared)
            found = metrics_of(result.records, SUITES[suite].statistics(result.details), config.resamples, config.seed)
            suites[suite] = {
                "metrics": {k: e.to_dict() for k, e in found.items()},
                "questions": len(result.records),
                "source": source_of(config, suite, exports),
                "details": result.details,
                "records": records_to_json(result.records),
            }
            for name, e in found.items():
                log(f"   {name}: {e}")
    finally:
        shared.close()
    for suite, result in suites.items():
        result["plots"] = draw(suite, result, out / "plots", config.model, SUITES[suite].plots)
    metrics = EvalMetrics(
        **{
            "model": config.model,
            "partner": config.partner or config.model,
            "persona": config.persona.name,
            "stimulus": config.stimulus.label,
            "seed": config.seed,
            "resamples": config.resamples,
            "overrides": overrides,
            "data": {
                "dataset": dataset_name(config.dataset),
                "split": config.dataset.split,
                "exports": [str(p) for p in exports.values()],
            },
            "overlap": seen,
            "suites": suites,
            "not_run": not_run,
            "config": config.model_dump(mode="json", exclude={"out", "progress", "overwrite"}),
            "finished_at": now(),
        }
    )
    (out / "report.md").write_text(report_markdown(metrics), encoding="utf-8")
    write_report_page(metrics, out)
    metrics.write(out / "metrics.json")  # last: an evaluation is finished when it exists
    return metrics


def dataset_name(dataset: DatasetConfig) -> str:
    return dataset.path or dataset.hf_id or dataset.name


def source_of(config: EvalConfig, suite: str, exports: dict[str, Path]) -> str:
    """Where a suite's questions came from, for the report."""
    split = f"split {config.dataset.split}"
    if miner := SUITES[suite].export:
        return f"rows of data={exports[miner]}, {split}"
    if SUITES[suite].source:
        return f"{SUITES[suite].source(config)}, {split}"
    return f"{dataset_name(config.dataset)}, {split}"


def find_exports(folders: list[str]) -> dict[str, Path]:
    """Each `data=` folder by the miner that wrote it (card.json says)."""
    exports: dict[str, Path] = {}
    for folder in folders:
        card = Path(folder) / "card.json"
        if not card.is_file():
            raise AgoraError(f"data={folder}: not an export of `agora mine` (no card.json)")
        miner = Card.read(card).miner
        readers = {suite.export: name for name, suite in SUITES.items() if suite.export}
        if miner not in readers:
            raise AgoraError(
                f"data={folder}: a {miner} export; the suites read exports of "
                + " and ".join(f"miner={export} ({name})" for export, name in readers.items())
            )
        if miner in exports:
            raise AgoraError(f"data={folder}: a second {miner} export (the first is {exports[miner]})")
        exports[miner] = Path(folder)
    return exports


def plan(config: EvalConfig, exports: dict[str, Path]) -> tuple[list[str], dict[str, str]]:
    """The suites to run; with suite=all, a suite whose export was not given is left out and
    the report says so. Asked for by name, it is an error."""
    to_run, not_run = [], {}
    for suite in config.suites:
        miner = SUITES[suite].export
        if miner and miner not in exports:
            why = f"needs data=DIR, an export of `agora mine miner={miner}`"
            if not config.every_suite:
                raise AgoraError(f"suite={suite}: {why}")
            not_run[suite] = why
            continue
        to_run.append(suite)
    return to_run, not_run


def write_comparison(sweep: Path) -> Path | None:
    """comparison.md of a multirun: one column per job, labelled by the overrides that differ."""
    jobs = sorted((p for p in sweep.iterdir() if (p / "metrics.json").is_file()), key=lambda p: p.name)
    if not jobs:
        return None
    evaluations = [load_metrics(p) for p in jobs]
    common = set.intersection(*(set(ev.overrides) for ev in evaluations))
    labels = [
        " ".join(o for o in ev.overrides if o not in common) or p.name for ev, p in zip(evaluations, jobs, strict=True)
    ]
    path = sweep / "comparison.md"
    table = compare_markdown(evaluations, labels, sweep / "comparison.png")
    path.write_text(
        f"# Comparison of {len(jobs)} runs\n\n"
        + "\n".join(f"- {label}: {p}" for label, p in zip(labels, jobs, strict=True))
        + f"\n\n{table}\n\n![comparison](comparison.png)\n",
        encoding="utf-8",
    )
    return path
