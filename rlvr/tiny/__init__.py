"""The embedded tiny base model: a ~1M-parameter Qwen2 causal LM for CPU tests and demos.

No model weights can be downloaded where this project is built and tested, so the project ships its
own base model (``rlvr/assets/tiny_arith/``), built deterministically by ``python -m rlvr.tiny.build``:

* :mod:`rlvr.tiny.tokenizer` -- character-level tokenizer in Qwen2's own byte-level BPE format.
* :mod:`rlvr.tiny.task` -- the 2-digit addition task, its fixed train/held-out split and the noisy
  pre-training distribution that leaves room for RL to improve.
* :mod:`rlvr.tiny.build` -- builds tokenizer, config, pre-trains, saves HF format and measures it.
* :mod:`rlvr.tiny.check_vllm` -- re-measures the saved model through vLLM.

A second model (``rlvr/assets/tiny_cot/``, same tokenizer and shape) writes a working before its
answer, so its responses run from 15 to ~300 tokens:

* :mod:`rlvr.tiny.cot_task` -- ``s + a*b`` by repeated addition with a count-down, its split and noise.
* :mod:`rlvr.tiny.build_cot` -- its builder (``python -m rlvr.tiny.build_cot``), reusing ``build``'s parts.
"""
