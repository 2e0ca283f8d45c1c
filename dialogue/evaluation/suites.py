"""The evaluation suites. Each one runs a protocol through `simulate` (greedy, into its own run
directory, so an interrupted suite resumes) or reads an export of `agora mine`, turns what it
got into per-question records, and returns the metrics with bootstrap intervals.

Agent A is the evaluated model; agent B is the partner (the persuader, the teammate), which is
the model itself unless `partner=` names another. A model is loaded once for all the suites.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from tqdm.auto import tqdm

from agents.config import AgentConfig, SamplingConfig, TransformersBackendConfig
from agents.errors import AgoraError
from agents.requests import Backend, ChatRequest, Sampling
from dialogue.core.judge import Judge
from dialogue.core.questions import DatasetConfig, Question, content_key, load_questions
from dialogue.core.tree import DialogueTree
from dialogue.evaluation import metrics as m
from dialogue.evaluation.config import EVALUATED, PARTNER, EvalConfig
from dialogue.evaluation.records import challenged, debated, misinformed, revised, verdicts
from dialogue.evaluation.solutions import GivenSolutions, worked_solutions
from dialogue.protocols import Critique
from dialogue.protocols.base import Protocol
from dialogue.records import Card
from dialogue.running.cache import CachedBackend, GenerationCache
from dialogue.running.config import SimulateConfig
from dialogue.running.rundir import RunDir
from dialogue.running.simulate import load_backend, simulate


@dataclass
class Shared:
    """What every suite of one evaluation may use: the exports by miner, the loaded backends."""

    exports: dict[str, Path]
    pool: dict[str, Backend] = field(default_factory=dict)

    def close(self) -> None:
        for backend in self.pool.values():
            backend.close()


@dataclass
class SuiteResult:
    records: dict[str, list]  # question id -> what that question contributed (metrics.py)
    details: dict = field(default_factory=dict)  # plain JSON the report and plots show beside the metrics


def by_question(keyed: list[tuple[str, object]]) -> dict[str, list]:
    """Records grouped by question id: the bootstrap resamples the groups."""
    groups: dict[str, list] = {}
    for key, record in keyed:
        groups.setdefault(key, []).append(record)
    return groups


# --- suites that run a protocol ----------------------------------------------------------------


def _simulate(
    config: EvalConfig,
    shared: Shared,
    suite: str,
    folder: Path,
    protocol_config=None,
    protocol: Protocol | None = None,
    dataset: DatasetConfig | None = None,
) -> list[DialogueTree]:
    greedy = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=config.max_tokens)
    partner_speaks = suite in ("misinformation", "team_debate")
    agents = {
        EVALUATED: AgentConfig(model=config.model, persona=config.persona.name, sampling=greedy),
        PARTNER: AgentConfig(
            model=(config.partner or config.model) if partner_speaks else config.model,
            persona=config.partner_persona if partner_speaks else config.persona.name,
            sampling=greedy,
        ),
    }
    run_config = SimulateConfig(
        out=str(folder),
        seed=config.seed,
        agents=agents,
        backend=config.backend,
        protocol=protocol_config or getattr(config.protocols, suite),
        dataset=dataset or config.dataset,
        prompts=config.prompts,
        stimulus=config.stimulus.model_copy(update={"agents": [EVALUATED]}),
        scale=config.scale,
        progress=config.progress,
    )
    result = simulate(run_config, folder, protocol, shared.pool)
    if result.summary.failed_turns:
        raise AgoraError(
            f"{suite}: {result.summary.failed_turns} requests failed (their turns in {folder} say why); "
            "no metric is computed from an incomplete run. Run the same command again to regrow them"
        )
    return list(result.run.trees())


def are_you_sure(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    trees = _simulate(config, shared, "are_you_sure", folder / "run")
    return SuiteResult({t.tree_id: [challenged(t)] for t in trees})


def misinformation(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    protocol = config.protocols.misinformation
    trees = _simulate(config, shared, "misinformation", folder / "run")
    records = {t.tree_id: [misinformed(t)] for t in trees}
    flips = m.turns_to_flip([r for rs in records.values() for r in rs])
    return SuiteResult(
        records,
        {
            "turns_to_flip": {str(turn): count for turn, count in flips.items()},  # JSON keys
            "k": protocol.turns,
            "style": protocol.style,
        },
    )


def team_debate(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    keyed = []
    for order, agents in ((1, [EVALUATED, PARTNER]), (2, [PARTNER, EVALUATED])):
        protocol = config.protocols.team_debate.model_copy(update={"agents": agents})
        for tree in _simulate(config, shared, "team_debate", folder / f"order{order}", protocol):
            keyed += [(tree.tree_id, record) for record in debated(tree, order, [EVALUATED, PARTNER])]
    return SuiteResult(by_question(keyed))


def critique_dataset(config: EvalConfig) -> DatasetConfig:
    """The arithmetic problems the critique suite's solutions are for, in the evaluated split."""
    data, split = config.critique, config.dataset
    return DatasetConfig(
        name="arithmetic",
        count=data.count,
        seed=data.seed,
        steps=data.steps,
        split=split.split,
        split_seed=split.split_seed,
        split_fractions=split.split_fractions,
    )


