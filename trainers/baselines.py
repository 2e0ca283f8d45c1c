"""TRL's own trainers on Agora exports, as baselines. Accept-only and resist-only PBT are `dpo`
with a label filter (data.labels=[accept]); the exports need no conversion for these."""

from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, SFTConfig, SFTTrainer

from trainers.stage import Stage

TRAINERS = {
    "sft": {"sft": Stage(SFTConfig, SFTTrainer, ("prompt", "completion"), miner="sft")},
    "dpo": {"dpo": Stage(DPOConfig, DPOTrainer, ("prompt", "chosen", "rejected"), miner="pbt")},
    "kto": {"kto": Stage(KTOConfig, KTOTrainer, ("prompt", "completion", "label"), miner="kto")},
}
