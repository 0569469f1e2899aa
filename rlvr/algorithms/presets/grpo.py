"""GRPO (Shao et al., DeepSeekMath, arXiv 2402.03300; ALGORITHMS.md §6).

Group-normalised advantage ``(R - mu_q) / (sigma_q + eps)`` (unbiased std, as verl/OpenRLHF), token
ratio with symmetric clip 0.2, k3 KL in the loss with beta = 0.04 and the paper's per-sequence mean
(``seq-mean-token-mean``). Most zero-RL recipes (SimpleRL-Zoo) switch to ``token-mean`` and a much
smaller KL; set those fields in the recipe.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "grpo",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "seq-mean-token-mean",
    "kl_placement": "loss",
    "kl_estimator": "k3",
    "kl_coef": 0.04,
}
