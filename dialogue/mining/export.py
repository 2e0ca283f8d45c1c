"""`agora mine`: run directories in, a Hugging Face dataset out.

One parquet file per split (train, validation, test; an empty split has none) and `card.json`
with the counts, the source runs and the config. Rows are in the formats TRL reads without
conversion: conversational `prompt`/`chosen`/`rejected` (pbt and steps, for DPO),
`prompt`/`completion`/`label` (kto), `prompt`/`completion` (sft; reverse, with a `task` column),
`prompt`/`positives`/`negatives`/`ranked` (aft), and stepwise supervision
`prompt`/`completions`/`labels` (stepwise).

Each miner lives in its own module under `dialogue/mining/miners/`, which says what it reads and
writes; this module runs whichever `miner.name` picks.

Prompts are rebuilt from the trees as the responder saw the dialogue, but under the neutral
instruction named by `miner.instruction`: the role instructions that produced the
counterfactual replies are never part of the training prompt. (Critique, rollouts and reverse rows keep
each turn's own instruction: there it is the task that is learnt, not a counterfactual role.)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Literal

from datasets import Dataset, Features
from pydantic import Field, field_validator, model_validator

from agents.config import Strict, one_of
from agents.errors import AgoraError
from agents.files import make_readable
from dialogue.core.messages import turn_messages
from dialogue.core.questions import SPLITS, DatasetConfig, SplitRule, content_key, small_test_split
from dialogue.core.tree import DialogueTree
from dialogue.mining.miners import MINERS
from dialogue.mining.rules import LOST_REASONS, Messages
from dialogue.protocols import make_protocol
from dialogue.records import Card, RunManifest
from dialogue.running.config import load_persona, one_as_list
from dialogue.running.rundir import RunDir
from dialogue.running.summary import judge_counts


class MinerConfig(Strict):
    name: str = "pbt"  # a key of MINERS
    score: Literal["immediate", "subtree"] = "immediate"
    margin: float = Field(0.5, gt=0.0, le=1.0)  # subtree rule: least score difference of a pair
    balance: bool = False  # equally many accept and resist rows per split
    instruction: str = "neutral"  # the source run's instruction that the training prompt uses
    # whose replies are mined: null, the run's responder (pbt_tree: the persuadee, as in PBT);
    # a list of agent names; or all
    responders: list[str] | Literal["all"] | None = None
    levels: list[int] | None = None  # only replies at these depths; null: every depth
    # a persuasion turn whose answer the judge could not read: gives no pair (stated), or argues for
    # the answer its speaker last gave that could be read (held; pbt_tree tells it to argue for that)
    persuader_answer: Literal["stated", "held"] = "stated"
    # steps and stepwise (rollouts runs): a step is a pit when its value falls to `pit_value` or
    # below; a stepwise label is true when the step's value is above `threshold` (0: some
    # continuation from it reached the answer), or, with labels=truth, when an arithmetic step
    # states the true value
    pit_value: float = Field(0.0, ge=0.0, lt=1.0)
    threshold: float = Field(0.0, ge=0.0, lt=1.0)
    labels: Literal["rollouts", "truth"] = "rollouts"
    # persuader: keep the persuasion that worked toward the correct answer, toward a wrong one, or both
    toward: Literal["any", "correct", "misleading"] = "any"

    @field_validator("responders", mode="before")
    @classmethod
    def _one_responder(cls, value):
        return [value] if isinstance(value, str) and value != "all" else value

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        return one_of(name, MINERS, "miner")


class MineConfig(Strict):
    run: list[str] = Field(min_length=1)
    out: str
    seed: int = 0
    overwrite: bool = False
    miner: MinerConfig = MinerConfig()

    @model_validator(mode="before")
    @classmethod
    def _one_run(cls, data):
        return one_as_list(data, "run")


def mine(config: MineConfig) -> Card:
    out = Path(config.out)
    if out.exists() and any(out.iterdir()) and not config.overwrite:
        raise AgoraError(f"out={out}: already holds files; choose a new out=DIR or pass overwrite=true")
    seen: dict[Path, str] = {}
    for run_path in config.run:
        if (resolved := Path(run_path).resolve()) in seen:
            raise AgoraError(
                f"run={run_path}: names the same run twice (also run={seen[resolved]}); its pairs would be mined twice"
            )
        seen[resolved] = run_path
    miner, spec = config.miner, MINERS[config.miner.name]
    rows: dict[str, list[dict]] = {subset: [] for subset in spec.features}
    sources, bad_lines, rules = [], [], {}
    outcomes: list[tuple[str, str | None]] = []  # (question id, why it gave no pair) per persuasion turn
    mined_questions: dict[str, str] = {}  # question id -> its content key
    datasets: list[DatasetConfig] = []
    for run_path in config.run:
        run = RunDir(run_path)
        manifest = run.manifest()
        if manifest is None or not run.trees_path.exists():
            raise AgoraError(f"run={run_path}: not a run directory (no manifest.json or trees.jsonl)")
        run_config = manifest.run_config()
        protocol = run_config.protocol.name
        if protocol not in spec.reads:
            raise AgoraError(
                f"run={run_path}: a {protocol} run; miner={miner.name} reads "
                f"{' and '.join(sorted(spec.reads))} runs only"
            )
        datasets.append(run_config.dataset)
        rules[run_path] = datasets[-1].split_rule
        prompt = prompt_builder(manifest, run_path, [miner.instruction] if spec.neutral_prompts else [])
        responders = _responders(miner, manifest)
        before = len(bad_lines)
        trees = list(run.trees(bad_lines=bad_lines))
        for tree in trees:
            mined_questions[tree.question.question_id] = content_key(tree.question)
            for subset, subset_rows in spec.rows(miner, tree, prompt, str(run_path), responders).items():
                rows[subset].extend(subset_rows)
            if spec.persuasions:
                outcomes += [(o.question_id, o.lost) for o in spec.persuasions(miner, tree, responders)]
        sources.append(
            {
                "run": str(run_path),
                "status": manifest.status,
                "trees": len(trees),
                "bad_lines": len(bad_lines) - before,
                "responders": "all" if responders is None else sorted(responders),
                # turns whose structured content (a critic's JSON) could not be read
                "failed_parses": sum(1 for t in trees for u in t.turns() if "error" in (u.parsed or {})),
                **judge_counts(trees, free_form_of(manifest)),
                **({"report": spec.report(miner, trees, responders)} if spec.report else {}),
            }
        )
    rule = _one_rule(rules)
    # the runs' own choice of split: one that took train questions only means to leave the test split empty
    chosen = next((d for d in datasets if d.split in ("all", "test")), datasets[0])
    if small := small_test_split(chosen, sorted(mined_questions)):
        held_out = " (agora eval's balanced suite scores the test split's pairs)" if spec.persuasions else ""
        print(f"warning: {small}{held_out}", file=sys.stderr)
    by_subset, balancing, duplicates = {}, {}, {}
    for subset, subset_rows in rows.items():
        by_split = {split: [] for split in SPLITS}
        unique = once(subset_rows)
        duplicates[subset] = len(subset_rows) - len(unique)
        for row in unique:
            by_split[rule.of(row["question_id"])].append(row)
        if miner.balance and spec.label:
            for split, split_rows in by_split.items():
                by_split[split], balancing[split] = balance(split_rows, spec.label, config.seed)
        by_subset[subset] = by_split
    judged = {kind: dict(sum((Counter(s[kind]) for s in sources), Counter())) for kind in ("unreadable", "conflicts")}
    found = {
        **_card(config, by_subset, sources, bad_lines, mined_questions),
        "failed_parses": sum(s["failed_parses"] for s in sources),
        "split_rule": rule.to_json(),
        "judge": judged,
        "duplicates": duplicates,  # identical training rows (a copied run, identical sibling texts) written once
        "mined_questions": dict.fromkeys(SPLITS, 0) | Counter(map(rule.of, mined_questions)),
    }
    if spec.persuasions:
        found["persuasions"] = persuasion_counts(outcomes, rule)
    if balancing:
        found["balance"] = balancing
    if spec.report:
        found["report"] = {key: sum(s["report"][key] for s in sources) for key in sources[0]["report"]}
    # a run that was killed, or finished with failed turns, is mined as far as it went
    found["incomplete_runs"] = [s["run"] for s in sources if s["status"] != "complete"]
    card = Card.model_validate(found)
    for run in card.incomplete_runs:
        print(
            f"warning: run={run} is not complete (killed, or finished with failed turns); its trees are mined "
            "as far as they went (card.json: incomplete_runs). Run its command again to finish it",
            file=sys.stderr,
        )
    _write(out, spec.features, by_subset, card, config.overwrite)
    if card.mined_questions.get("train") and not any(by_split["train"] for by_split in by_subset.values()):
        raise AgoraError(empty_train_message(card, out))
    return card


def once(rows: list[dict]) -> list[dict]:
    """The rows without repeats: two rows that would teach the same thing (the same prompt and
    replies, or prompt and completion) are one, whichever trees or runs they came from."""
    seen, kept = set(), []
    for row in rows:
        key = json.dumps([row[c] for c in TRAINING_COLUMNS if c in row], sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


# the columns a trainer learns from; the others (tree, run, level, instruction) only say where a row came from
TRAINING_COLUMNS = (
    *("prompt", "chosen", "rejected", "completion", "completions", "label", "labels"),
    *("positives", "negatives", "ranked", "task", "weight"),
)


def persuasion_counts(outcomes: list[tuple[str, str | None]], rule: SplitRule) -> dict[str, dict]:
    """Per split: the persuasion turns, how many gave pairs, and why the others gave none."""
    counts = {split: {"turns": 0, "with_pairs": 0, "lost": dict.fromkeys(LOST_REASONS, 0)} for split in SPLITS}
    for question_id, lost in outcomes:
        split = counts[rule.of(question_id)]
        split["turns"] += 1
        if lost is None:
            split["with_pairs"] += 1
        else:
            split["lost"][lost] += 1
    return counts


def empty_train_message(card: Card, out: Path) -> str:
    """What an export with train questions but no train rows lost, and what to change."""
    mined = card.mined_questions
    lines = [
        f"out={out}: no train rows from {mined.get('train', 0)} train questions "
        f"({', '.join(f'{split} {n}' for split, n in mined.items())} questions mined); "
        "the export was written with its counts (card.json) but there is nothing to train on"
    ]
    if card.persuasions is not None:
        train = card.persuasions["train"]
        lost = ", ".join(f"{reason} {n}" for reason, n in train.lost.items() if n) or "none"
        lines.append(f"train persuasion turns: {train.turns}, with pairs: {train.with_pairs}; lost: {lost}")
    lines.append(
        "to get rows: simulate more questions; mine more replies (miner.responders=all, miner.levels=null); "
        "score replies by their subtree (miner.score=subtree); or use a larger model, whose answers the "
        "judge can read and which changes its answer less at random. Rerun with overwrite=true"
    )
    return "\n".join(lines)


def _one_rule(rules: dict[str, SplitRule]) -> SplitRule:
    """The runs mined together must split questions alike, or a question could be in two splits."""
    distinct = dict.fromkeys(rules.values())
    if len(distinct) > 1:
        listed = "; ".join(f"run={run}: {rule.to_json()}" for run, rule in rules.items())
        raise AgoraError(
            f"the runs split questions by different rules ({listed}); mine runs made with the same "
            "dataset.split_seed and dataset.split_fractions together"
        )
    return next(iter(distinct))


def free_form_of(manifest: RunManifest) -> frozenset[str]:
    """The instructions of the run's protocol that ask for no answer line."""
    return make_protocol(manifest.run_config().protocol).free_form


