"""rlvr: post-training LLMs with reinforcement learning from verifiable rewards.

vLLM rollout workers and DeepSpeed learners as Ray actors, verifiers as plugins, loss modules built
from parts. The driver loop is `rlvr.trainer.train`.
"""

__version__ = "0.1.0"
