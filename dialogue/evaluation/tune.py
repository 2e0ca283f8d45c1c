"""`agora tune-prompt`: a seeded search for a phrase to append to the model's system message
(automatic prompt optimisation over NegativePrompt / positive-thinking stimuli), scored by one
metric of one evaluation suite on the validation split, and then, for the best few, measured on
the test split against no phrase, paired by question: the search chose its phrases on questions
the final measurement never uses, so the test figures carry none of the selection's luck.

The search: generation 0 scores every phrase of the `conf/stimulus/` sets named in `tune.sets`
(a few each); each later generation keeps the `tune.population` best phrases found so far and
makes one child of each, by a seeded choice of: a splice (the first sentence of one kept phrase
and the last of another), or, with `tune.rewrites`, the model's own rewording
(`tune.rewrite_instruction`). A phrase is scored once; its suite run lives in
`out/search/PHRASE_ID/` and resumes like every suite. `out/search.jsonl` lists each scored phrase,
`out/report.md` the search and the test comparison, `out/tune.json` (written last) the result.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import yaml
from pydantic import Field, model_validator

from agents.config import SamplingConfig, Strict
from agents.errors import AgoraError
from agents.files import write_atomic
from agents.requests import ChatRequest
from dialogue.evaluation.config import EVALUATED, EvalConfig
from dialogue.evaluation.leakage import check_overlap
from dialogue.evaluation.metrics import differences_of, metrics_of
from dialogue.evaluation.run import check_models
from dialogue.evaluation.suites import SUITES, Shared, planned_questions
from dialogue.running.config import StimulusConfig
from dialogue.running.rundir import one_writer
from dialogue.running.simulate import load_backend

STIMULUS_DIR = Path(__file__).resolve().parents[2] / "conf" / "stimulus"


class TuneSettings(Strict):
    metric: str  # a metric of `suite`, the one the search maximises (or minimises)
    maximize: bool = True
    sets: list[str] = ["positive", "negative"]  # conf/stimulus/ sets the phrases start from
    population: int = Field(4, ge=1)
    generations: int = Field(3, ge=0)
    rewrites: bool = True  # let the model reword kept phrases
    rewrite_instruction: str
    best: int = Field(2, ge=1)  # phrases measured on the test split
    search_split: str = "validation"
    test_split: str = "test"


class TuneConfig(EvalConfig):
    tune: TuneSettings

    @model_validator(mode="after")
    def _one_suite(self) -> TuneConfig:
        if self.every_suite or len(self.suite) != 1:
            raise ValueError("suite: tune-prompt scores one suite; give suite=NAME")
        if self.tune.search_split == self.tune.test_split:
            raise ValueError(
                "tune.search_split and tune.test_split must differ: the test measures what the search did not see"
            )
        return self


def phrase_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def stimulus_phrases(sets: list[str]) -> list[str]:
    """The phrases of the named conf/stimulus/ sets, in file order."""
    found = []
    for name in sets:
        path = STIMULUS_DIR / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in STIMULUS_DIR.glob("*.yaml")))
            raise AgoraError(f"tune.sets: no stimulus set '{name}' in {STIMULUS_DIR} ({known})")
        found += list((yaml.safe_load(path.read_text()).get("phrases") or {}).values())
    if not found:
        raise AgoraError(f"tune.sets={sets}: these sets hold no phrases to start from")
    return list(dict.fromkeys(found))


def with_phrase(config: TuneConfig, text: str | None, split: str, out: Path) -> EvalConfig:
    """The evaluation of `text` appended to the model's system message (None: no phrase)."""
    stimulus = (
        StimulusConfig(name="tune", phrase=phrase_id(text), phrases={phrase_id(text): text}, agents=[EVALUATED])
        if text
        else StimulusConfig()
    )
    fields = {k: v for k, v in config if k != "tune"}
    return EvalConfig(
        **fields
        | {"stimulus": stimulus, "out": str(out), "dataset": config.dataset.model_copy(update={"split": split})}
    )


