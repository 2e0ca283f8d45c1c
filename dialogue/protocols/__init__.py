"""Protocols decide, for a turn, which children to create and when a branch stops."""

from typing import Annotated

from pydantic import Field

from dialogue.protocols.base import ChildSpec, Protocol
from dialogue.protocols.critique import Critique, CritiqueConfig
from dialogue.protocols.pbt_tree import PbtTree, PbtTreeConfig

PROTOCOLS = {"pbt_tree": PbtTree, "critique": Critique}
PROTOCOL_CONFIGS = {"pbt_tree": PbtTreeConfig, "critique": CritiqueConfig}
ProtocolConfig = Annotated[PbtTreeConfig | CritiqueConfig, Field(discriminator="name")]


def make_protocol(config) -> Protocol:
    return PROTOCOLS[config.name](config)


__all__ = ["PROTOCOL_CONFIGS", "ChildSpec", "Critique", "CritiqueConfig", "ProtocolConfig", "PbtTree", "PbtTreeConfig", "Protocol", "make_protocol"]