def _responders(miner: MinerConfig, manifest: RunManifest) -> set[str] | None:
    """Whose replies are mined from this run: None for every agent."""
    if miner.responders == "all":
        return None
    if miner.responders is not None:
        return set(miner.responders)
    return {manifest.run_config().protocol.responder}


def prompt_builder(manifest: RunManifest, run_path: str, needed: list[str]):
    """(tree, last turn, speaker, instruction name) -> the messages `speaker` saw after that turn,
    under that instruction of the source run and, where it asks for one, its answer format."""
    config = manifest.run_config()
    protocol = make_protocol(config.protocol)
    for instruction in needed:
        if instruction not in protocol.instructions:
            raise AgoraError(
                f"miner.instruction: '{instruction}' is not an instruction of run={run_path} "
                f"({', '.join(protocol.instructions)})"
            )
    formats, stimulus = config.prompts.answer_format, config.stimulus
    personas: dict[str, str] = {}

    def prompt(tree: DialogueTree, last: str, speaker: str, instruction: str) -> Messages:
        persona_name = tree.graph.graph["agents"].get(speaker, {}).get("persona", "neutral")
        if persona_name not in personas:
            personas[persona_name] = load_persona(persona_name)
        kind = manifest.answer_kind or ("choice" if tree.question.choices else "alias")
        return turn_messages(
            protocol,
            tree,
            last,
            speaker,
            instruction,
            stimulus.system_message(personas[persona_name], speaker),
            formats[kind],
            many_agents=len(tree.graph.graph["agents"]) > 2,
        )

    return prompt


