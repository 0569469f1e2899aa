"""KL-Cov (Cui et al., arXiv 2505.22617; ALGORITHMS.md §15.5; reference: verl compute_policy_loss_kl_cov).

The unclipped policy gradient ``-rho * A``, plus a penalty ``beta * |log rho|`` on the top fraction of
tokens by advantage/log-prob covariance, which holds those tokens near the sampling policy and keeps the
entropy from collapsing. fraction 2e-3 and beta 1 are the 7B settings of third-party recipes built on the
paper (verl's own defaults: 2e-4 and a 0.1 coefficient; the paper's exact values unverified). rlvr selects
over the whole rollout batch on the driver. GRPO advantage, token-level mean, no KL to a reference.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "grpo",
    "policy_loss": "kl_cov",
    "ratio_level": "token",
    "cov_fraction": 2e-3,
    "kl_cov_coef": 1.0,
    "loss_agg": "token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
