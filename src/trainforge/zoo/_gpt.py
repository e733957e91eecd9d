"""A character-level GPT for the ``tiny_lm`` task.

The shape of nanoGPT's ``model.py``, cut down: token and position embeddings, pre-norm
blocks of causal self-attention and an MLP, a final LayerNorm and an output head that
shares its weight with the token embedding. Attention goes through
``scaled_dot_product_attention(is_causal=True)``, which picks a fused kernel where one
exists and never materialises the ``T x T`` mask.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TinyGPT"]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention over ``[B, T, C]``."""

    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.dropout = dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend each position to itself and the positions before it."""
        batch, time, channels = x.shape
        q, k, v = self.qkv(x).split(channels, dim=2)
        # [B, T, C] -> [B, heads, T, C/heads]
        q, k, v = (t.view(batch, time, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        y = y.transpose(1, 2).contiguous().view(batch, time, channels)
        return self.resid_dropout(self.proj(y))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One residual attention step and one residual MLP step."""
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    """A decoder-only transformer over token ids.

    Args:
        vocab_size: Number of token ids.
        max_seq_len: Longest input (size of the position embedding).
        n_layer: Transformer blocks.
        n_head: Attention heads per block.
        n_embd: Embedding width (divisible by ``n_head``).
        dropout: Dropout in embeddings, attention and MLP.

    Examples:
        >>> model = TinyGPT(vocab_size=97, max_seq_len=16, n_layer=1, n_embd=32)
        >>> model(torch.zeros(2, 16, dtype=torch.long)).shape
        torch.Size([2, 16, 97])
    """

    def __init__(
        self,
        vocab_size: int,
        max_seq_len: int,
        n_layer: int = 2,
        n_head: int = 4,
        n_embd: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.max_seq_len = max_seq_len
        self.token_embedding = nn.Embedding(vocab_size, n_embd)
        self.position_embedding = nn.Embedding(max_seq_len, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        # weight tying: input and output embeddings share one matrix (fewer parameters,
        # better small-data perplexity)
        self.lm_head.weight = self.token_embedding.weight
        self.apply(self._init_weights)
        # GPT-2's scaled init of the residual projections keeps the residual stream's
        # variance independent of depth
        for name, param in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``[B, T, vocab_size]`` for token ids ``[B, T]``."""
        time = inputs.shape[1]
        if time > self.max_seq_len:
            raise ValueError(f"sequence length {time} exceeds max_seq_len={self.max_seq_len}")
        positions = torch.arange(time, device=inputs.device)
        x = self.drop(self.token_embedding(inputs) + self.position_embedding(positions))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))