def balance(rows: list[dict], key: str, seed: int) -> tuple[list[dict], dict]:
    """Equally many accept and resist rows: the larger side is subsampled, seeded. A split that
    lacks one label cannot be balanced; it is kept as it is rather than emptied, and the second
    value (recorded in the card) says so with the counts it had."""
    sides = {label: [r for r in rows if r[key] == label] for label in ("accept", "resist")}
    counts = {label: len(side) for label, side in sides.items()}
    n = min(counts.values())
    if n == 0:
        return rows, {"balanced": not rows, **counts}
    rng = random.Random(seed)
    keep = {id(r) for side in sides.values() for r in rng.sample(side, n)}
    return [r for r in rows if id(r) in keep], {"balanced": True, **counts}


def _card(
    config: MineConfig,
    by_subset: dict[str, dict[str, list[dict]]],
    sources: list[dict],
    bad_lines: list[str],
    keys: dict[str, str],
) -> dict:
    miner = config.miner.name
    label = MINERS[miner].label or "label"
    counts: dict[str, Counter] = {"split": Counter(), "label": Counter(), "level": Counter(), "instruction": Counter()}
    questions: dict[str, set] = {split: set() for split in SPLITS}  # every subset's, together
    for subset, by_split in by_subset.items():
        prefix = f"{subset}/" if subset else ""
        for split, rows in by_split.items():
            counts["split"][prefix + split] = len(rows)
            questions[split] |= {r["question_id"] for r in rows}
            for row in rows:
                if label in row:
                    counts["label"][prefix + str(row[label])] += 1
                counts["level"][prefix + str(row["level"])] += 1
                for field, side in (
                    ("chosen_instruction", "chosen"),
                    ("rejected_instruction", "rejected"),
                    ("instruction", "reply"),
                ):
                    if field in row:
                        counts["instruction"][f"{side}:{row[field]}"] += 1
    return {
        "miner": miner,
        "rows": sum(len(rows) for by_split in by_subset.values() for rows in by_split.values()),
        "counts": {k: dict(sorted(v.items())) for k, v in counts.items()},
        "questions": {s: len(q) for s, q in questions.items()},
        "question_ids": {s: sorted(q) for s, q in questions.items()},
        # the questions' content keys, which `agora eval` compares to find trained-on questions under any id
        "question_keys": {s: {qid: keys[qid] for qid in sorted(q)} for s, q in questions.items()},
        "sources": sources,
        "bad_lines": bad_lines,
        "config": config.model_dump(mode="json"),
    }


def _write(
    out: Path,
    features_of: dict[str, Features],
    by_subset: dict[str, dict[str, list[dict]]],
    card: Card,
    overwrite: bool,
) -> None:
    """Everything is written beside `out` and moved into place at the end, so a crash leaves no
    dataset that looks complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        for subset, by_split in by_subset.items():
            features = features_of[subset]
            (tmp / subset).mkdir(exist_ok=True)
            for split, rows in by_split.items():
                if not rows:  # `datasets` cannot load an empty parquet split; the card counts it as 0
                    continue
                columns = {name: [row[name] for row in rows] for name in features}
                Dataset.from_dict(columns, features=features).to_parquet(str(tmp / subset / f"{split}.parquet"))
        card.write(tmp / "card.json")
        make_readable(tmp)
        if out.exists():
            if not overwrite and any(out.iterdir()):
                raise AgoraError(f"out={out}: already holds files")
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
