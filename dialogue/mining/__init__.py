"""Turning trees into training data: the mining rules (pure functions from trees to pairs and
groups) and `agora mine` (the miners, and the parquet datasets they write)."""
