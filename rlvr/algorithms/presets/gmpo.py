"""GMPO, Geometric-Mean Policy Optimization (Zhao et al., arXiv 2507.20673; ALGORITHMS.md §15.3;
reference: verl compute_policy_loss_geo_mean).

Maximises the geometric mean of the token ratios instead of their arithmetic mean, which an outlier
token cannot dominate: ``-A_i * exp(mean_t clip(log rho_t))`` per sequence, the log-ratios clipped in log
space by the sign of A (``clip_low`` / ``clip_high`` are log-space bounds here: 0.4, the band
(e^-0.4, e^0.4) of the paper). GRPO advantage; the sequence objective is averaged over sequences
(``seq-mean-token-mean`` of the per-token copies); no KL.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "grpo",
    "policy_loss": "gmpo",
    "ratio_level": "token",
    "clip_low": 0.4,
    "clip_high": 0.4,
    "loss_agg": "seq-mean-token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
