"""Answer extraction: turn a model's free-text reply into a normalised answer string (or None)."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from teamgraph.errors import InputError

KINDS = ("multiple_choice", "number", "math")
LETTERS = "ABCDE"

# "A" followed by a lower-case word is the article, not an option letter
_NOT_ARTICLE = r"(?!(?<=A)\s+[a-z])"
_ANSWER_LETTER = re.compile(
    r"(?i:answer)(?:\s+(?i:is))?[\s*_]*:?[\s*_]*[(\[]?([A-E])(?![A-Za-z0-9])" + _NOT_ARTICLE
)
_LEADING_LETTER = re.compile(r"^[\s*_]*[(\[]?([A-E])(?![A-Za-z0-9])" + _NOT_ARTICLE)
_STANDALONE_LETTER = re.compile(r"(?<![A-Za-z0-9'])([A-E])(?![A-Za-z0-9'])" + _NOT_ARTICLE)
_NUMBER = re.compile(r"(?<![\w.])(-?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_FINAL_ANSWER_MATH = re.compile(r"(?i:answer)(?:\s+is)?:?\s*\$([^$]+)\$")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"unknown answer kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def normalize_number(text: str) -> str | None:
    """Canonical string of a number ("1,000.50" -> "1000.5", "$18." -> "18"); None if not a number."""
    s = str(text).strip().replace("$", "").replace("%", "").replace(",", "").strip()
    s = s.rstrip(".").lstrip("+")
    if not _PLAIN_NUMBER.match(s):
        return None
    try:
        value = Decimal(s)
    except InvalidOperation:  # pragma: no cover - the regex already guards this
        return None
    out = format(value.normalize(), "f")
    return "0" if out in ("-0", "0") else out


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in text, nested braces handled."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    rest = text[start:]
    rest = rest[len("\\boxed"):] if rest.startswith("\\boxed") else rest[len("\\fbox"):]
    if rest.startswith(" "):  # "\boxed 5": one bare token
        token = rest.strip().split()
        return token[0].rstrip("$.") if token else None
    if not rest.startswith("{"):
        return None
    depth = 0
    for i, ch in enumerate(rest):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return rest[1:i]
    return None


def _unwrap_command(s: str, command: str) -> str:
    """Replace ``\\command{X}`` by X (nested braces handled)."""
    key = "\\" + command + "{"
    while (start := s.find(key)) >= 0:
        depth, end = 0, -1
        for i in range(start + len(key) - 1, len(s)):
            if s[i] == "{":
                depth += 1
            elif s[i] == "}":
                depth -= 1
                if depth == 0:
                    end = i
                    break
        if end < 0:
            break
        s = s[:start] + s[start + len(key):end] + s[end + 1:]
    return s


def _fix_fracs(s: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac{3}4`` -> ``\\frac{3}{4}``."""
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{"):
            # numerator braced; brace a bare one-character denominator
            depth = 0
            for i, ch in enumerate(part):
                depth += ch == "{"
                depth -= ch == "}"
                if depth == 0:
                    num, rest = part[: i + 1], part[i + 1:]
                    break
            else:
                out += part
                continue
            if rest and rest[0].isalnum():
                rest = "{" + rest[0] + "}" + rest[1:]
            out += num + rest
        elif len(part) >= 2 and part[0].isalnum() and (part[1] == "{" or part[1].isalnum()):
            a, b, rest = part[0], part[1], part[2:]
            out += "{" + a + "}" + (b + rest if b == "{" else "{" + b + "}" + rest)
        else:
            out += part
    return out


def _fix_sqrt(s: str) -> str:
    """``\\sqrt2`` -> ``\\sqrt{2}`` (applied after spaces are removed)."""
    return re.sub(r"\\sqrt([0-9a-zA-Z])", r"\\sqrt{\1}", s)


def normalize_math(text: str) -> str:
    """Normalise a MATH answer so equivalent spellings compare equal (spaces, \\left, \\dfrac, units, ...)."""
    s = str(text).strip()
    s = s.replace("\n", "").replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", "")
    s = s.strip().strip("$").strip()
    s = s.replace("\\\\", "\\").replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\circ", "")
    s = s.replace("\\$", "").replace("\\%", "").replace("%", "")
    # a unit written as "\text{ inches}" (leading space) is dropped; other \text{X} becomes X
    for unit_cmd in ("\\text{ ", "\\mbox{ ", "\\textbf{ "):
        if unit_cmd in s and s.split(unit_cmd)[0].strip():
            s = s.split(unit_cmd)[0]
    for cmd in ("text", "textbf", "mbox", "mathrm"):
        s = _unwrap_command(s, cmd)
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    if s.count("=") == 1 and len(s.split("=")[0].strip()) <= 2:
        s = s.split("=")[1]  # "x=5" -> "5"
    s = s.replace(" ", "").rstrip(".")
    s = _fix_sqrt(s)
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    if re.fullmatch(r"-?\d+/\d+", s):
        a, b = s.split("/")
        s = f"\\frac{{{a}}}{{{b}}}" if not a.startswith("-") else f"-\\frac{{{a[1:]}}}{{{b}}}"
    if _THOUSANDS.match(s) or _PLAIN_NUMBER.match(s):
        s = normalize_number(s) or s
    return s


def _letters(n_choices: int | None) -> str:
    n = len(LETTERS) if n_choices is None else max(0, min(int(n_choices), len(LETTERS)))
    return LETTERS[:n]


def extract_choice(text: str, n_choices: int | None = None) -> str | None:
    """The option letter a reply picks: after "Answer:", else a leading or last standalone letter."""
    valid = _letters(n_choices)
    picks = [m.group(1) for m in _ANSWER_LETTER.finditer(text) if m.group(1) in valid]
    if picks:
        return picks[-1]
    lead = _LEADING_LETTER.match(text)
    if lead and lead.group(1) in valid:
        return lead.group(1)
    picks = [m.group(1) for m in _STANDALONE_LETTER.finditer(text) if m.group(1) in valid]
    return picks[-1] if picks else None


def extract_number(text: str) -> str | None:
    """The last number in text, normalised ("$1,000.00" -> "1000"); None if there is none."""
    matches = list(_NUMBER.finditer(text))
    if not matches:
        return None
    m = matches[-1]
    return normalize_number(m.group(1) + m.group(2) + (m.group(3) or ""))


def extract_math(text: str) -> str | None:
    """The last ``\\boxed{}`` content, normalised; falls back to a final "answer is $X$"."""
    boxed = last_boxed(text)
    if boxed is None:
        found = _FINAL_ANSWER_MATH.findall(text)
        boxed = found[-1] if found else None
    if boxed is None:
        return None
    out = normalize_math(boxed)
    return out or None


def extract_answer(text: str | None, kind: str, n_choices: int | None = None) -> str | None:
    """Normalised answer of a reply for an item of ``kind``; None means the agent abstains."""
    _check_kind(kind)
    if not text:
        return None
    if kind == "multiple_choice":
        return extract_choice(text, n_choices)
    if kind == "number":
        return extract_number(text)
    return extract_math(text)


def normalize_gold(answer: Any, kind: str) -> str:
    """Gold answer in the form ``extract_answer`` produces (letter, number string or normalised LaTeX)."""
    _check_kind(kind)
    s = str(answer).strip()
    if kind == "multiple_choice":
        return s.upper()
    if kind == "number":
        return normalize_number(s) or s
    return normalize_math(s)


def answer_instruction(kind: str) -> str:
    """Instruction appended to a question prompt so the reply can be parsed."""
    _check_kind(kind)
    if kind == "multiple_choice":
        return 'Answer with the letter of the correct option, as "Answer: X".'
    if kind == "number":
        return 'Think step by step, then give the final number on the last line, as "Answer: N".'
    return "Think step by step, then put the final answer in \\boxed{}."


def format_question(item: Mapping[str, Any]) -> str:
    """Question text followed by lettered choices ("A. ...") when the item has any."""
    question = str(item["question"]).strip()
    choices = item.get("choices") if hasattr(item, "get") else None
    if choices is None or len(choices) == 0:
        return question
    lines = [f"{LETTERS[i]}. {str(c).strip()}" for i, c in enumerate(choices)]
    return question + "\n" + "\n".join(lines)
