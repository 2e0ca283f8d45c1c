"""Mining rules on trees built by hand, where the right pairs are known."""

from dialogue.core.questions import Question
from dialogue.core.tree import DialogueTree
from dialogue.mining.rules import LOST_REASONS, aft_groups, pbt_pairs, persuasion_outcomes, subtree_score
from tests.conftest import add_turn

QUESTION = Question(question_id="q1", question="Which is right?", choices=["right", "wrong", "no", "nope"], gold="A")


def build(turns: dict[str, tuple[str, str, str | None]]) -> DialogueTree:
    """{turn id: (speaker, instruction, answer)}; gold is A, so answer A is correct."""
    tree = DialogueTree.new(
        "t1",
        QUESTION,
        "pbt_tree",
        {"A": {"model": "m", "persona": "neutral"}, "B": {"model": "m", "persona": "neutral"}},
    )
    for turn_id, (speaker, instruction, answer) in turns.items():
        parent = turn_id.rsplit(".", 1)[0] if "." in turn_id else None
        parent_answer = tree.turn(parent).answer if parent else None
        add_turn(
            tree,
            turn_id,
            speaker=speaker,
            instruction=instruction,
            text=f"{speaker} at {turn_id} says {answer}",
            answer=answer,
            correct=None if answer is None else answer == "A",
            agrees_with_parent=None if parent is None or answer is None else answer == parent_answer,
        )
    return tree


def summary(pairs):
    return [(p.label, p.level, p.persuasion, p.chosen.id, p.rejected.id) for p in pairs]


# Level 0: A answers. Level 1: B answers alone (B never heard A: no pair can come from it).
# Level 2: A persuades. Level 3: B responds under resist (.0) and accept (.1).
def test_misleading_persuasion_resisted_is_chosen_over_followed():
    tree = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "A"),
            "0.0.0": ("A", "logical", "B"),
            "0.0.0.0": ("B", "resist", "A"),
            "0.0.0.1": ("B", "accept", "B"),
        }
    )
    assert summary(pbt_pairs(tree)) == [("resist", 3, "0.0.0", "0.0.0.0", "0.0.0.1")]


def test_correct_persuasion_accepted_is_chosen_over_refused():
    tree = build(
        {
            "0": ("A", "neutral", "A"),
            "0.0": ("B", "resist", "C"),
            "0.0.0": ("A", "logical", "A"),
            "0.0.0.0": ("B", "resist", "C"),
            "0.0.0.1": ("B", "accept", "A"),
        }
    )
    assert summary(pbt_pairs(tree)) == [("accept", 3, "0.0.0", "0.0.0.1", "0.0.0.0")]


def test_no_pair_when_both_wrong_or_agreeing_or_undecided():
    both_wrong = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "C"),
            "0.0.0": ("A", "logical", "B"),
            "0.0.0.0": ("B", "resist", "C"),
            "0.0.0.1": ("B", "accept", "A"),
        }
    )
    agreement = build(
        {
            "0": ("A", "neutral", "A"),
            "0.0": ("B", "resist", "A"),
            "0.0.0": ("A", "logical", "A"),
            "0.0.0.0": ("B", "resist", "A"),
            "0.0.0.1": ("B", "accept", "B"),
        }
    )
    same_outcome = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "A"),
            "0.0.0": ("A", "logical", "B"),
            "0.0.0.0": ("B", "resist", "A"),
            "0.0.0.1": ("B", "accept", "A"),
        }
    )
    unreadable = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "A"),
            "0.0.0": ("A", "logical", "B"),
            "0.0.0.0": ("B", "resist", "A"),
            "0.0.0.1": ("B", "accept", None),
        }
    )
    for tree in (both_wrong, agreement, same_outcome, unreadable):
        assert pbt_pairs(tree) == []
    reasons = [
        [o.lost for o in persuasion_outcomes(t, responders={"B"})]
        for t in (both_wrong, agreement, same_outcome, unreadable)
    ]
    assert reasons == [["both_wrong"], ["no_disagreement"], ["same_outcome"], ["unreadable_reply"]]


