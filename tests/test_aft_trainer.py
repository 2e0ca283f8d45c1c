"""The AFT trainer on an `agora mine miner=aft` export made in the test."""

import math

import pytest
import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from agents.scoring import sequence_scores
from tests.conftest import scripted_export
from trainers.aft import AFTCollator, AFTConfig, AFTTrainer


@pytest.fixture(scope="module")
def aft_data(tmp_path_factory):
    export = scripted_export(tmp_path_factory.mktemp("aft"), "aft")
    return load_dataset("parquet", data_files=str(export / "train.parquet"))["train"]


def trainer(tiny_model, data, tmp_path, steps, **options):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    options = {"per_device_train_batch_size": 4, "learning_rate": 5e-3, **options}
    args = AFTConfig(
        output_dir=str(tmp_path),
        max_steps=steps,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        **options,
    )
    collator = AFTCollator(tokenizer, args.max_length, args.ranking)
    return AFTTrainer(model=model, args=args, train_dataset=data, data_collator=collator), collator


@pytest.mark.parametrize("options", [{}, {"constraint": "detached"}, {"constraint": "none"}, {"ranking": True}])
def test_trains_two_steps_with_a_finite_loss(aft_data, tiny_model, tmp_path, options):
    t, _ = trainer(tiny_model, aft_data, tmp_path, 2, **options)
    result = t.train()
    assert result.global_step == 2 and math.isfinite(result.training_loss)
    logged = [h for h in t.state.log_history if "align_loss" in h]
    assert logged and all(math.isfinite(h["score_positive"]) for h in logged)


def test_positive_scores_rise_relative_to_negatives_on_a_fixed_batch(aft_data, tiny_model, tmp_path):
    fixed = aft_data.select(range(min(4, len(aft_data))))
    t, collator = trainer(tiny_model, fixed, tmp_path, 8, sft_weight=0.0)
    batch = collator(list(fixed))

    def margin():
        with torch.no_grad():
            logits = t.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            scores, _ = sequence_scores(logits, batch["labels"])
        return (scores[batch["positive"]].mean() - scores[~batch["positive"]].mean()).item()

    before = margin()
    t.train()
    assert margin() > before + 0.1


def test_a_missing_column_fails_before_training_naming_it(aft_data, tiny_model, tmp_path):
    with pytest.raises(ValueError, match="trainer aft needs a 'negatives' column"):
        trainer(tiny_model, aft_data.remove_columns("negatives"), tmp_path, 1)


def test_gradient_accumulation_gives_the_same_update_as_one_big_batch(aft_data, tiny_model, tmp_path):
    """The loss is a batch mean, so the Trainer must divide it by the accumulation steps; with
    plain SGD and no clipping (either would hide a wrong scale) both runs take the same step."""
    fixed = aft_data.select(range(4))
    params = []
    for batch, accumulate in ((4, 1), (2, 2)):
        t, _ = trainer(
            tiny_model,
            fixed,
            tmp_path / f"{batch}",
            1,
            sft_weight=0.0,
            optim="sgd",
            max_grad_norm=0,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulate,
        )
        t.train()
        params.append(torch.cat([p.detach().flatten() for p in t.model.parameters()]))
    before = torch.cat([p.flatten() for p in AutoModelForCausalLM.from_pretrained(tiny_model).parameters()])
    assert not torch.allclose(params[0], before)
    torch.testing.assert_close(params[1] - before, params[0] - before, rtol=1e-3, atol=1e-7)
