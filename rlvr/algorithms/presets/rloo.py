"""RLOO (Ahmadian et al., "Back to Basics", arXiv 2402.14740; ALGORITHMS.md §7.3).

Leave-one-out advantage ``R_i - mean_{j != i} R_j``. This preset is the framework version (verl,
OpenRLHF): the advantage inside a token-level PPO-clip loss (0.2), token-mean, no KL. The paper's
version (whole response as one action, no clipping, token-sum per sequence) is
``ratio_level: sequence`` with a very large clip and ``loss_agg: seq-mean-token-sum``.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "rloo",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