def test_each_persuasion_turn_gives_pairs_or_one_reason():
    def persuaded(replies: dict[str, tuple[str, str, str | None]], a_answer="B", **extra):
        turns = {"0": ("A", "neutral", "B"), "0.0": ("B", "resist", "A"), "0.0.0": ("A", "logical", a_answer)}
        tree = build(turns | replies)
        for turn_id, fields in extra.items():
            tree.graph.nodes[turn_id].update(fields)
        return [(o.turn, o.lost, len(o.pairs)) for o in persuasion_outcomes(tree, responders={"B"})]

    resisted = {"0.0.0.0": ("B", "resist", "A"), "0.0.0.1": ("B", "accept", "B")}
    assert persuaded(resisted) == [("0.0.0", None, 1)]
    assert persuaded({"0.0.0.0": ("B", "resist", "A")}) == [("0.0.0", "no_sibling", 0)]
    assert persuaded(resisted, a_answer=None) == [("0.0.0", "unreadable_persuasion", 0)]
    unread_before = {"answer": None, "correct": None}
    assert persuaded(resisted, **{"0.0": unread_before}) == [("0.0.0", "unreadable_before", 0)]
    conflict = {"parsed": {"judge": "conflict", "letter": "A", "text": "B"}}
    unread = {"0.0.0.0": ("B", "resist", "A"), "0.0.0.1": ("B", "accept", None)}
    assert persuaded(unread, **{"0.0.0.1": conflict}) == [("0.0.0", "conflict", 0)]
    same_words = {"text": "the same words"}
    assert persuaded(resisted, **{"0.0.0.0": same_words, "0.0.0.1": same_words}) == [("0.0.0", "identical_texts", 0)]
    # B's first answers are not persuasion turns' replies: the root is no persuasion turn
    assert all(o.turn != "0" for o in persuasion_outcomes(build({"0": ("A", "neutral", "B"), "0.0": ("B", "x", "A")})))
    assert set(LOST_REASONS) >= {"no_sibling", "both_wrong", "no_disagreement", "same_outcome"}


def test_independent_first_answers_make_no_pair():
    # B's level-1 answers differ in correctness, but B had said nothing before A's turn.
    tree = build({"0": ("A", "neutral", "B"), "0.0": ("B", "resist", "A"), "0.1": ("B", "accept", "B")})
    assert pbt_pairs(tree) == []


def test_the_same_situations_at_level_five_of_a_deeper_tree():
    tree = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "A"),
            "0.0.0": ("A", "logical", "B"),
            "0.0.0.0": ("B", "resist", "A"),
            "0.0.0.1": ("B", "accept", "B"),  # level 3: resist pair
            # under 0.0.0.0 (B still right): A keeps misleading -> resist again at level 5
            "0.0.0.0.0": ("A", "emotional", "B"),
            "0.0.0.0.0.0": ("B", "resist", "A"),
            "0.0.0.0.0.1": ("B", "accept", "B"),
            # under 0.0.0.1 (B now wrong, holds B): A switched to the right answer -> accept at level 5
            "0.0.0.1.0": ("A", "logical", "A"),
            "0.0.0.1.0.0": ("B", "resist", "B"),
            "0.0.0.1.0.1": ("B", "accept", "A"),
        }
    )
    assert summary(pbt_pairs(tree)) == [
        ("resist", 3, "0.0.0", "0.0.0.0", "0.0.0.1"),
        ("resist", 5, "0.0.0.0.0", "0.0.0.0.0.0", "0.0.0.0.0.1"),
        ("accept", 5, "0.0.0.1.0", "0.0.0.1.0.1", "0.0.0.1.0.0"),
    ]


def test_subtree_rule_scores_whole_subtrees_and_respects_the_margin():
    # Both level-3 replies are right, so the immediate rule has no pair; below them, B holds on
    # under one (2/2 right) and gives in under the other (1/3 right).
    tree = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "A"),
            "0.0.0": ("A", "logical", "B"),
            "0.0.0.0": ("B", "resist", "A"),
            "0.0.0.1": ("B", "accept", "A"),
            "0.0.0.0.0": ("A", "logical", "B"),
            "0.0.0.0.0.0": ("B", "resist", "A"),
            "0.0.0.1.0": ("A", "logical", "B"),
            "0.0.0.1.0.0": ("B", "resist", "B"),
            "0.0.0.1.0.1": ("B", "accept", "B"),
        }
    )
    assert subtree_score(tree, "0.0.0.0", "B") == 1.0
    assert abs(subtree_score(tree, "0.0.0.1", "B") - 1 / 3) < 1e-9
    assert [p for p in pbt_pairs(tree, "immediate") if p.level == 3] == []
    level3 = [p for p in pbt_pairs(tree, "subtree", margin=0.5) if p.level == 3]
    assert summary(level3) == [("resist", 3, "0.0.0", "0.0.0.0", "0.0.0.1")]
    assert [p for p in pbt_pairs(tree, "subtree", margin=0.7) if p.level == 3] == []


