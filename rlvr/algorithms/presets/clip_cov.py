"""Clip-Cov (Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models",
arXiv 2505.22617; ALGORITHMS.md §15.5; reference: verl compute_policy_loss_clip_cov).

Entropy collapse is driven by tokens whose log-prob and advantage covary strongly; Clip-Cov removes the
gradient of a small random fraction (2e-4) of the tokens whose covariance lies in (1, 5), on top of
PPO-clip. rlvr selects the tokens over the whole rollout batch on the driver (verl: per micro-batch),
so the update does not depend on how the batch is split. GRPO advantage, token-level mean, no KL.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "grpo",
    "policy_loss": "clip_cov",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "cov_fraction": 2e-4,
    "clip_cov_bounds": (1.0, 5.0),
    "loss_agg": "token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
