"""Backward reasoning (protocol=reverse, miner=reverse) on a scripted answerer whose forward
answers, backward answers and consistency checks are right or wrong by seed."""

import re

import pytest
from datasets import load_dataset

from dialogue.core.questions import load_questions
from dialogue.mining.export import MineConfig, MinerConfig, mine
from dialogue.running.rundir import RunDir
from dialogue.running.simulate import simulate
from tests.conftest import ScriptedBackend, instruction_of, simulate_config


@pytest.fixture
def reverse_run(tmp_path, monkeypatch):
    config = simulate_config(
        [f"out={tmp_path / 'run'}", "protocol=reverse", "dataset=arithmetic", "dataset.limit=16", "progress=false"]
    )
    problems = {q.question: q for q in load_questions(config.dataset).questions}
    sent = {}

    def rule(request):
        sent[request.seed] = request.messages
        instruction = instruction_of(request, config.protocol.instructions)
        shown = next(text for role, text in request.messages if role == "user")
        question = next(q for text, q in problems.items() if text in shown)
        if instruction == "forward":
            right = request.seed % 4 != 0
            return f"Step 1: work it out.\nAnswer: {int(question.gold) + (0 if right else 1)}"
        if instruction == "backward_question":
            return f"Backwards from {question.gold}: {question.question} How many were there at the start?"
        if instruction == "backward_reasoning":
            start = question.worked[0].before
            return f"Undo each step.\nAnswer: {start + (0 if request.seed % 3 else 1)}"
        return "Yes, they agree." if request.seed % 5 else "No, they do not."

    monkeypatch.setattr("dialogue.running.simulate.make_backend", lambda *a, **k: ScriptedBackend(rule))
    simulate(config, tmp_path / "run")
    return tmp_path / "run", sent


def rows_of(folder):
    return [
        row
        for split in ("train", "validation", "test")
        if (folder / f"{split}.parquet").exists()
        for row in load_dataset("parquet", data_files=str(folder / f"{split}.parquet"), split="train")
    ]


def test_only_verified_trees_give_the_three_tasks(reverse_run, tmp_path):
    run, sent = reverse_run
    trees = {t.tree_id: t for t in RunDir(run).trees()}
    by_instruction = {tid: {turn.instruction: turn for turn in t.turns()} for tid, t in trees.items()}
    # a wrong forward answer is not reasoned back from
    wrong = [tid for tid, turns in by_instruction.items() if turns["forward"].correct is False]
    assert wrong and all(len(by_instruction[tid]) == 1 for tid in wrong)
    # the backward answer is held to the amount the problem starts with
    for tid, turns in by_instruction.items():
        if "backward_reasoning" in turns:
            start = trees[tid].question.worked[0].before
            assert turns["backward_reasoning"].correct == (turns["backward_reasoning"].answer == str(start))
    expected = {
        tid
        for tid, turns in by_instruction.items()
        if turns["forward"].correct
        and turns["backward_reasoning"].correct
        and turns["consistency"].parsed == {"consistent": True}
    }
    reasons = {
        "backward wrong": any(
            t.get("backward_reasoning") and not t["backward_reasoning"].correct for t in by_instruction.values()
        ),
        "inconsistent": any(
            t.get("consistency") and t["consistency"].parsed == {"consistent": False} for t in by_instruction.values()
        ),
    }
    assert expected and all(reasons.values()), reasons

    card = mine(MineConfig(run=[str(run)], out=str(tmp_path / "reverse"), miner=MinerConfig(name="reverse")))
    rows = rows_of(tmp_path / "reverse")
    assert {r["tree_id"] for r in rows} == expected
    assert sorted(r["task"] for r in rows) == sorted(
        ["forward", "backward_question", "backward_reasoning"] * len(expected)
    )
    assert card.report["verified"] == len(expected) and card.report["questions"] == 16

    for row in rows:
        turns = by_instruction[row["tree_id"]]
        prompt = tuple((m["role"], m["content"]) for m in row["prompt"])
        assert row["completion"][0]["content"] == turns[row["task"]].text
        if row["task"] == "backward_question":
            # learnt from the question alone: neither the forward reasoning nor the answer is in it
            assert [role for role, _ in prompt] in (["user"], ["system", "user"])
            assert turns["forward"].text not in prompt[-1][1]
        else:  # the prompt the turn was written under
            assert prompt == sent[turns[row["task"]].gen.seed]
        if row["task"] == "backward_reasoning":
            assert prompt[-1][1].startswith(turns["backward_question"].text)
            assert not re.search(r"Answer: \d", prompt[-1][1])


def test_sft_trains_on_the_reverse_rows(reverse_run, tmp_path, tiny_model):
    from trainers.config import TrainConfig
    from trainers.run import train

    mine(MineConfig(run=[str(reverse_run[0])], out=str(tmp_path / "reverse"), miner=MinerConfig(name="reverse")))
    summary = train(
        TrainConfig.model_validate(
            {
                "trainer": {
                    "name": "sft",
                    "stages": ["sft"],
                    "args": {"max_steps": 1, "per_device_train_batch_size": 2},
                },
                "data": {"path": str(tmp_path / "reverse")},
                "model": tiny_model,
                "out": str(tmp_path / "trained"),
            }
        )
    )
    assert summary.stages["sft"]["global_step"] == 1
