"""Self-correction: SFT on correction rows (a wrong solution and its critique -> the corrected
solution), then DPO on critique pairs (a correct critique over a wrong one), both from one
`agora mine miner=critique` export."""

from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from trainers.stage import Stage

STAGES = {
    "sft": Stage(SFTConfig, SFTTrainer, ("prompt", "completion"), miner="critique", subset="correction_sft"),
    "dpo": Stage(DPOConfig, DPOTrainer, ("prompt", "chosen", "rejected"), miner="critique", subset="critique_pairs"),
}
