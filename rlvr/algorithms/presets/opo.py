"""OPO, on-policy RL with the optimal reward baseline (Hao et al., arXiv 2505.23585; ALGORITHMS.md §15.6;
reference: verl compute_opo_outcome_advantage).

Advantage ``R_i - b_q`` with the length-weighted group baseline ``b_q = sum_i |o_i| R_i / sum_i |o_i|``:
the variance-minimising baseline when the squared gradient norm of a response grows with its length.
It assumes exact on-policy training (one mini-batch, one epoch: then PPO-clip is REINFORCE) and no KL or
entropy term. Token-level mean (the paper's aggregation is not stated).
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "opo",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
