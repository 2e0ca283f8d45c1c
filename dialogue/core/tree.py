"""The dialogue tree: a real `networkx.DiGraph` (edge parent -> child) with typed access.

Nodes are turns; their attributes are the fields of `Turn` as plain JSON types. The graph
attributes hold the tree id, the question, the protocol, the agents and the schema version.
Turn ids are paths ("0", "0.1", "0.1.2"), so they are stable however a run was batched.
"""

from __future__ import annotations

import networkx as nx
from pydantic import BaseModel, ConfigDict

from dialogue.core.questions import Question

SCHEMA_VERSION = 1


class GenInfo(BaseModel):
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


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


class DialogueTree:
    """Typed access over the graph; `tree.graph` stays a plain DiGraph for networkx algorithms."""

    def __init__(self, graph: nx.DiGraph):
        self.graph = graph

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
        return cls(graph)

    @property
    def tree_id(self) -> str:
        return self.graph.graph["tree_id"]

    @property
    def question(self) -> Question:
        return Question.model_validate(self.graph.graph["question"])

    def add_turn(self, turn: Turn) -> None:
        data = turn.model_dump()
        self.graph.add_node(turn.id, **{k: v for k, v in data.items() if k != "id"})
        if turn.parent is not None:
            self.graph.add_edge(turn.parent, turn.id)

    def turn(self, turn_id: str) -> Turn:
        return Turn(id=turn_id, **self.graph.nodes[turn_id])

    def root(self) -> str:
        return next(n for n, d in self.graph.in_degree() if d == 0)

    def children(self, turn_id: str) -> list[str]:
        return sorted(self.graph.successors(turn_id), key=_id_key)

    def path(self, turn_id: str) -> list[Turn]:
        """The turns from the root down to `turn_id`, inclusive."""
        ids = nx.shortest_path(self.graph, self.root(), turn_id)
        return [self.turn(i) for i in ids]

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
