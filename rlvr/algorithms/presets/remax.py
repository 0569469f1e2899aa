"""ReMax (Li et al., arXiv 2310.10505; ALGORITHMS.md §15.8; reference: verl compute_remax_outcome_advantage
and its ray trainer's greedy baseline).

REINFORCE with the greedy response as baseline: with each step's rollouts the engines also decode one
greedy response per prompt (temperature 0), the verifiers score it, and every sampled response's
advantage is its return-to-go minus that greedy reward (no group statistics, no std). The token rewards
carry a k1 KL penalty to the reference (beta 0.001, verl's example). Token-level mean.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "remax",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "token-mean",
    "kl_placement": "reward",
    "kl_estimator": "k1",
    "kl_coef": 0.001,
}
