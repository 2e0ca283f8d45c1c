"""The engine and the pbt_tree protocol on a scripted backend whose replies are known."""

import json

import networkx as nx

from agents.agent import Agent
from agents.requests import Sampling
from dialogue.core.judge import Judge
from dialogue.core.questions import Question
from dialogue.core.tree import DialogueTree
from dialogue.protocols import make_protocol
from dialogue.protocols.pbt_tree import PbtTreeConfig
from dialogue.running.engine import Engine
from tests.conftest import ScriptedBackend, instruction_of

INSTRUCTIONS = {name: f"<{name}>" for name in ["neutral", "resist", "accept", "logical", "emotional", "credibility"]}
QUESTIONS = [
    Question(question_id=f"q{i}", question=f"Question {i}?", choices=["w", "x", "y", "z"], gold="A") for i in range(3)
]


def run(rule, depth=4, n_questions=3, steps=None, max_active_trees=256, questions=QUESTIONS):
    protocol = make_protocol(PbtTreeConfig(instructions=INSTRUCTIONS, depth=depth))
    backend = ScriptedBackend(rule, steps=steps)
    agents = {name: Agent(name, "scripted", "persona", Sampling(), "shared") for name in "AB"}
    engine = Engine(
        protocol,
        agents,
        {"shared": backend},
        Judge("choice"),
        answer_format="",
        progress=False,
        max_active_trees=max_active_trees,
    )
    done: list[DialogueTree] = []
    trees = (DialogueTree.new(q.question_id, q, "pbt_tree", {}) for q in questions[:n_questions])
    engine.run(trees, done.append)
    return done, backend


PERSUADER = {"neutral", "logical", "emotional", "credibility"}


def stubborn(request):
    """A always says A; B says B, except under `accept`, where it takes A."""
    instruction = instruction_of(request, INSTRUCTIONS)
    return "Answer: A" if instruction in PERSUADER | {"accept"} else "Answer: B"


def never_agree(request):
    return "Answer: A" if instruction_of(request, INSTRUCTIONS) in PERSUADER else "Answer: B"


def test_full_tree_has_21_turns_when_nobody_agrees():
    done, backend = run(never_agree)
    assert len(done) == 3
    for tree in done:
        assert len(tree) == 1 + 2 + 6 + 12
        depths = [t.depth for t in tree.turns()]
        assert [depths.count(d) for d in range(4)] == [1, 2, 6, 12]
        assert {t.speaker for t in tree.turns() if t.depth % 2 == 0} == {"A"}
        assert {t.speaker for t in tree.turns() if t.depth % 2 == 1} == {"B"}
        assert nx.is_arborescence(tree.graph)
    # each turn's children are submitted together as soon as it is read: siblings share a prefix
    assert backend.calls == [1] * 3 + [2] * 3 + [3] * 6 + [2] * 18


def slow_for_some(request):
    """Decoding steps a reply takes: the persuader's emotional appeals run long."""
    return 40 if instruction_of(request, INSTRUCTIONS) == "emotional" else 1 + len(request.messages)


def test_children_are_asked_for_while_their_level_is_still_generating():
    done, backend = run(never_agree, steps=slow_for_some)
    depth = {turn.gen.seed: turn.depth for tree in done for turn in tree.turns()}
    log = [(event, depth[seed]) for event, seed in backend.log]
    assert len(log) == 2 * 3 * 21
    first_level_three_asked = min(i for i, (event, d) in enumerate(log) if event == "submit" and d == 3)
    last_level_two_done = max(i for i, (event, d) in enumerate(log) if event == "done" and d == 2)
    assert first_level_three_asked < last_level_two_done
    # and the trees are those grown when every reply comes at once, whatever the order of work
    same, _ = run(never_agree)
    assert {t.tree_id: json.dumps(t.to_json()) for t in done} == {t.tree_id: json.dumps(t.to_json()) for t in same}


