"""Prompt data and templates."""

from rlvr.data.dataset import PromptRow, PromptSampler, build_rows
from rlvr.data.templates import TEMPLATES, apply_template

__all__ = ["TEMPLATES", "PromptRow", "PromptSampler", "apply_template", "build_rows"]
