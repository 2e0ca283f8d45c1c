"""Agents and the backends that serve their models. Imports neither `dialogue` nor `trainers`."""

from agents.agent import Agent
from agents.errors import AgoraError
from agents.requests import Backend, ChatRequest, Completion, Sampling

__all__ = ["Agent", "AgoraError", "Backend", "ChatRequest", "Completion", "Sampling"]
