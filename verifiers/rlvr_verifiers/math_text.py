"""Rewrite an extracted math answer into the LaTeX that ``math_verify`` reads, without changing its value.

Models write answers in Unicode ("½", "√2", "x²", "１２", "−5", "∞"), in plain-text notations ("3.1e8",
"40 percent", "1\\,000", "0.\\overline{3}") and with currency or unit decoration ("\\$4.25",
"30°"). math_verify reads none of these, so a right answer would score as wrong and the policy
would be pushed toward one house style. Every rewrite here maps a notation to its exact LaTeX
equivalent and nothing else: no rewrite may turn a wrong answer into a right one.

Used on both sides, the ground truth too (datasets write "\\$4.25" and "½" as well).
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

__all__ = ["choice_letter", "choice_value", "normalize"]

_SUPER = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ", "0123456789+-=()ni", strict=True))
_SUB = dict(zip("₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎", "0123456789+-=()", strict=True))
_VULGAR = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5),
           "⅗": (3, 5), "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅐": (1, 7), "⅛": (1, 8), "⅜": (3, 8),
           "⅝": (5, 8), "⅞": (7, 8), "⅑": (1, 9), "⅒": (1, 10)}
_SYMBOLS = {"∞": r"\infty ", "π": r"\pi ", "−": "-", "–": "-", "×": r"\times ", "·": r"\cdot ", "⋅": r"\cdot ",
            "÷": r"\div ", "≤": r"\le ", "≥": r"\ge ", "≠": r"\ne ", "±": r"\pm ", "∅": r"\emptyset ",
            "°": r"^\circ ", "∪": r"\cup ", "∩": r"\cap ", "√": r"\sqrt"}

_SUPER_RUN = re.compile("[" + "".join(_SUPER) + "]+")
_SUB_RUN = re.compile("[" + "".join(_SUB) + "]+")
# (each pattern that starts with a digit run starts only where the run does: linear on a long number)
_MIXED_VULGAR = re.compile(r"(?<!\d)(\d*)\s*([" + "".join(_VULGAR) + "])")
# √ takes a number, a letter, or a bracketed group: √2, √x, √(x+1), √{12}
_SQRT_ARG = re.compile(r"\\sqrt\s*(\d+(?:\.\d+)?|[A-Za-z]|\([^()]*\)|\{[^{}]*\})")
_REPEATING = re.compile(r"(?<!\d)(-?)(\d*)\.(\d*)\\overline\s*\{(\d+)\}")
_SCIENTIFIC = re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")
_PERCENT_WORD = re.compile(r"(\d)\s*(?:percent|per\s*cent|pct)\b", re.IGNORECASE)
_BARE_PERCENT = re.compile(r"(?<!\\)%")
_DEGREES_WORD = re.compile(r"(\d)\s*(?:degrees?|deg)\b", re.IGNORECASE)
# 1\,000 / 1\;000 / 1\ 000 (thin spaces as thousands separators): joined only between digit groups
_THIN_THOUSANDS = re.compile(r"(\d)\\[,;:! ]\s*(?=\d{3}(?!\d))")
_CURRENCY = re.compile(r"\\\$|\\(?:text)?(?:dollar|textdollar)\b|[€£¥]|\bUSD\b|\bdollars?\b")
_IMAGINARY = re.compile(r"\\(?:mathrm|text|rm|mathit)\s*\{\s*i\s*\}")  # \mathrm{i}: math_verify drops it as a unit
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
# "9 marbles", "18 square units": a number and then only words, none of them math ("10 pi", "3 or 4")
_NUMBER_THEN_WORDS = re.compile(r"^(-?\d[\d,]*(?:\.\d+)?)\s+([A-Za-z]{2,}(?:\s+[A-Za-z]{2,}){0,3})$")
_MATH_WORDS = {"pi", "or", "and", "to", "plus", "minus", "times", "over", "divided", "by", "sqrt", "root", "squared",
               "cubed", "mod", "inf", "infinity"}
_LETTER_WRAP = re.compile(r"\\(?:text(?:bf|rm|it)?|mathrm|mathbf)\s*\{\s*(\(?[A-E]\)?)\s*\}")
_CHOICE = re.compile(r"^(?:\(([A-E])\)|([A-E])(?:[.:)]|(?=\s)|$))")
_CHOICE_VALUE = re.compile(r"^\(?[A-E]\)[\s.:]*(\S.*)$", re.DOTALL)


def normalize(text: str) -> str:
    """``text`` with the notations of the module docstring rewritten into LaTeX math_verify parses."""
    text = _SUPER_RUN.sub(lambda m: "^{" + "".join(_SUPER[c] for c in m.group()) + "}", text)
    text = _SUB_RUN.sub(lambda m: "_{" + "".join(_SUB[c] for c in m.group()) + "}", text)
    text = _MIXED_VULGAR.sub(_vulgar, text)
    for symbol, latex in _SYMBOLS.items():
        if symbol in text:
            text = text.replace(symbol, latex)
    text = unicodedata.normalize("NFKC", text)  # full-width digits and letters, compatibility forms
    text = _SQRT_ARG.sub(lambda m: r"\sqrt{" + _unwrap(m.group(1)) + "}", text)
    text = _CURRENCY.sub("", text)
    text = _IMAGINARY.sub("i", text)
    text = text.replace(r"\varnothing", r"\emptyset").replace(r"\degree", r"^\circ")
    text = _REPEATING.sub(_repeating, text)
    text = _SCIENTIFIC.sub(r"\1\\times 10^{\2}", text)
    text = _PERCENT_WORD.sub(r"\1\\%", text)
    text = _BARE_PERCENT.sub(r"\\%", text)
    text = _DEGREES_WORD.sub(r"\1^\\circ", text)
    text = _THIN_THOUSANDS.sub(r"\1", text)
    if len(_UNESCAPED_DOLLAR.findall(text)) == 1:  # one "$" is a price ("$1,200"), a pair delimits math
        text = _UNESCAPED_DOLLAR.sub("", text)
    text = text.strip().rstrip(".;,").strip()
    words = _NUMBER_THEN_WORDS.match(text)
    if words and not _MATH_WORDS & set(words.group(2).lower().split()):
        text = words.group(1)
    return text


def choice_letter(text: str) -> str | None:
    """The option letter ``text`` opens with: "(B) 7", "B) 7", "B.", "\\textbf{(D)}", "C"; else None."""
    match = _CHOICE.match(_LETTER_WRAP.sub(r"\1", text.strip()))
    return (match.group(1) or match.group(2)) if match else None


def choice_value(text: str) -> str | None:
    """What follows a closed option label, "(B) 7" or "\\textbf{(B)} 7" -> "7"; None without one."""
    match = _CHOICE_VALUE.match(_LETTER_WRAP.sub(r"\1", text.strip()))
    return match.group(1).strip() if match else None


def _vulgar(match: re.Match[str]) -> str:
    num, den = _VULGAR[match.group(2)]
    value = Fraction(int(match.group(1) or 0)) + Fraction(num, den)
    return rf"\frac{{{value.numerator}}}{{{value.denominator}}}"


def _unwrap(arg: str) -> str:
    return arg[1:-1] if arg[:1] in "({" else arg


def _repeating(match: re.Match[str]) -> str:
    """0.1\\overline{6} = 1/6: the exact fraction of a repeating decimal."""
    sign, whole, fixed, period = match.groups()
    value = Fraction(int(whole or 0)) + (Fraction(int(fixed), 10 ** len(fixed)) if fixed else 0)
    value += Fraction(int(period), (10 ** len(period) - 1) * 10 ** len(fixed))
    return rf"{sign}\frac{{{value.numerator}}}{{{value.denominator}}}"  # the sign stays outside: "x-0.\overline{3}"
