"""DPPO with a total-variation trust region (Qi et al., arXiv 2602.04879; ALGORITHMS.md §15.5; reference:
verl compute_policy_loss_dppo_tv and examples/dppo_trainer).

PPO's ratio band is replaced by a mask on the probability change of each sampled token: a token whose
probability has already moved by more than delta in the advantage's direction (p - p_old > delta_high
for A > 0, < -delta_low for A < 0) stops contributing; the others get ``-A * sg[rho] * grad log pi``.
``clip_low`` / ``clip_high`` are the TV bounds delta (0.15, verl's example). Dr. GRPO's advantage
(no std) and constant-normalised sequence sums, as the example; no KL; the IS weight is uncapped
(``ratio_cap``; the example's clip_ratio_c 10000 is no cap).
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "drgrpo",
    "policy_loss": "dppo_tv",
    "ratio_level": "token",
    "clip_low": 0.15,
    "clip_high": 0.15,
    "loss_agg": "seq-mean-token-sum-norm",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