def test_aft_groups_split_sibling_answers_by_correctness_and_rank_by_survival():
    tree = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "A"),
            "0.1": ("B", "accept", "C"),
            "0.2": ("B", "other", "A"),
            "0.0.0": ("A", "logical", "B"),
            "0.0.0.0": ("B", "resist", "B"),  # 0.0 later gives in
            "0.2.0": ("A", "logical", "B"),
            "0.2.0.0": ("B", "resist", "A"),  # 0.2 holds
        }
    )
    groups = [g for g in aft_groups(tree) if g.parent == "0"]
    assert len(groups) == 1
    group = groups[0]
    assert {t.id for t in group.positives} == {"0.0", "0.2"} and [t.id for t in group.negatives] == ["0.1"]
    assert [t.id for t in group.ranked] == ["0.2", "0.0", "0.1"]


def test_critic_json_is_read_or_its_failure_recorded():
    from dialogue.protocols.critique import parse_verdicts

    good = (
        'Here you go: {"step_1": {"correctness": true, "explanation": "ok"}, '
        '"step_2": {"correctness": false, "explanation": "no"}, "answer_correctness": false} Thanks.'
    )
    assert parse_verdicts(good) == {"steps": {"1": True, "2": False}, "answer_correct": False}
    assert parse_verdicts("The solution looks fine.") == {"error": "no JSON object"}
    assert parse_verdicts('{"step_1": {"correctness": tru}')["error"].startswith("invalid JSON")
    assert parse_verdicts('{"step_1": {"correctness": true}}') == {"error": "no boolean answer_correctness"}


def test_critique_examples_hold_critiques_to_the_solutions_correctness():
    from dialogue.mining.rules import critique_examples

    def verdict(ok):
        return {"steps": {"1": ok}, "answer_correct": ok}

    tree = DialogueTree.new("t1", QUESTION, "critique", {})
    turns = [  # (id, speaker, instruction, answer, parsed)
        ("0", "A", "solve", "B", None),  # a wrong solution
        ("0.0", "B", "critique", None, verdict(False)),  # rightly calls it wrong
        ("0.1", "B", "critique", None, verdict(True)),  # wrongly calls it right
        ("0.2", "B", "critique", None, {"error": "no JSON object"}),
        ("0.0.0", "A", "revise", "A", None),
        ("0.0.1", "A", "revise", "B", None),  # fix, no fix
        ("0.1.0", "A", "revise", "B", None),
        ("0.1.1", "A", "revise", "C", None),
    ]
    for turn_id, speaker, instruction, answer, parsed in turns:
        add_turn(
            tree,
            turn_id,
            speaker=speaker,
            instruction=instruction,
            answer=answer,
            correct=None if answer is None else answer == "A",
            parsed=parsed,
        )
    found = critique_examples(tree)
    assert [c.id for c in found.critiques] == ["0.0"]
    assert [(a.id, b.id) for a, b in found.critique_pairs] == [("0.0", "0.1")]
    assert [r.id for r in found.corrections] == ["0.0.0"]
    assert [(a.id, b.id, label) for a, b, label in found.revision_pairs] == [("0.0.0", "0.0.1", "fix")]


def test_persuader_replies_are_mined_only_when_their_speaker_is_a_responder():
    # A first answers wrong; B answers right on its own; A then replies to B under two styles,
    # adopting B's right answer in one and keeping its wrong one in the other: an accept pair for A.
    tree = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "A"),
            "0.0.0": ("A", "logical", "A"),
            "0.0.1": ("A", "emotional", "B"),
        }
    )
    assert summary(pbt_pairs(tree)) == [("accept", 2, "0.0", "0.0.0", "0.0.1")]
    assert pbt_pairs(tree, responders={"B"}) == []
    assert len(pbt_pairs(tree, responders={"A", "B"})) == 1
    assert pbt_pairs(tree, levels={3}) == [] and len(pbt_pairs(tree, levels={2})) == 1
    assert aft_groups(tree, responders={"B"}) == [] and len(aft_groups(tree, responders={"A"})) == 1


def test_a_persuasion_turn_that_states_no_answer_argues_for_the_persuaders_held_one_when_asked():
    # A answered B (wrong) at the root; its persuasion turn says nothing the judge can read
    tree = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "A"),
            "0.0.0": ("A", "logical", None),
            "0.0.0.0": ("B", "resist", "A"),
            "0.0.0.1": ("B", "accept", "B"),
        }
    )
    assert [o.lost for o in persuasion_outcomes(tree, responders={"B"})] == ["unreadable_persuasion"]
    assert summary(pbt_pairs(tree, held=True)) == [("resist", 3, "0.0.0", "0.0.0.0", "0.0.0.1")]
    # a persuader that never gave a readable answer argues for nothing, held or not
    never = build({"0": ("A", "neutral", None), "0.0": ("B", "resist", "A"), "0.0.0": ("A", "logical", None),
                   "0.0.0.0": ("B", "resist", "A"), "0.0.0.1": ("B", "accept", "B")})  # fmt: skip
    assert [o.lost for o in persuasion_outcomes(never, responders={"B"}, held=True)] == ["unreadable_persuasion"]