def splice(first: str, second: str) -> str:
    """The first sentence of one phrase and the last of another."""
    sentences = [re.split(r"(?<=[.!?])\s+", text.strip()) for text in (first, second)]
    return f"{sentences[0][0]} {sentences[1][-1]}".strip()


class Search:
    def __init__(self, config: TuneConfig, out: Path, shared: Shared, log):
        self.config, self.out, self.shared, self.log = config, out, shared, log
        self.suite = config.suite[0]
        self.scores: dict[str, dict] = {}  # phrase text -> its line of search.jsonl
        self.rng = random.Random(config.seed)
        self.history = out / "search.jsonl"
        if self.history.exists():  # a rerun goes on from the phrases already scored
            for line in self.history.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.scores[entry["phrase"]] = entry

    def run(self, config: EvalConfig, folder: Path):
        result = SUITES[self.suite].run(config, folder, self.shared)
        statistics = SUITES[self.suite].statistics(result.details)
        if self.config.tune.metric not in statistics:
            raise AgoraError(
                f"tune.metric: '{self.config.tune.metric}' is not a metric of {self.suite} ({', '.join(statistics)})"
            )
        return result.records, statistics

    def score(self, text: str, generation: int, origin: str) -> dict:
        if text in self.scores:
            return self.scores[text]
        tune = self.config.tune
        folder = self.out / "search" / phrase_id(text)
        records, statistics = self.run(with_phrase(self.config, text, tune.search_split, folder), folder)
        found = metrics_of(records, {tune.metric: statistics[tune.metric]}, self.config.resamples, self.config.seed)
        entry = {
            "phrase": text,
            "id": phrase_id(text),
            "generation": generation,
            "origin": origin,
            "value": found[tune.metric].value,
            "n": found[tune.metric].n,
            "questions": sorted(records),
        }
        self.scores[text] = entry
        with self.history.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        self.log(f"generation {generation}: {tune.metric}={entry['value']} ({origin}) {text}")
        return entry

    def ranked(self, before: int | None = None) -> list[dict]:
        """The phrases scored (in generations before `before`), best first; ties in the order scored."""
        defined = [
            e for e in self.scores.values() if e["value"] is not None and (before is None or e["generation"] < before)
        ]
        return sorted(defined, key=lambda e: e["value"], reverse=self.config.tune.maximize)

    def rewrite(self, text: str) -> str | None:
        """The model's own rewording of a phrase: its first line, or None when it gave nothing usable."""
        config = self.config
        backend = load_backend(self.shared.pool, config.model, config.backend, config.seed)
        sampling = SamplingConfig(temperature=0.7, top_p=0.95, max_tokens=64).to_sampling()
        prompt = config.tune.rewrite_instruction.format(phrase=text)
        request = ChatRequest((("user", prompt),), sampling, self.rng.randrange(2**31))
        completion = backend.generate([request])[0]
        line = next((part.strip().strip("\"'") for part in completion.text.splitlines() if part.strip()), "")
        return line if 0 < len(line) <= 300 and not completion.error else None

    def search(self, pool: list[str]) -> list[dict]:
        tune = self.config.tune
        for text in pool:
            self.score(text, 0, "set")
        for generation in range(1, tune.generations + 1):
            # from what the generations before found, so that a rerun that reads them back goes the same way
            kept = [e["phrase"] for e in self.ranked(before=generation)[: tune.population]]
            moves = ["splice"] * (len(kept) > 1) + ["rewrite"] * tune.rewrites
            for parent in kept if moves else []:
                move = self.rng.choice(moves)
                if move == "splice":
                    child = splice(parent, self.rng.choice([k for k in kept if k != parent]))
                else:
                    child = self.rewrite(parent)
                if child:
                    self.score(child, generation, move)
        return self.ranked()


