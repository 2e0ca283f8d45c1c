"""Protocols decide, for a turn, which children to create and when a branch stops."""

from dialogue.protocols.base import ChildSpec, Protocol
from dialogue.protocols.pbt_tree import PbtTree, PbtTreeConfig

PROTOCOLS = {"pbt_tree": PbtTree}
PROTOCOL_CONFIGS = {"pbt_tree": PbtTreeConfig}


def make_protocol(config) -> Protocol:
    return PROTOCOLS[config.name](config)


__all__ = ["PROTOCOL_CONFIGS", "ChildSpec", "PbtTree", "PbtTreeConfig", "Protocol", "make_protocol"]
