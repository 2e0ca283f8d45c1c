"""Dialogue trees, protocols, the simulation engine, judging, storage and rendering.

May import `agents`; never imports `trainers`.
"""
