"""The embedded tiny base model: a ~1M-parameter Qwen2 causal LM for CPU tests and demos.

No model weights can be downloaded where this project is built and tested, so the project ships its
own base model (``rlvr/assets/tiny_arith/``), built deterministically by ``python -m rlvr.tiny.build``:

* :mod:`rlvr.tiny.tokenizer` -- character-level tokenizer in Qwen2's own byte-level BPE format.
* :mod:`rlvr.tiny.task` -- the 2-digit addition task, its fixed train/held-out split and the noisy
  pre-training distribution that leaves room for RL to improve.
* :mod:`rlvr.tiny.build` -- builds tokenizer, config, pre-trains, saves HF format and measures it.
* :mod:`rlvr.tiny.check_vllm` -- re-measures the saved model through vLLM.
"""