def tune_prompt(config: TuneConfig, log=print) -> dict:
    suite, out = config.suite[0], Path(config.out)
    if SUITES[suite].export:
        raise AgoraError(f"suite={suite}: tune-prompt runs the protocol suites, not ones read from an export")
    pool = stimulus_phrases(config.tune.sets)
    check_models(config)
    for split in (config.tune.search_split, config.tune.test_split):  # a trained model's own questions
        at_split = with_phrase(config, None, split, out)
        check_overlap(config.model, {suite: planned_questions(at_split, suite, {})}, config.allow_overlap)
    out.mkdir(parents=True, exist_ok=True)
    with one_writer(out):
        shared = Shared({})
        try:
            search = Search(config, out, shared, log)
            ranked = search.search(pool)
            finalists = [e["phrase"] for e in ranked[: config.tune.best]]
            return _measure_on_test(config, out, search, finalists, log)
        finally:
            shared.close()


def _measure_on_test(config: TuneConfig, out: Path, search: Search, finalists: list[str], log) -> dict:
    tune = config.tune
    log(f"== test split: no phrase and the {len(finalists)} best")
    baseline_records, statistics = search.run(
        with_phrase(config, None, tune.test_split, out / "test" / "none"), out / "test" / "none"
    )
    chosen = {tune.metric: statistics[tune.metric]}
    rows = []
    for text in finalists:
        folder = out / "test" / phrase_id(text)
        records, _ = search.run(with_phrase(config, text, tune.test_split, folder), folder)
        value = metrics_of(records, chosen, config.resamples, config.seed)[tune.metric]
        difference = differences_of(baseline_records, records, chosen, config.resamples, config.seed)[tune.metric]
        rows.append(
            {"phrase": text, "id": phrase_id(text), "test": value.to_dict(), "minus_none": difference.to_dict()}
        )
    none = metrics_of(baseline_records, chosen, config.resamples, config.seed)[tune.metric]
    searched = sorted({q for e in search.scores.values() for q in e["questions"]})
    result = {
        "suite": config.suite[0],
        "metric": tune.metric,
        "maximize": tune.maximize,
        "model": config.model,
        "search_split": tune.search_split,
        "test_split": tune.test_split,
        "searched_questions": searched,
        "test_questions": sorted(baseline_records),
        "none": none.to_dict(),
        "finalists": rows,
        "phrases_scored": len(search.scores),
    }
    (out / "report.md").write_text(_report(result, search.ranked()), encoding="utf-8")
    write_atomic(out / "tune.json", json.dumps(result, indent=2))
    return result


def _report(result: dict, ranked: list[dict]) -> str:
    metric = result["metric"]
    lines = [
        f"# tune-prompt: {result['suite']} / {metric}",
        "",
        f"- model: {result['model']}",
        f"- searched on the {result['search_split']} split ({len(result['searched_questions'])} questions), "
        f"measured on the {result['test_split']} split ({len(result['test_questions'])} questions, "
        "none of them searched on)",
        f"- phrases scored: {result['phrases_scored']}",
        "",
        "## Test split: each finalist against no phrase, paired by question",
        "",
        f"| phrase | {metric} [95% CI] | minus no phrase [95% CI] (p) |",
        "|---|---|---|",
        f"| (no phrase) | {_estimate(result['none'])} | |",
    ]
    for row in result["finalists"]:
        d = row["minus_none"]
        shown = (
            "n/a"
            if d["value"] is None
            else f"{d['value']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] (p={d['p_value']:.3f})"
        )
        lines.append(f"| {_cell(row['phrase'])} | {_estimate(row['test'])} | {shown} |")
    lines += [
        "",
        f"## Search ({result['search_split']} split), best first",
        "",
        f"| phrase | generation | how | {metric} | n |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(e['phrase'])} | {e['generation']} | {e['origin']} | {e['value']:.3f} | {e['n']} |" for e in ranked
    ]
    return "\n".join(lines) + "\n"


def _estimate(e: dict) -> str:
    return "n/a" if e["value"] is None else f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}] (n={e['n']})"


def _cell(text: str) -> str:
    """A phrase as one markdown table cell (a model's rewording may hold anything)."""
    return text.replace("\\", "\\\\").replace("|", "\\|")
