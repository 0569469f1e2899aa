"""REINFORCE++ (Hu, arXiv 2501.03262; ALGORITHMS.md §7.1; reference: OpenRLHF ``reinforce``).

No groups needed: token reward = outcome at the last response token minus beta * k1 KL to the
reference, discounted return (gamma = 1), token-weighted whitening over the batch, PPO-clip 0.2,
token-mean.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "reinforce_pp",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "token-mean",
    "kl_placement": "reward",
    "kl_estimator": "k1",
    "kl_coef": 0.01,
    "gamma": 1.0,
}
