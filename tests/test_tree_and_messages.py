import json

import networkx as nx

from dialogue.core.messages import build_messages
from dialogue.core.questions import Question
from dialogue.core.tree import DialogueTree, Turn

Q = Question(
    question_id="q1",
    question="Which planet is closest to the Sun?",
    choices=["Mars", "Mercury"],
    gold="B",
    aliases=["Mercury"],
)


def turn(id, parent, speaker, text, answer=None, depth=None):
    return Turn(
        id=id,
        parent=parent,
        depth=depth if depth is not None else id.count("."),
        speaker=speaker,
        instruction="neutral",
        text=text,
        answer=answer,
        correct=None,
        agrees_with_parent=None,
    )


def small_tree():
    tree = DialogueTree.new("q1", Q, "pbt_tree", {"A": {"model": "m"}, "B": {"model": "m"}})
    tree.add_turn(turn("0", None, "A", "It is Mars.", "A"))
    tree.add_turn(turn("0.0", "0", "B", "Mercury.", "B"))
    tree.add_turn(turn("0.1", "0", "B", "Mars.", "A"))
    tree.add_turn(turn("0.0.0", "0.0", "A", "Trust me, Mars.", "A"))
    return tree


def test_tree_is_a_networkx_graph_with_typed_access():
    tree = small_tree()
    assert isinstance(tree.graph, nx.DiGraph)
    assert tree.root() == "0"
    assert tree.children("0") == ["0.0", "0.1"]
    assert [t.id for t in tree.path("0.0.0")] == ["0", "0.0", "0.0.0"]
    assert tree.leaves() == ["0.0.0", "0.1"]
    assert nx.is_arborescence(tree.graph)


def test_json_round_trip_through_node_link_graph():
    tree = small_tree()
    line = json.dumps(tree.to_json())
    graph = nx.node_link_graph(json.loads(line), edges="edges")
    assert graph.graph["tree_id"] == "q1" and graph.graph["question"]["gold"] == "B"
    again = DialogueTree.from_json(json.loads(line))
    assert again.turns() == tree.turns()


def test_messages_from_each_speakers_point_of_view():
    tree = small_tree()
    context = tree.path("0.0")
    for_a = build_messages(speaker="A", persona="P", question="Q?", context=context, instruction="Persuade.")
    assert for_a == (
        ("system", "P"),
        ("user", "Q?"),
        ("assistant", "It is Mars."),
        ("user", "Mercury.\n\nPersuade."),
    )
    for_b = build_messages(speaker="B", persona="P", question="Q?", context=context[1:], instruction="Resist.")
    assert for_b == (("system", "P"), ("user", "Q?"), ("assistant", "Mercury."), ("user", "Resist."))


def test_messages_name_speakers_when_more_than_two_agents_and_skip_empty_persona():
    tree = small_tree()
    msgs = build_messages(
        speaker="C", persona="", question="Q?", context=tree.path("0.0"), instruction="Go.", many_agents=True
    )
    assert msgs == (("user", "Q?\n\nA: It is Mars.\n\nB: Mercury.\n\nGo."),)
