"""Character-level tokenizer for the tiny model, saved in Qwen2's own byte-level BPE format.

Why this format: transformers 5.x loads any ``model_type: qwen2`` checkpoint's tokenizer as
``Qwen2Tokenizer``, which *rebuilds* the pipeline (NFC normaliser, Qwen2 split regex, byte-level
pre-tokenizer and decoder) from the vocabulary and merges alone. A ``tokenizers`` WordLevel vocabulary
therefore loads wrongly (spaces and newlines silently vanish). Building the tokenizer as a Qwen2 BPE
with **no merge rules** gives one token per byte-level symbol, and the very same pipeline is produced
by ``AutoTokenizer``, the raw ``tokenizers`` library and vLLM.

Vocabulary layout (stable, documented so tests and recipes may rely on it):

* ids ``0..255``: the GPT-2/Qwen2 byte-level symbol of byte value ``id`` (so any UTF-8 text
  tokenizes, one token per byte; ASCII text is one token per character);
* ``256``: ``<|endoftext|>`` (EOS and pad, as in Qwen2);
* ``257``: ``<|im_start|>``; ``258``: ``<|im_end|>``.

The model's embedding table is larger (:data:`MODEL_VOCAB_SIZE`); the unused rows are never produced
by the tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import AddedToken
from transformers import PreTrainedTokenizerBase

EOS_TOKEN = "<|endoftext|>"
IM_START_TOKEN = "<|im_start|>"
IM_END_TOKEN = "<|im_end|>"
SPECIAL_TOKENS: tuple[str, ...] = (EOS_TOKEN, IM_START_TOKEN, IM_END_TOKEN)

NUM_BYTE_TOKENS = 256
EOS_TOKEN_ID = NUM_BYTE_TOKENS  # 256
PAD_TOKEN_ID = EOS_TOKEN_ID  # Qwen2 convention: pad is <|endoftext|>
IM_START_TOKEN_ID = NUM_BYTE_TOKENS + 1  # 257
IM_END_TOKEN_ID = NUM_BYTE_TOKENS + 2  # 258
TOKENIZER_VOCAB_SIZE = NUM_BYTE_TOKENS + len(SPECIAL_TOKENS)  # 259
#: Embedding rows of the model: the tokenizer's 259 rounded up to a multiple of 64.
MODEL_VOCAB_SIZE = 320

#: Qwen-style chat template; ``add_generation_prompt`` opens an assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode symbol map (the one Qwen2's ByteLevel uses)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    codepoints = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codepoints.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, codepoints)}


def byte_level_vocab() -> dict[str, int]:
    """The 256 byte-level symbols, symbol of byte ``b`` -> id ``b``."""
    mapping = bytes_to_unicode()
    return {mapping[b]: b for b in range(NUM_BYTE_TOKENS)}


def build_tokenizer() -> PreTrainedTokenizerBase:
    """Build the tokenizer in memory (a ``Qwen2Tokenizer`` with no merges and three special tokens)."""
    from transformers import Qwen2Tokenizer

    tok = Qwen2Tokenizer(
        vocab=byte_level_vocab(),
        merges=[],
        unk_token=None,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        bos_token=None,
        add_prefix_space=False,
        model_max_length=256,
    )
    tok.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS[1:]]}
    )
    tok.chat_template = CHAT_TEMPLATE
    ids = tok.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    expected = [EOS_TOKEN_ID, IM_START_TOKEN_ID, IM_END_TOKEN_ID]
    if ids != expected:  # the documented layout is a contract; fail the build rather than drift
        raise RuntimeError(f"special token ids {ids} != {expected}")
    if len(tok) != TOKENIZER_VOCAB_SIZE:
        raise RuntimeError(f"tokenizer has {len(tok)} tokens, expected {TOKENIZER_VOCAB_SIZE}")
    return tok


def save_tokenizer(out_dir: str | Path) -> PreTrainedTokenizerBase:
    """Build the tokenizer and write it (``tokenizer.json``, ``tokenizer_config.json``, ...) to ``out_dir``."""
    tok = build_tokenizer()
    tok.save_pretrained(str(out_dir))
    return tok
