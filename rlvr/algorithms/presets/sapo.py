"""SAPO, Soft Adaptive Policy Optimization (Gao et al., Qwen, arXiv 2511.20347; ALGORITHMS.md §15.2;
reference: verl compute_policy_loss_sapo).

A smooth gate replaces the hard clip: ``-(4 / tau) * sigmoid(tau * (rho - 1)) * A`` per token, whose gradient
weight is 1 at rho = 1 and decays smoothly away from it, faster for negative advantages (tau_neg 1.05 vs
tau_pos 1.0, the paper's values). GRPO advantage, per-sequence mean (verl forces ``seq-mean-token-mean``
for SAPO), no KL.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "grpo",
    "policy_loss": "sapo",
    "ratio_level": "token",
    "sapo_tau_pos": 1.0,
    "sapo_tau_neg": 1.05,
    "loss_agg": "seq-mean-token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
