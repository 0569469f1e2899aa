"""Dr. GRPO (Liu et al., "Understanding R1-Zero-Like Training", arXiv 2503.20783; ALGORITHMS.md §4).

Removes GRPO's two biases: advantage ``R - mu_q`` (no std) and each sequence's token sum divided by a
constant (the generation budget, ``rollout.max_new_tokens`` unless ``loss_agg_constant`` is set)
instead of its own length, averaged over sequences. No KL; symmetric clip 0.2. The paper also scores
truncated answers 0 (rlvr's verifiers already do for exact answers; ``non_eos_penalty`` makes it explicit).
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "drgrpo",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "seq-mean-token-sum-norm",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
