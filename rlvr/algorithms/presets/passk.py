"""Pass@k training (Chen et al., "Pass@k Training for Adaptively Balancing Exploration and Exploitation",
arXiv 2508.10751; ALGORITHMS.md §15.7; reference: RUCAIBox/Passk_Training code/passk_adv.py).

The analytic advantage of the group's pass@k reward: with N responses of which N_neg are wrong, the
group's expected pass@k is 1 - C(N_neg, k) / C(N, k); correct responses get (1 - R) / sigma, wrong ones
less the chance that their k-subsets fail anyway. This rewards a group for covering the answer in some
response, not every response for being right, which keeps exploration alive. k = 4 here (the paper
sweeps k; set ``pass_k``; k = 1 is GRPO with a population std). PPO-clip 0.2, token-level mean, no KL.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "passk",
    "pass_k": 4,
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
