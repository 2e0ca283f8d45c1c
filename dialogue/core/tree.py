"""The dialogue tree: a real `networkx.DiGraph` (edge parent -> child) with typed access.

Nodes are turns; their attributes are the fields of `Turn` as plain JSON types. The graph
attributes hold the tree id, the question, the protocol, the agents and the schema version.
Turn ids are paths ("0", "0.1", "0.1.2"), so they are stable however a run was batched.

`Turn` and `GenInfo` are plain dataclasses: the engine reads turns many times per turn it adds,
so reading one must cost no validation. They are validated where trees come from disk
(`check_tree`, called by the run directory for every line it reads).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import networkx as nx
from pydantic import ConfigDict, TypeAdapter, ValidationError

from dialogue.core.questions import Question

SCHEMA_VERSION = 1


@dataclass(slots=True)
class GenInfo:
    __pydantic_config__ = ConfigDict(extra="forbid")

    model: str
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_s: float
    error: str | None = None


@dataclass(slots=True)
class Turn:
    __pydantic_config__ = ConfigDict(extra="forbid")

    id: str
    parent: str | None
    depth: int
    speaker: str
    instruction: str
    text: str
    answer: str | None
    correct: bool | None
    agrees_with_parent: bool | None
    parsed: dict | None = None  # structured content a protocol reads from the text (a critic's verdicts)
    gen: GenInfo | None = None

    @property
    def failed(self) -> bool:
        """Its request errored (the same command again regrows it)."""
        return self.gen is not None and self.gen.error is not None


_GEN_FIELDS = tuple(f.name for f in fields(GenInfo))
_TURN_FIELDS = tuple(f.name for f in fields(Turn) if f.name != "id")
_VALID_TURN = TypeAdapter(Turn)


def check_tree(tree: DialogueTree) -> None:
    """A tree read from disk has a valid question, every node is a whole, well-typed turn, and
    the turns make one tree: one root, each other turn reached by one edge from the turn its
    `parent` names (a ValueError or KeyError naming what is wrong, if not)."""
    graph = tree.graph
    tree._question = Question.model_validate(graph.graph["question"])
    for turn_id, attrs in graph.nodes(data=True):
        try:
            _VALID_TURN.validate_python({"id": turn_id, **attrs})
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"turn {turn_id}: {where}: {first['msg']}") from None
        edges_from = list(graph.pred[turn_id])
        if edges_from != ([] if attrs["parent"] is None else [attrs["parent"]]):
            raise ValueError(
                f"turn {turn_id}: its parent is {attrs['parent']!r}, but the tree's edges reach it from "
                f"{', '.join(map(repr, edges_from)) or 'no turn'}"
            )
    roots = [turn_id for turn_id, attrs in graph.nodes(data=True) if attrs["parent"] is None]
    if len(roots) != 1:
        raise ValueError(f"{len(roots)} turns without a parent ({', '.join(sorted(roots)[:3])}); a tree has one root")
    if len(nx.descendants(graph, roots[0])) != len(graph) - 1:
        raise ValueError(f"some turns cannot be reached from the root {roots[0]!r} (a cycle of parents)")


class DialogueTree:
    """Typed access over the graph; `tree.graph` stays a plain DiGraph for networkx algorithms."""

    def __init__(self, graph: nx.DiGraph):
        self.graph = graph
        self._question: Question | None = None

    @classmethod
    def new(
        cls, tree_id: str, question: Question, protocol: str, agents: dict[str, dict], config_hash: str | None = None
    ) -> DialogueTree:
        graph = nx.DiGraph(
            tree_id=tree_id,
            question=question.model_dump(),
            protocol=protocol,
            agents=agents,
            schema_version=SCHEMA_VERSION,
            config_hash=config_hash,  # of the config that grows it (dialogue/running/rundir.py)
        )
        tree = cls(graph)
        tree._question = question
        return tree

    @property
    def tree_id(self) -> str:
        return self.graph.graph["tree_id"]

    @property
    def question(self) -> Question:
        if self._question is None:  # validated once: the engine asks for it on every turn
            self._question = Question.model_validate(self.graph.graph["question"])
        return self._question

    def add_turn(self, turn: Turn) -> None:
        data = {name: getattr(turn, name) for name in _TURN_FIELDS}
        if isinstance(turn.gen, GenInfo):
            data["gen"] = {name: getattr(turn.gen, name) for name in _GEN_FIELDS}
        self.graph.add_node(turn.id, **data)
        if turn.parent is not None:
            self.graph.add_edge(turn.parent, turn.id)

    def turn(self, turn_id: str) -> Turn:
        attrs = self.graph.nodes[turn_id]
        turn = Turn(turn_id, **attrs)
        if turn.gen is not None:
            turn.gen = GenInfo(**turn.gen)
        return turn

    def root(self) -> str:
        return next(n for n, d in self.graph.in_degree() if d == 0)

    def children(self, turn_id: str) -> list[str]:
        return sorted(self.graph.successors(turn_id), key=_id_key)

    def path(self, turn_id: str) -> list[Turn]:
        """The turns from the root down to `turn_id`, inclusive."""
        turns = [self.turn(turn_id)]
        while turns[-1].parent is not None:
            turns.append(self.turn(turns[-1].parent))
        return turns[::-1]

    def leaves(self) -> list[str]:
        return sorted((n for n, d in self.graph.out_degree() if d == 0), key=_id_key)

    def turns(self) -> list[Turn]:
        return [self.turn(n) for n in sorted(self.graph.nodes, key=_id_key)]

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def to_json(self) -> dict:
        """Turns in id order, whatever order they were grown in: the same tree is the same line."""
        data = nx.node_link_data(self.graph, edges="edges")
        data["nodes"].sort(key=lambda node: _id_key(node["id"]))
        data["edges"].sort(key=lambda edge: _id_key(edge["target"]))
        return data

    @classmethod
    def from_json(cls, data: dict) -> DialogueTree:
        return cls(nx.node_link_graph(data, directed=True, edges="edges"))


def child_id(parent: str, index: int) -> str:
    return f"{parent}.{index}"


def _id_key(turn_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in turn_id.split("."))
