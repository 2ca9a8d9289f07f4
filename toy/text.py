"""CLIP-like word-level tokenizer and small causal transformer text encoder for the toy model.

Prompts are lower-cased, split on whitespace/commas, and encoded as BOS w1 .. wn EOS PAD ... (fixed context
length). The encoder adds learned position embeddings and runs a small causal transformer, so the empty prompt
"" (BOS EOS PAD ...) has a real, non-zero embedding, like CLIP's in Stable Diffusion.
"""

from __future__ import annotations

import re

import torch
from torch import nn

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


class Tokenizer:
    """Word-level tokenizer with a fixed vocabulary and context length."""

    def __init__(self, words: list[str], context_length: int = 16) -> None:
        self.words = list(words)
        self.context_length = int(context_length)
        self.itos = [PAD, BOS, EOS, *self.words]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        """Number of token ids (special tokens included)."""
        return len(self.itos)

    def split(self, text: str) -> list[str]:
        """Split a prompt into words and validate them; raises ValueError listing the vocabulary."""
        words = [w for w in re.split(r"[\s,]+", text.strip().lower()) if w]
        unknown = [w for w in words if w not in self.words or w in (PAD, BOS, EOS)]
        if unknown:
            raise ValueError(
                f"unknown word(s) {unknown} in prompt {text!r}; the toy model only knows: {', '.join(self.words)}"
            )
        return words

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Encode prompts to token ids [B, context_length] (long); long prompts are truncated."""
        rows = []
        for t in texts:
            ids = [self.stoi[w] for w in self.split(t)][: self.context_length - 2]
            ids = [self.stoi[BOS], *ids, self.stoi[EOS]]
            ids += [self.stoi[PAD]] * (self.context_length - len(ids))
            rows.append(ids)
        return torch.tensor(rows, dtype=torch.long).reshape(len(texts), self.context_length)


class TextEncoder(nn.Module):
    """Token + learned position embeddings, causal transformer, final LayerNorm -> [B, L, D]."""

    def __init__(
        self, vocab_size: int, context_length: int = 16, dim: int = 64, layers: int = 2, heads: int = 4
    ) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Parameter(torch.randn(context_length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=dim * 4, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(dim)
        mask = torch.triu(torch.full((context_length, context_length), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Encode token ids [B, L] to hidden states [B, L, D]."""
        h = self.token_embedding(tokens) + self.position_embedding[None, : tokens.shape[1]]
        h = self.transformer(h, mask=self.causal_mask[: tokens.shape[1], : tokens.shape[1]], is_causal=True)
        return self.final_norm(h)
