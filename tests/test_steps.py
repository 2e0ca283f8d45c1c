"""Per-step values from rollout trees: hand-built trees with known outcomes, then a scripted
model on planted arithmetic solutions, where the true wrong step is known."""

import json

import pytest
from datasets import load_dataset

from dialogue.core.questions import Question, arithmetic_worked
from dialogue.core.steps import split_steps, step_truth
from dialogue.core.tree import DialogueTree, GenInfo
from dialogue.mining.export import MineConfig, MinerConfig, mine
from dialogue.mining.values import first_pit, prefix_value, solutions, step_pairs, step_values
from tests.conftest import add_turn, scripted_rollouts_run

GEN = GenInfo(
    model="m",
    temperature=0.7,
    top_p=1.0,
    max_tokens=64,
    seed=0,
    prompt_tokens=1,
    completion_tokens=1,
    finish_reason="stop",
    latency_s=0.0,
)


def hand_built() -> DialogueTree:
    """Two solutions; the right one branched after steps 1 and 2, the wrong one after step 1.

    0         the empty prefix
    0.0       Step 1: a / Step 2: b / Step 3: c, right          (values 0.75, 0.5, 1)
      0.0.0   after step 1: p right, p right, r-s right, q wrong
      0.0.1   after step 2: c right, z wrong
    0.1       Step 1: x / Step 2: y, wrong                      (values 0, 0)
      0.1.0   after step 1: y wrong, w wrong
    """
    question = Question(question_id="q1", question="How many?", gold="10", aliases=["10"])
    tree = DialogueTree.new("q1", question, "rollouts", {"A": {"model": "m", "persona": "neutral"}})

    def add(turn_id, instruction, text, correct=None):
        add_turn(
            tree,
            turn_id,
            instruction=instruction,
            text=text,
            correct=correct,
            gen=None if instruction == "prefix" else GEN,
        )

    add("0", "prefix", "")
    add("0.0", "solve", "Step 1: a\nStep 2: b\nStep 3: c\nAnswer: 10", True)
    add("0.1", "solve", "Step 1: x\nStep 2: y\nAnswer: 7", False)
    add("0.0.0", "prefix", "Step 1: a")
    add("0.0.1", "prefix", "Step 1: a\nStep 2: b")
    add("0.1.0", "prefix", "Step 1: x")
    for i, (text, ok) in enumerate(
        [
            ("Step 2: p\nAnswer: 10", True),
            ("Step 2: p\nAnswer: 10", True),
            ("Step 2: r\nStep 3: s\nAnswer: 10", True),
            ("Step 2: q\nAnswer: 3", False),
        ]
    ):
        add(f"0.0.0.{i}", "continue", text, ok)
    add("0.0.1.0", "continue", "Step 3: c\nAnswer: 10", True)
    add("0.0.1.1", "continue", "Step 3: z\nAnswer: 4", False)
    add("0.1.0.0", "continue", "Step 2: y\nAnswer: 7", False)
    add("0.1.0.1", "continue", "Step 2: w\nAnswer: 8", False)
    return tree


def test_steps_split_at_numbered_lines_and_give_the_text_back():
    text = "Let me see.\nStep 1: 3 + 4 = 7\n  step 2) 7 * 2 = 14\nAnswer: 14"
    assert split_steps(text) == ["Let me see.\nStep 1: 3 + 4 = 7", "step 2) 7 * 2 = 14\nAnswer: 14"]
    assert split_steps("Just 14.") == ["Just 14."]
    assert split_steps("  ") == []


def test_values_and_advantages_are_the_means_of_the_continuations():
    tree = hand_built()
    assert prefix_value(tree, "0") == (0.5, 2)
    right = step_values(tree, "0.0")
    assert [(s.number, s.value, s.n) for s in right] == [(1, 0.75, 4), (2, 0.5, 2), (3, 1.0, 1)]
    assert [s.advantage for s in right] == [0.25, -0.25, 0.5]
    assert [s.prefix for s in right] == ["0", "0.0.0", "0.0.1"]
    wrong = step_values(tree, "0.1")
    assert [(s.value, s.advantage) for s in wrong] == [(0.0, -0.5), (0.0, 0.0)]
    # a two-step continuation: its first step was not branched at, so neither step has an advantage
    two = step_values(tree, "0.0.0.2")
    assert [(s.number, s.value, s.advantage) for s in two] == [(2, None, None), (3, 1.0, None)]