def test_trees_enter_through_a_bounded_window():
    many = [Question(question_id=f"w{i}", question=f"Q{i}?", choices=["w", "x"], gold="A") for i in range(10)]
    protocol = make_protocol(PbtTreeConfig(instructions=INSTRUCTIONS, depth=4))
    agents = {name: Agent(name, "scripted", "persona", Sampling(), "shared") for name in "AB"}
    backend = ScriptedBackend(never_agree, steps=slow_for_some)
    engine = Engine(protocol, agents, {"shared": backend}, Judge("choice"), "", progress=False, max_active_trees=3)
    taken, finished, most = [], [], 0

    def trees():
        for q in many:
            taken.append(q.question_id)
            yield DialogueTree.new(q.question_id, q, "pbt_tree", {})

    def on_done(tree):
        nonlocal most
        most = max(most, len(taken) - len(finished))
        finished.append(tree.tree_id)

    engine.run(trees(), on_done)
    assert sorted(finished) == sorted(q.question_id for q in many) and most == 3


def test_agreement_stops_a_branch():
    done, _ = run(stubborn)
    tree = done[0]
    # level 1: B-resist says B (continues), B-accept says A (agrees: stops)
    resist, accept = tree.children("0")
    assert tree.turn(accept).agrees_with_parent is True and tree.children(accept) == []
    assert tree.turn(resist).agrees_with_parent is False
    # level 2: three persuasion styles under B-resist; level 3: resist continues, accept agrees
    assert [tree.turn(c).instruction for c in tree.children(resist)] == ["logical", "emotional", "credibility"]
    assert len(tree) == 1 + 2 + 3 + 6
    for leaf in tree.leaves():
        t = tree.turn(leaf)
        assert t.depth in (1, 3)


def test_turn_fields_and_correctness():
    done, _ = run(never_agree, n_questions=1)
    tree = done[0]
    root = tree.turn("0")
    assert (root.speaker, root.instruction, root.answer, root.correct) == ("A", "neutral", "A", True)
    b = tree.turn("0.0")
    assert (b.answer, b.correct, b.agrees_with_parent) == ("B", False, False)
    assert b.gen.seed != root.gen.seed and b.gen.completion_tokens == 3
    json.dumps(tree.to_json())  # plain JSON types throughout


def test_persuadee_first_answer_does_not_see_the_persuader():
    seen = []

    def rule(request):
        seen.append(request.messages)
        return never_agree(request)

    run(rule, depth=2, n_questions=1)
    root_request, *b_requests = seen
    for messages in b_requests:
        assert not any(role == "assistant" for role, _ in messages)
        assert all("Answer: A" not in content for _, content in messages)


def test_depth_six_repeats_levels_two_and_three():
    done, _ = run(never_agree, depth=6, n_questions=1)
    depths = [t.depth for t in done[0].turns()]
    assert [depths.count(d) for d in range(6)] == [1, 2, 6, 12, 36, 72]


def test_an_agreeing_turn_takes_its_parents_answer_and_unread_answers_leave_agreement_unknown():
    from dialogue.core.judge import Reading
    from dialogue.core.tree import Turn
    from dialogue.running.engine import agreement

    def turn(answer):
        return Turn(
            id="0",
            parent=None,
            depth=0,
            speaker="A",
            instruction="neutral",
            text="",
            answer=answer,
            correct=None,
            agrees_with_parent=None,
        )

    assert agreement(Reading("B", False), None) == ("B", None)  # the root answers nobody
    assert agreement(Reading(None, True), turn("C")) == ("C", True)  # "I agree." adopts C
    assert agreement(Reading("C", False), turn("C")) == ("C", True)
    assert agreement(Reading("D", False), turn("C")) == ("D", False)
    assert agreement(Reading(None, False), turn("C")) == (None, None)  # unread: nobody can tell
    assert agreement(Reading("D", False), turn(None)) == ("D", None)
