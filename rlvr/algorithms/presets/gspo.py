"""GSPO (Zheng et al., Qwen, arXiv 2507.18071; ALGORITHMS.md §5; reference: verl compute_policy_loss_gspo).

Length-normalised sequence ratio ``s_i = exp(mean_t log rho_t)`` with tiny clip ranges (3e-4 / 4e-4),
GRPO advantage, per-sequence mean. ``ratio_level: sequence_token`` gives GSPO-token (per-token
advantages allowed; identical to GSPO when advantages are per sequence). No KL. The sequence log-ratio
is clamped at ±10 before exp (verl clamps it at 10 from above only).
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "grpo",
    "ratio_level": "sequence",
    "clip_low": 3e-4,
    "clip_high": 4e-4,
    "loss_agg": "seq-mean-token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
    "log_ratio_clamp": 10.0,
}
