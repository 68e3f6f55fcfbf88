"""The week 2 and 3 references against independent implementations (Hugging Face transformers,
torch.nn), beyond what the hidden suites compare: if a reference drifted from the published
conventions, these fail before any student is graded against it."""

from __future__ import annotations

import math

import pytest
import torch

from solutions import w02_multihead, w03_positional

transformers = pytest.importorskip("transformers")


def test_sinusoids_equal_distilbert_table():
    """DistilBERT's sinusoidal table is interleaved like ours, with the same frequencies."""
    from transformers.models.distilbert.modeling_distilbert import _create_sinusoidal_embeddings

    for T, d in ((50, 16), (33, 64)):
        expected = _create_sinusoidal_embeddings(T, d, torch.empty(T, d))
        torch.testing.assert_close(w03_positional.sinusoidal_encoding(T, d), expected, atol=2e-5, rtol=0)


def test_rope_equals_hugging_face_llama_up_to_the_layout_permutation():
    """HF Llama's half-split RoPE on x[P] equals our interleaved RoPE on x, permuted by P."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    g = torch.Generator().manual_seed(0)
    d = 32
    q, k = torch.randn(2, 4, 9, d, generator=g), torch.randn(2, 4, 9, d, generator=g)
    positions = torch.arange(9) + 17
    theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)  # HF's inv_freq
    angles = torch.cat([positions[:, None] * theta] * 2, dim=-1)[None]  # (1, T, d)
    P = torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])
    hf_q, hf_k = apply_rotary_pos_emb(q[..., P], k[..., P], angles.cos(), angles.sin(), unsqueeze_dim=1)
    torch.testing.assert_close(w03_positional.apply_rope(q, positions)[..., P], hf_q, atol=1e-5, rtol=0)
    torch.testing.assert_close(w03_positional.apply_rope(k, positions)[..., P], hf_k, atol=1e-5, rtol=0)


def test_alibi_equals_bloom_for_a_power_of_two_and_differs_for_12_heads():
    """BLOOM's bias m·j differs from ours, −m·(i − j), by a constant per query row (softmax-invariant);
    its slopes agree for 8 heads and follow another rule for 12, as the notes say."""
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    T = 7
    for n in (8, 16):
        bloom = build_alibi_tensor(torch.ones(1, T), n, torch.float32).view(n, T)  # (n, T_k): m_h · j
        ours = w03_positional.alibi_bias(n, T, T)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        shift = torch.where(causal, ours - bloom[:, None, :], torch.nan)  # constant along each row
        row = shift.nanmean(-1, keepdim=True)
        torch.testing.assert_close(
            torch.where(causal, shift - row, 0.0), torch.zeros(n, T, T), atol=1e-6, rtol=0
        )
        torch.testing.assert_close(w03_positional.alibi_slopes(n), bloom[:, 1], atol=1e-7, rtol=1e-6)
    bloom12 = build_alibi_tensor(torch.ones(1, 2), 12, torch.float32).view(12, 2)[:, 1]
    assert not torch.allclose(w03_positional.alibi_slopes(12), bloom12)
    expected = torch.tensor([2.0 ** (-8 * h / 12) for h in range(1, 13)])
    torch.testing.assert_close(w03_positional.alibi_slopes(12), expected)


def test_mha_matches_torch_with_context_mask_and_dropout_off():
    """Reference MHA equals nn.MultiheadAttention for cross-attention with a key padding mask."""
    g = torch.Generator().manual_seed(1)
    d, h = 32, 4
    ours = w02_multihead.MultiHeadAttention(d, h, dropout=0.3).eval()
    ref = torch.nn.MultiheadAttention(d, h, dropout=0.3, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.load_state_dict(ours.out_proj.state_dict())
    x, c = torch.randn(3, 4, d, generator=g), torch.randn(3, 6, d, generator=g)
    keep = torch.arange(6)[None, :] < torch.tensor([6, 3, 1])[:, None]  # (B, T_k), True = real key
    with torch.no_grad():
        out, w = ours(x, c, mask=keep[:, None, None, :], return_weights=True)
        expected, expected_w = ref(x, c, c, key_padding_mask=~keep, average_attn_weights=False)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(w, expected_w, atol=1e-5, rtol=1e-4)
    assert w02_multihead.mha_param_count(512, 8) == sum(
        p.numel() for p in torch.nn.MultiheadAttention(512, 8).parameters()
    )
    assert math.isclose(w02_multihead.mha_param_count(512, 8, bias=False), 512 * 512 * 4)
