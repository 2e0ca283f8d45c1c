"""Persuasion-balanced training (PBT, Stengel-Eskin et al. 2025): SFT on the chosen replies of
`agora mine miner=pbt` pairs, then DPO on the same pairs starting from the SFT weights.

With LoRA the DPO stage goes on training the SFT adapter, and TRL keeps a frozen copy of it as
the reference, so the reference model is the SFT model, as in the paper.
"""

from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from trainers.stage import Stage, chosen_as_completion

STAGES = {
    "sft": Stage(SFTConfig, SFTTrainer, ("prompt", "chosen"), miner="pbt", prepare=chosen_as_completion),
    "dpo": Stage(DPOConfig, DPOTrainer, ("prompt", "chosen", "rejected"), miner="pbt"),
}
