"""CISPO (MiniMax-M1, arXiv 2506.13585 §3.1; ALGORITHMS.md §15.1; reference: verl compute_policy_loss_cispo).

Instead of PPO's clip, which drops the gradient of a token whose ratio leaves the band, CISPO clips the
importance weight itself and stops its gradient: every token keeps a REINFORCE gradient
``-sg[clip(rho, 1 - eps_low, 1 + eps_high)] * A * grad log pi``. The paper sets no lower bound (a large
eps_low) and tunes only eps_high; the values here are verl's example (eps_low 10, eps_high 0.2; the
paper's eps_high is not stated). GRPO advantage, token-level mean (the paper's 1 / sum_i |o_i|), no KL.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "grpo",
    "policy_loss": "cispo",
    "ratio_level": "token",
    "clip_low": 10.0,
    "clip_high": 0.2,
    "loss_agg": "token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
