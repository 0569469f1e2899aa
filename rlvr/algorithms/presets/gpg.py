"""GPG, Group Policy Gradient (Chu et al., arXiv 2504.02546; ALGORITHMS.md §15.4; reference:
AMAP-ML/GPG, verl compute_gpg_outcome_advantage / compute_policy_loss_gpg).

Plain policy gradient ``-A * log pi`` per token: no ratio, no clip, no KL, no reference model. The
advantage is the group-centred reward rescaled by alpha = B / (B - M) (M samples in groups without reward
variance), which corrects the gradient's shrinkage when such groups contribute nothing (the paper's form;
verl divides by the number of samples with a nonzero reward instead). Token-level mean. On-policy only:
one mini-batch, one epoch.
"""

PRESET = {
    "loss": "policy_gradient",
    "advantage": "gpg",
    "policy_loss": "gpg",
    "ratio_level": "token",
    "loss_agg": "token-mean",
    "kl_placement": "none",
    "kl_coef": 0.0,
}
