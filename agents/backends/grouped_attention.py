"""Attention for batched decoding on a CPU, registered with transformers' attention interface.

Models with grouped-query attention (SmolLM2: 9 query heads share 3 key/value heads) meet two
slow paths in transformers' `sdpa` on a CPU once a batch carries padding:
- with a mask, it copies every key/value head once per query head of its group before calling
  SDPA, because CUDA kernels need that. With a KV cache, that copies the whole cache, for every
  layer, at every decoding step;
- in bfloat16, the CPU SDPA kernel is several times slower than two matmuls when there is a
  single query per row, which is every decoding step.
Decoding therefore multiplies each group's query heads against its shared key/value head
directly; prompts (many queries per row) still go through SDPA, told the heads are grouped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "agora_grouped"


def grouped_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """query (batch, heads, queries, dim); key and value (batch, kv_heads, keys, dim); the mask is
    sdpa's: boolean (batch, 1, queries, keys), True where a query may look, or None for no padding.
    Returns (batch, queries, heads, dim), as every transformers attention function does."""
    batch, heads, queries, dim = query.shape
    kv_heads = key.shape[1]
    scale = scaling if scaling is not None else dim**-0.5
    if queries > 1:
        out = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=dropout,
            scale=scale,
            # without a mask, transformers only leaves it out when queries and keys line up
            is_causal=attention_mask is None,
            enable_gqa=heads != kv_heads,
        )
        return out.transpose(1, 2).contiguous(), None
    # Decoding: each key/value head serves `heads // kv_heads` query heads, which become the rows
    # of one matmul against that head's cache.
    grouped = query.reshape(batch, kv_heads, heads // kv_heads, dim)
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float() * scale
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, float("-inf"))
    weights = scores.softmax(dim=-1).to(value.dtype)
    out = torch.matmul(weights, value).reshape(batch, heads, 1, dim)
    return out.transpose(1, 2).contiguous(), None


def use_grouped_attention(model) -> None:
    """Switch a model that runs transformers' `sdpa` to `grouped_attention`, keeping sdpa's masks.
    A model that cannot take a registered attention function keeps its own."""
    if model.config._attn_implementation != "sdpa" or not model._supports_attention_backend:
        return
    AttentionInterface.register(NAME, grouped_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
