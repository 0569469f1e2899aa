"""Per-token log-probs and entropy of the sampling distribution, whole or in token chunks.

Why chunks: the full-vocabulary logits of a micro-batch are ``tokens x vocab`` floats (16K tokens x 152K
vocabulary is 10 GB in fp32), and autograd keeps them, their log-softmax and their softmax for the backward
pass. Computing the output layer, log-softmax, target log-prob and entropy a chunk of tokens at a time, and
recomputing each chunk in the backward pass (non-reentrant checkpointing, so ZeRO-3's parameter hooks see
an ordinary second call), keeps one chunk's logits alive at a time; the values and gradients are the same as
the whole computation's (prime-rl and TRL chunk the same way).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``logits [..., V]``, ``targets [...]`` -> log-prob of each target ``[...]``."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 -> fp32, fp64 stays
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each next-token distribution ``[...]``."""
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def _head_chunk(head: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor, targets: torch.Tensor,
                temperature: float, entropy: bool) -> tuple[torch.Tensor, torch.Tensor]:
    logits = head(hidden) / temperature
    lp = token_logprobs(logits, targets)
    return lp, (token_entropy(logits) if entropy else lp.new_zeros(0))


def chunked_logprobs(
    head: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor, targets: torch.Tensor, temperature: float,
    chunk_tokens: int, entropy: bool = False, entropy_grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of ``targets [M]`` under ``head(hidden [M, H]) / temperature``, ``chunk_tokens`` rows at a
    time, and the entropy when asked (with a gradient only for ``entropy_grad``)."""
    lps, ents = [], []
    recompute = torch.is_grad_enabled() and hidden.requires_grad
    for start in range(0, hidden.shape[0], chunk_tokens):
        h, t = hidden[start:start + chunk_tokens], targets[start:start + chunk_tokens]
        if recompute:
            lp, ent = checkpoint(_head_chunk, head, h, t, temperature, entropy, use_reentrant=False)
        else:
            lp, ent = _head_chunk(head, h, t, temperature, entropy)
        lps.append(lp)
        ents.append(ent if entropy_grad else ent.detach())
    if not lps:
        return hidden.new_zeros(0), (hidden.new_zeros(0) if entropy else None)
    return torch.cat(lps), (torch.cat(ents) if entropy else None)
