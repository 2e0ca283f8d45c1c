from __future__ import annotations

from dataclasses import dataclass

from agents.requests import Sampling


@dataclass(frozen=True)
class Agent:
    """A participant: a name, the model that speaks for it, a persona, and how it samples.

    Role instructions are chosen per turn by the protocol, so they are not part of the agent.
    """

    name: str
    model: str
    persona: str  # the persona's text, placed in the system message
    sampling: Sampling
    backend_key: str  # which shared backend instance serves this agent
    adapter: str = ""  # the LoRA adapter its requests name, where its backend serves several of one base
