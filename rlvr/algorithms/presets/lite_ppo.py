"""Lite PPO ("Tricks or Traps? Part I", Liu et al., arXiv 2508.08221; ALGORITHMS.md §2.1).

Exactly two tricks on vanilla critic-free PPO-clip: group-mean / batch-std advantage
``(R - mu_q) / (std_B + eps)`` with std_B the unbiased std of the raw rewards over the whole batch,
and token-level aggregation. Symmetric clip 0.2, no KL, no dynamic sampling.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "lite",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
