"""Evaluation: metrics over per-question records, with bootstrap intervals over questions."""
