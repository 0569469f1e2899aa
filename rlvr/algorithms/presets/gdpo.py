"""GDPO, per-term normalisation of multi-term rewards (Liu et al., arXiv 2601.05242; ALGORITHMS.md §15.9;
reference: verl compute_gdpo_outcome_advantage).

With a composed reward (correctness + format + length, ...), GRPO normalises the sum, so different
combinations of the terms can collapse to the same advantage. GDPO normalises each term within the group
first, sums the normalised terms (``gdpo_weights``, default 1 each), then whitens over the batch's tokens.
Needs a ``compose`` verifier (its terms are the ones normalised; ``gdpo_terms`` picks a subset).
PPO-clip 0.2, token-level mean, no KL.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "gdpo",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
