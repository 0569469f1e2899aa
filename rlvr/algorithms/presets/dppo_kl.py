"""DPPO with a binary-KL trust region (Qi et al., arXiv 2602.04879; ALGORITHMS.md §15.5; reference: verl
compute_policy_loss_dppo_kl and examples/dppo_trainer).

As ``dppo_tv``, but a token is masked when the KL between the Bernoulli distributions (p_old, 1 - p_old)
and (p, 1 - p) of its probability exceeds delta and the move goes in the advantage's direction.
``clip_low`` / ``clip_high`` are the KL bounds delta (0.05, verl's example). Dr. GRPO's advantage and
constant-normalised sequence sums, no KL to a reference, uncapped IS weight.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "drgrpo",
    "policy_loss": "dppo_kl",
    "ratio_level": "token",
    "clip_low": 0.05,
    "clip_high": 0.05,
    "loss_agg": "seq-mean-token-sum-norm",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
