"""NFT, Negative-aware Fine-Tuning (Chen et al., arXiv 2505.18116; ALGORITHMS.md §1; reference:
NVlabs/NFT ``dp_actor.py`` NFT branch).

No advantage: the loss uses each question's clamped correct rate ``r_hat`` (in [0.02, 0.98]) and
each sample's correctness. Positives: ``-log R``; negatives: ``-log max_v((1 - r_hat R)/(1 - r_hat), 1)``
with value-only clamps; prompt weight ``1 - r_hat`` (mode 1; mode 2 ``sqrt((1 - r_hat)/r_hat)``
matches GRPO on-policy); token sum divided by the constant 1000 as the reference code does
(``loss_agg: token-mean`` is the paper's "token-level" reading). Dynamic sampling is on, as the
reference requires ``r_hat`` strictly inside (0, 1).
"""

PRESET = {
    "loss": "nft",
    "advantage": "nft",
    "ratio_level": "token",
    "loss_agg": "token-sum-constant",
    "loss_agg_constant": 1000.0,
    "kl_placement": "none",
    "kl_coef": 0.0,
    "dynamic_sampling": True,
    "nft_neg_weight": 1.0,
    "nft_prompt_weight": 1,
    "nft_clamp_negative": 1.0,
    "nft_clamp_positive": 0.0,
}