def test_first_pits_are_where_a_wrong_solution_lost_the_answer():
    tree = hand_built()
    pits = {s: first_pit(tree, s) for s in solutions(tree)}
    found = {s: (p.number, p.prefix) for s, p in pits.items() if p is not None}
    # 0.1.0.x start from a prefix no continuation solved: nothing to pin on them
    assert found == {"0.1": (1, "0"), "0.0.0.3": (2, "0.0.0"), "0.0.1.1": (3, "0.0.1")}


def test_pairs_share_a_prefix_and_differ_by_the_margin():
    pairs = {
        (p.prefix, p.chosen.text, p.rejected.text, p.chosen.value, p.rejected.value)
        for p in step_pairs(hand_built(), 0.5)
    }
    assert pairs == {
        ("0", "Step 1: a", "Step 1: x", 0.75, 0.0),
        ("0.0.0", "Step 2: p\nAnswer: 10", "Step 2: q\nAnswer: 3", 1.0, 0.0),
        ("0.0.0", "Step 2: p\nAnswer: 10", "Step 2: b", 1.0, 0.5),
        ("0.0.0", "Step 2: b", "Step 2: q\nAnswer: 3", 0.5, 0.0),
        ("0.0.1", "Step 3: c\nAnswer: 10", "Step 3: z\nAnswer: 4", 1.0, 0.0),
    }
    assert len(step_pairs(hand_built(), 0.5)) == 5  # the two continuations that wrote p make one pair
    assert {(p.chosen.text, p.rejected.text) for p in step_pairs(hand_built(), 1.0)} == {
        ("Step 2: p\nAnswer: 10", "Step 2: q\nAnswer: 3"),
        ("Step 3: c\nAnswer: 10", "Step 3: z\nAnswer: 4"),
    }


def test_arithmetic_step_truth_needs_aligned_steps():
    question, worked = arithmetic_worked(1, 0, 3)[0]
    right = [f"Step {i + 1}: ... = {op.after}" for i, op in enumerate(worked)]
    assert step_truth(question, right) == [True, True, True]
    wrong = [*right[:1], f"Step 2: ... = {worked[1].after + 1}", right[2]]
    assert step_truth(question, wrong) == [True, False, True]
    assert step_truth(question, right[:2]) is None  # two steps for three operations
    assert step_truth(question.model_copy(update={"worked": None}), right) is None


@pytest.fixture
def planted_run(tmp_path, monkeypatch):
    return scripted_rollouts_run(tmp_path / "run", monkeypatch)


def read(folder, split="train"):
    return load_dataset("parquet", data_files=str(folder / f"{split}.parquet"), split="train")


