"""REINFORCE++-baseline (OpenRLHF's recommendation for RLVR; ALGORITHMS.md §7.2).

``R - mu_q`` broadcast to tokens, then token-weighted whitening over the batch; k2 KL in the loss
(1e-5 in OpenRLHF's example); PPO-clip 0.2; token-mean.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "reinforce_pp_baseline",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "token-mean",
    "kl_placement": "loss",
    "kl_estimator": "k2",
    "kl_coef": 1e-5,
}
