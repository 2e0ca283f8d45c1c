"""TRL-based trainers and the extra losses (AFT constraint alignment, constrained DPO)."""
