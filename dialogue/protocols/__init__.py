"""Protocols decide, for a turn, which children to create and when a branch stops."""

from typing import Annotated

from pydantic import Field

from dialogue.protocols.are_you_sure import AreYouSure, AreYouSureConfig
from dialogue.protocols.base import ChildSpec, Protocol
from dialogue.protocols.critique import Critique, CritiqueConfig
from dialogue.protocols.debate import Debate, DebateConfig
from dialogue.protocols.misinformation import Misinformation, MisinformationConfig
from dialogue.protocols.pbt_tree import PbtTree, PbtTreeConfig

PROTOCOLS = {
    "pbt_tree": PbtTree,
    "critique": Critique,
    "are_you_sure": AreYouSure,
    "misinformation": Misinformation,
    "debate": Debate,
}
PROTOCOL_CONFIGS = {
    "pbt_tree": PbtTreeConfig,
    "critique": CritiqueConfig,
    "are_you_sure": AreYouSureConfig,
    "misinformation": MisinformationConfig,
    "debate": DebateConfig,
}
ProtocolConfig = Annotated[
    PbtTreeConfig | CritiqueConfig | AreYouSureConfig | MisinformationConfig | DebateConfig, Field(discriminator="name")
]


def make_protocol(config) -> Protocol:
    return PROTOCOLS[config.name](config)


__all__ = [
    "PROTOCOL_CONFIGS",
    "AreYouSure",
    "AreYouSureConfig",
    "ChildSpec",
    "Critique",
    "CritiqueConfig",
    "Debate",
    "DebateConfig",
    "Misinformation",
    "MisinformationConfig",
    "ProtocolConfig",
    "PbtTree",
    "PbtTreeConfig",
    "Protocol",
    "make_protocol",
]
