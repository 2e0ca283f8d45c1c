"""Running dialogues: the batched engine, `agora simulate` and `agora replay`, the run directory
and the generation cache, the run summary, and the validated simulate config."""
