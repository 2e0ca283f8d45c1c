"""The CPU attention for batched decoding gives what transformers' sdpa gives."""

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from agents.backends import transformers_backend
from agents.backends.grouped_attention import NAME, use_grouped_attention


def grouped_query_llama() -> LlamaForCausalLM:
    """Six query heads sharing two key/value heads, initialised sharply enough that attending to
    the wrong key or head moves the logits."""
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=96,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        initializer_range=0.5,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


@torch.inference_mode()
def logits_of_padded_batch(model) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Prefill three left-padded prompts, then decode three tokens: the prompt logits at real
    positions and the logits of each decoding step."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 64, (3, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    mask[2, :7] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    prompt = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache).logits
    steps = []
    for _ in range(3):
        mask = torch.cat([mask, torch.ones(3, 1, dtype=mask.dtype)], dim=-1)
        positions = positions[:, -1:] + 1
        step = model(
            input_ids=torch.randint(0, 64, (3, 1), generator=generator),
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
        ).logits
        steps.append(step[:, -1])
    return prompt[mask[:, :10].bool()], steps


@torch.inference_mode()
def logits_of_one_prompt(model) -> torch.Tensor:
    """No padding: transformers passes no mask, so causality is up to the attention function."""
    return model(input_ids=torch.arange(12)[None] % 64).logits


def test_grouped_attention_equals_sdpa_on_padded_prompts_and_decoding():
    model = grouped_query_llama()
    expected_prompt, expected_steps = logits_of_padded_batch(model)
    expected_alone = logits_of_one_prompt(model)
    use_grouped_attention(model)
    assert model.config._attn_implementation == NAME
    prompt, steps = logits_of_padded_batch(model)
    torch.testing.assert_close(logits_of_one_prompt(model), expected_alone, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(prompt, expected_prompt, rtol=1e-4, atol=1e-4)
    for got, expected in zip(steps, expected_steps, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("device", "avx512_bf16", "amx", "expected"),
    [
        ("cpu", True, False, "bfloat16"),
        ("cpu", False, True, "bfloat16"),
        ("cpu", False, False, "float32"),
        ("cuda", False, False, "bfloat16"),
        ("mps", True, True, "float32"),
    ],
)
def test_auto_dtype_takes_bfloat16_only_where_it_is_native(monkeypatch, device, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert transformers_backend.auto_dtype(device) == expected
