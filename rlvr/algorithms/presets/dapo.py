"""DAPO (Yu et al., arXiv 2503.14476; ALGORITHMS.md §3; reference: verl recipe/dapo).

GRPO advantage; clip-higher (eps_low 0.2, eps_high 0.28) with verl's dual-clip (c = 10 in the DAPO
script) for negative advantages; token-level loss (``token-mean`` over the mini-batch); dynamic
sampling (drop groups whose rewards are all equal and keep generating until the batch is full, at
most ``max_generation_batches`` generation rounds); soft overlong punishment over the last 20% of the
generation budget (4096 of 20480 in the paper). No KL, no entropy bonus.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "grpo",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.28,
    "dual_clip": 10.0,
    "loss_agg": "token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
    "dynamic_sampling": True,
    "overlong_buffer_ratio": 0.2,
}