def test_siblings_whose_texts_differ_only_in_surrounding_space_make_no_pair():
    """Two replies with the same words teach nothing as a pair, however they are padded: a PBT
    pair, a critique revision pair and an AFT group all leave them out."""
    from dialogue.mining.rules import critique_examples

    persuaded = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "A"),
            "0.0.0": ("A", "logical", "B"),
            "0.0.0.0": ("B", "resist", "A"),
            "0.0.0.1": ("B", "accept", "B"),
        }
    )
    persuaded.graph.nodes["0.0.0.0"]["text"] = "I keep my answer.\n"
    persuaded.graph.nodes["0.0.0.1"]["text"] = "  I keep my answer."
    assert pbt_pairs(persuaded, responders={"B"}) == []
    assert [o.lost for o in persuasion_outcomes(persuaded, responders={"B"})] == ["identical_texts"]
    persuaded.graph.nodes["0.0.0.1"]["text"] = "I take yours."
    assert len(pbt_pairs(persuaded, responders={"B"})) == 1  # the same tree with two texts gives its pair

    critiqued = DialogueTree.new("t2", QUESTION, "critique", {})
    verdict = {"steps": {"1": False}, "answer_correct": False}
    for turn_id, instruction, answer, text, parsed in [
        ("0", "solve", "B", "B", None),
        ("0.0", "critique", None, "wrong", verdict),
        ("0.0.0", "revise", "A", "The fix. Answer: A", None),
        ("0.0.1", "revise", "B", "The fix. Answer: A ", None),  # the same words, judged otherwise
        ("0.0.2", "revise", "B", "Still B. Answer: B", None),
    ]:
        add_turn(critiqued, turn_id, instruction=instruction, answer=answer, text=text, parsed=parsed)
        critiqued.graph.nodes[turn_id]["correct"] = None if answer is None else answer == "A"
    pairs = [(a.id, b.id) for a, b, _ in critique_examples(critiqued).revision_pairs]
    assert pairs == [("0.0.0", "0.0.2")]


def test_persuasion_that_worked_is_mined_for_the_persuader_with_its_own_instruction():
    from types import SimpleNamespace

    from dialogue.mining.miners.persuader import persuader_report, persuader_rows

    tree = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "A"),
            "0.0.0": ("A", "logical", "B"),  # argues for a wrong answer: one reply takes it up
            "0.0.0.0": ("B", "resist", "A"),
            "0.0.0.1": ("B", "accept", "B"),
            "0.0.1": ("A", "emotional", "B"),  # argues for it too: no reply takes it up
            "0.0.1.0": ("B", "resist", "A"),
            "0.0.1.1": ("B", "accept", "C"),
            "0.1": ("B", "accept", "C"),
            "0.1.0": ("A", "credibility", "A"),  # argues for the right answer: both replies take it up
            "0.1.0.0": ("B", "resist", "A"),
            "0.1.0.1": ("B", "accept", "A"),
            "0.1.1": ("A", "logical", None),  # its answer cannot be read: no dispute
            "0.1.1.0": ("B", "resist", "A"),
            "0.1.1.1": ("B", "accept", "A"),
        }
    )

    def prompt(tree, last, speaker, instruction):
        return (("user", f"{speaker} after {last} under {instruction}"),)

    def mined(toward):
        rows = persuader_rows(SimpleNamespace(toward=toward), tree, prompt, "run", {"B"})[""]
        return [(r["prompt"][0]["content"], r["completion"][0]["content"], r["label"], r["adopted"]) for r in rows]

    worked = [
        ("A after 0.0 under logical", "A at 0.0.0 says B", "misleading", 0.5),
        ("A after 0.1 under credibility", "A at 0.1.0 says A", "correct", 1.0),
    ]
    assert mined("any") == worked
    assert mined("correct") == worked[1:] and mined("misleading") == worked[:1]
    assert persuader_report(None, [tree], {"B"}) == {
        "disputes": 3,
        "worked_correct": 1,
        "worked_misleading": 1,
        "failed": 1,
    }
    assert persuader_rows(SimpleNamespace(toward="any"), tree, prompt, "run", {"A"}) == {"": []}  # A answers no one