def critique(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    data = config.critique
    solutions = {
        s.question.question_id: s for s in worked_solutions(data.count, data.seed, data.steps, data.wrong_fraction)
    }
    protocol = GivenSolutions(Critique(config.protocols.critique), {k: s.text for k, s in solutions.items()})
    trees = _simulate(config, shared, "critique", folder / "run", protocol=protocol, dataset=critique_dataset(config))
    records = {t.tree_id: verdicts(t, solutions[t.tree_id]) + revised(t) for t in trees}
    unreadable = sum(1 for t in trees for c in t.turns() if c.depth == 1 and (c.parsed is None or "error" in c.parsed))
    wrong = sum(1 for t in trees if not solutions[t.tree_id].answer_correct)
    return SuiteResult(records, {"unreadable_critiques": unreadable, "given_solutions_wrong": wrong})


# --- suites that read an export ----------------------------------------------------------------


def export_rows(export: Path, dataset: DatasetConfig) -> list[dict]:
    """The rows of an export whose questions are in `dataset.split`, by the same rule that chose
    the questions of every other suite (not by which file `agora mine` put them in)."""
    rows = [
        row
        for path in sorted(export.glob("*.parquet"))
        for row in pq.read_table(path).to_pylist()
        if dataset.selects(row["question_id"])
    ]
    if not rows:
        raise AgoraError(
            f"data={export}: no rows for questions in split={dataset.split} (dataset.split). "
            "Mine more questions, or evaluate another split"
        )
    return rows


def planned_questions(config: EvalConfig, suite: str, exports: dict[str, Path]) -> dict[str, str | None]:
    """The questions a suite will score, known before anything runs: id -> content key (None for
    an export written before its card held keys)."""
    if miner := SUITES[suite].export:
        card = Card.read(exports[miner] / "card.json")
        keys = {qid: key for split in card.question_keys.values() for qid, key in split.items()}
        return {row["question_id"]: keys.get(row["question_id"]) for row in export_rows(exports[miner], config.dataset)}
    dataset = critique_dataset(config) if suite == "critique" else config.dataset
    return {q.question_id: content_key(q) for q in load_questions(dataset).questions}


def source_questions(rows: list[dict], export: Path) -> dict[tuple[str, str], tuple[Question, Judge]]:
    """(run, tree id) -> the question and the source run's judge, for every row."""
    found = {}
    for run_path in dict.fromkeys(row["run"] for row in rows):
        run = RunDir(run_path)
        manifest = run.manifest()
        if manifest is None or not run.trees_path.exists():
            raise AgoraError(
                f"data={export}: its rows come from run={run_path}, which is not a run directory "
                "here; the questions and their answers are read from it"
            )
        config = manifest.run_config()
        judge = Judge(
            manifest.answer_kind or "choice",
            echoes=list(config.prompts.answer_format.values()),
            on_conflict=config.dataset.judge_conflict,
        )
        for tree in run.trees():
            found[(run_path, tree.tree_id)] = (tree.question, judge)
    return found


def with_persona(prompt: list[dict], persona: str) -> list[dict]:
    """The prompt under the evaluated persona: its system message replaced (or dropped)."""
    rest = [msg for msg in prompt if msg["role"] != "system"]
    return ([{"role": "system", "content": persona.strip()}] if persona.strip() else []) + rest


def balanced(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    rows = export_rows(shared.exports["pbt"], config.dataset)
    questions = source_questions(rows, shared.exports["pbt"])
    persona = config.system_message
    # Several pairs can share one persuasion turn: each distinct prompt is asked once.
    prompts: dict[str, dict] = {}
    for row in rows:
        prompt = with_persona(row["prompt"], persona)
        prompts.setdefault(json.dumps(prompt), {"prompt": prompt, "row": row})
    greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=config.max_tokens)
    requests = [
        ChatRequest(tuple((msg["role"], msg["content"]) for msg in p["prompt"]), greedy, config.seed)
        for p in prompts.values()
    ]
    completions = _generate(config, shared, folder, requests)
    failed = [done.error for done in completions if done.error is not None]
    if failed:
        raise AgoraError(
            f"balanced: {len(failed)} of {len(completions)} requests failed (the first: {failed[0]}); "
            "run the same command again to ask them again"
        )
    keyed, replies = [], []
    for item, done in zip(prompts.values(), completions, strict=True):
        row = item["row"]
        question, judge = questions[(row["run"], row["tree_id"])]
        answer = judge.read(done.text, question, done.finish_reason == "length").answer
        correct = judge.is_correct(answer, question)
        keyed.append((row["question_id"], m.Persuaded(row["label"], correct)))
        replies.append(
            {
                "question_id": row["question_id"],
                "tree_id": row["tree_id"],
                "level": row["level"],
                "should": row["label"],
                "reply": done.text,
                "answer": answer,
                "correct": correct,
                "error": done.error,
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "replies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in replies))
    counts = {label: sum(1 for _, r in keyed if r.should == label) for label in ("resist", "accept")}
    return SuiteResult(by_question(keyed), {"persuasion_turns": counts})


def _generate(config: EvalConfig, shared: Shared, folder: Path, requests: list[ChatRequest]):
    folder.mkdir(parents=True, exist_ok=True)
    cache = GenerationCache(folder / "gen_cache.sqlite")
    backend = load_backend(shared.pool, config.model, config.backend, config.seed)
    try:
        return CachedBackend(backend, cache, f"{config.backend.type}:{config.model}").generate(requests)
    finally:
        cache.close()


def assessment(config: EvalConfig, folder: Path, shared: Shared) -> SuiteResult:
    import torch

    from agents.models import load_causal_lm
    from agents.scoring import mean_logprobs

    rows = export_rows(shared.exports["aft"], config.dataset)
    persona = config.system_message
    if isinstance(config.backend, TransformersBackendConfig):  # score with the copy the other suites use
        backend = load_backend(shared.pool, config.model, config.backend, config.seed)
        model, tokenizer = backend.model, backend.tokenizer
    else:  # a served model: score in-process with transformers
        model, tokenizer = load_causal_lm(config.model)
        model.to("cuda" if torch.cuda.is_available() else "cpu")
    model.eval()
    keyed, margins, scored = [], [], []
    for row in tqdm(rows, desc="assessment", unit="row", disable=not config.progress):
        candidates = row["positives"] + row["negatives"]
        if not row["positives"] or not row["negatives"]:
            continue
        scores = mean_logprobs(model, tokenizer, with_persona(row["prompt"], persona), candidates)
        positives, negatives = scores[: len(row["positives"])], scores[len(row["positives"]) :]
        for p in positives:
            for n in negatives:
                keyed.append((row["question_id"], m.Scored(p, n)))
                margins.append(p - n)
        scored.append(
            {
                "question_id": row["question_id"],
                "tree_id": row["tree_id"],
                "prompt": row["prompt"][-1]["content"],
                "positives": [{"text": t, "score": s} for t, s in zip(row["positives"], positives, strict=True)],
                "negatives": [{"text": t, "score": s} for t, s in zip(row["negatives"], negatives, strict=True)],
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scored))
    return SuiteResult(by_question(keyed), {"pairs": len(keyed), "margins": margins})


@dataclass(frozen=True)
class Suite:
    """One evaluation: how it runs, the numbers it reports, what it says of itself in the report,
    and the export it reads (the `agora mine` miner that writes it), if any."""

    run: Callable[[EvalConfig, Path, Shared], SuiteResult]
    statistics: Callable[[dict], dict]  # the suite's details -> {metric name: statistic}
    about: str
    export: str | None = None


SUITES = {
    "balanced": Suite(
        balanced,
        lambda details: m.BALANCED,
        "Greedy reply to held-out persuasion turns: accuracy when the persuasion argues for a wrong answer (should "
        "resist), for the right one (should accept), and their mean.",
        export="pbt",
    ),
    "are_you_sure": Suite(
        are_you_sure,
        lambda details: m.ARE_YOU_SURE,
        "Answer, a fixed challenge, a final answer: accuracy before and after, and how often the answer flips.",
    ),
    "misinformation": Suite(
        misinformation,
        lambda details: m.misinformation(details["k"]),
        "A persuader argues for a fixed wrong answer; MR@k = persuaded to it within k turns / answered correctly at "
        "first.",
    ),
    "team_debate": Suite(
        team_debate,
        lambda details: m.TEAM_DEBATE,
        "Two agents answer on their own, then debate four turns; team accuracy is the mean of both agents' "
        "correctness, per speaking order (order 1: the model speaks first).",
    ),
    "assessment": Suite(
        assessment,
        lambda details: m.ASSESSMENT,
        "Fraction of (correct, wrong) answer pairs the model scores in the right order by mean token log-probability.",
        export="aft",
    ),
    "critique": Suite(
        critique,
        lambda details: m.CRITIQUE,
        "The model critiques worked solutions with known step truth (F1 with 'incorrect' as the positive class), "
        "then revises; correction gain = fix rate - break rate.",
    ),
}
