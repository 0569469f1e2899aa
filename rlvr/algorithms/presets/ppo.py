"""PPO with a value critic and GAE (Schulman et al. 2017, arXiv 1707.06347; GAE arXiv 1506.02438;
the RLHF form of Ziegler et al. 2019 / InstructGPT; ALGORITHMS.md §7.4, Tulu 3 RLVR §9).

Token rewards: the verifier's outcome at the last response token minus beta * k1 KL to the frozen
reference (beta 0.05 as Tulu 3 8B); GAE with gamma 1, lambda 0.95 from a separately trained value
model (clipped value loss, eps_v 0.2); advantages whitened over the batch's tokens; PPO-clip 0.2,
token-mean. No groups are needed (``rollout.n`` may be 1).
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "gae",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "token-mean",
    "kl_placement": "reward",
    "kl_estimator": "k1",
    "kl_coef": 0.05,
    "gamma": 1.0,
    "lam": 0.95,
    "value_clip": 0.2,
}