def test_rollouts_find_the_planted_wrong_step(planted_run, tmp_path):
    card = mine(MineConfig(run=[str(planted_run)], out=str(tmp_path / "steps"), miner=MinerConfig(name="steps")))
    report = card.report
    assert report["pits_with_truth"] > 0
    assert report["pits_agree"] == report["pits_with_truth"] == report["pits_located"]
    pits = [
        row
        for split in ("train", "validation", "test")
        if (tmp_path / "steps/pits" / f"{split}.parquet").exists()
        for row in read(tmp_path / "steps/pits", split)
    ]
    assert pits and all(row["step"] == row["true_step"] for row in pits)
    # the carried-on prefixes are worth 1 until the wrong step, 0 from it (step 1 follows the
    # empty prefix, whose value is the share of right solutions)
    assert all(
        row["value"] == 0.0 and row["value_before"] == (1.0 if row["step"] > 1 else pytest.approx(row["value_before"]))
        for row in pits
    )
    assert all(row["value_before"] > 0 for row in pits)
    # every planted wrong solution that started from a solvable question has its pit found
    trees = [json.loads(line) for line in (planted_run / "trees.jsonl").read_text().splitlines()]
    planted_wrong = sum(
        1
        for t in trees
        for n in t["nodes"]
        if n["instruction"] == "solve"
        and n["correct"] is not True
        and any(m["instruction"] == "solve" and m["correct"] is True for m in t["nodes"])
    )
    assert report["pits_located"] >= planted_wrong > 0
    train = read(tmp_path / "steps")
    assert set(train.column_names) >= {"prompt", "chosen", "rejected", "step", "value_chosen", "value_rejected"}
    assert all(r["value_chosen"] - r["value_rejected"] >= 0.5 for r in train)
    # the pair's prompt is what the answerer was asked: the question, then its own first steps
    later = next(r for r in train if r["step"] > 1)
    assert [m["role"] for m in later["prompt"]][-2:] == ["assistant", "user"]
    assert later["prompt"][-1]["content"].startswith("Above are the first steps of your solution")
    weighted = read(tmp_path / "steps/weighted")
    assert min(weighted["weight"]) == -1.0 and max(weighted["weight"]) <= 1.0


def test_stepwise_labels_from_rollouts_equal_the_arithmetic_truth(planted_run, tmp_path):
    by = {}
    for labels in ("rollouts", "truth"):
        out = tmp_path / labels
        card = mine(MineConfig(run=[str(planted_run)], out=str(out), miner=MinerConfig(name="stepwise", labels=labels)))
        assert card.report["unlabelled"] == 0
        rows = [r for s in ("train", "validation", "test") if (out / f"{s}.parquet").exists() for r in read(out, s)]
        assert all(len(r["completions"]) == len(r["labels"]) == 3 for r in rows)
        by[labels] = {(r["tree_id"], tuple(r["completions"])): r["labels"] for r in rows}
    assert by["rollouts"] == by["truth"]
    assert any(not all(labels) for labels in by["truth"].values())


def test_depth_two_branches_the_continuations_and_values_their_steps(tmp_path, monkeypatch):
    from dialogue.running.rundir import RunDir

    run = scripted_rollouts_run(tmp_path / "run", monkeypatch, 4, "protocol.depth=2")
    trees = list(RunDir(run).trees())
    for tree in trees:
        depths = {t.depth for t in tree.turns()}
        assert depths == {0, 1, 2, 3, 4, 5}
        # a continuation after step 1 writes steps 2 and 3; branched after its step 2, both have values
        for turn in tree.turns():
            if turn.depth == 3 and len(split_steps(turn.text)) == 2:
                assert [s.value is not None for s in step_values(tree, turn.id)] == [True, True]
                assert all(s.advantage is not None for s in step_values(tree, turn.id))
    card = mine(MineConfig(run=[str(run)], out=str(tmp_path / "steps"), miner=MinerConfig(name="steps")))
    assert card.report["pits_agree"] == card.report["pits_with_truth"] == card.report["pits_located"] > 0


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("Step 1: 12 + 5 = 17", [(17.0, True)]),
        ("3 x 4 x 2 = 24 and 60 / 5 - 2 = 11", [(24.0, True), (11.0, False)]),  # * and / before - and +
        ("5 + 5 = 10 + 2 = 12", [(10.0, True), (12.0, True)]),  # a chain is two equations
        ("1,200 + 5 = 1,205.", [(1205.0, True)]),
        ("8 / 0 = 1", [(1.0, False)]),
        ("Then 2 times 3 is 6. Then 4 times 6 is 18.", [(6.0, True), (18.0, False)]),  # in words
        ("12 plus 5 equals 17, and 20 divided by 4 makes 5", [(17.0, True), (5.0, True)]),
        ("Her collection grows to 4 times its size. The answer is 11.", []),  # words between no numbers
    ],
)
def test_equations_are_read_in_symbols_and_in_words(step, expected):
    from dialogue.core.steps import equations

    assert equations(step) == expected
