"""Answer extraction: turn a model's free-text reply into a normalised answer string (or None).

Grading is exact: a reply's answer and the gold answer are both brought to one canonical string per
value, so comparing strings (and a vote that groups equal strings) compares values.

* Where a reply states its answer ("Answer: X", "the answer is X", "final answer: X", "####"), the
  last such statement wins over anything before or after it; a statement that names two different
  option letters ("Answer: C and D") abstains.
* Numbers: signs (also U+2212), thousands separators, decimals, fractions ("3/4" is 0.75),
  scientific notation, percentages ("50%" is 50); one canonical string per value ("5.0" and "5" are
  "5", "0.750" is "0.75", a fraction without a finite decimal stays a fraction: "1/3").
* MATH answers: the LaTeX is parsed into a SymPy expression by ``latex2sympy2_extended`` (the parser
  of HuggingFace's math-verify), evaluated and printed back, so ``0.5``, ``\\tfrac12`` and ``1/2`` all
  read ``\\frac{1}{2}``; what does not parse (words, junk) keeps a whitespace-normalised string.
"""
from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Mapping

from teamgraph.errors import InputError

__all__ = ["KINDS", "LETTERS", "normalize_number", "extract_number", "extract_choice", "last_boxed",
           "normalize_math", "extract_math", "extract_answer", "normalize_gold", "answer_instruction",
           "format_question"]

KINDS = ("multiple_choice", "number", "math")
LETTERS = "ABCDE"

# --- where a reply states its answer -------------------------------------------------------------

_MARKER = re.compile(
    r"\banswer\b(?:\s+(?:to|for|of)\b[^.:\n]{0,60}?)?"  # "answer:", "final answer is", "answer to (b) is"
    r"[\s*_]*(?::|=|\bis\b|\b(?:would|should|must|will)\s+be\b)"
    r"|\b(?:correct|right|best)\s+(?:option|choice|letter)\s*(?::|\bis\b)"
    r"|####",
    re.IGNORECASE,
)
_MARKER_TAIL = re.compile(r"[\s*_:]*")
# a statement ends at a line break, at a sentence end, or where its reasons start
_SPAN_END = re.compile(
    r"\n|(?<=[.!?;])\s|\s(?=(?:because|since|as|which|while|whereas|but|so|explanation|reason)\b)", re.IGNORECASE
)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]{0,20}>")


_STATEMENT_CHARS = 300  # a statement is short; the window also keeps long junk replies linear
_STATEMENTS_READ = 20    # the last statements of a reply are read, at most this many


def _statement_starts(text: str) -> list[int]:
    """Where the answer of each of the last answer markers in text starts, last first."""
    ends = [m.end() for m in _MARKER.finditer(text)][-_STATEMENTS_READ:]
    return [_MARKER_TAIL.match(text, end).end() for end in reversed(ends)]


def _statement_at(text: str, start: int) -> str:
    """What a marker states: from ``start`` up to the end of its statement (within a window)."""
    stop = min(len(text), start + _STATEMENT_CHARS)
    end = _SPAN_END.search(text, start, stop)
    return text[start:end.start() if end else stop]


def _statements(text: str) -> list[str]:
    """What follows each of the last answer markers in text, last first."""
    return [_statement_at(text, start) for start in _statement_starts(text)]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"unknown answer kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def _squash(text: str) -> str:
    """Whitespace-normalised string: no spaces, except one between a LaTeX command and a letter."""
    s = re.sub(r"(\\[A-Za-z]+)\s+(?=[A-Za-z])", "\\1\x00", str(text))
    return re.sub(r"\s+", "", s).replace("\x00", " ")


# --- numbers -------------------------------------------------------------------------------------

_NUMBER_BODY = (
    r"(?P<sign>[-−]?)\$?"
    r"(?:(?P<whole>\d+)\s+(?P<mnum>\d+)/(?P<mden>\d+)(?![\d/.])"          # mixed number 2 1/2
    r"|(?P<num>\d+)/(?P<den>\d+)(?![\d/]|\.\d)"                             # fraction 3/4
    r"|(?=\.?\d)(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)?(?P<dec>\.\d+)?"    # 1,234.5 / 12 / .5
    r"(?:[eE](?P<exp>[-+−]?\d+)(?![A-Za-z])"                                  # 1.5e3
    r"|\s*(?:×|\\times|\\cdot|\*)\s*10\s*\^\s*\{?(?P<exp2>[-+−]?\d+)\}?)?)"  # 1.5 × 10^3
)
_NUMBER = re.compile(r"(?<![\w.,/^])" + _NUMBER_BODY + r"(?!\d)")
_WHOLE_NUMBER = re.compile(r"\+?" + _NUMBER_BODY)
_MAX_EXPONENT = 400  # a larger power of ten would be a huge exact integer: not an answer
_MAX_NUMBER_DIGITS = 400  # nor is a longer run of digits (Python refuses to print ints over 4300 digits)


def _number_value(m: re.Match) -> Fraction | None:
    """Exact value of a number match; None for a match with no digits or an absurd exponent."""
    g = m.groupdict()
    if sum(c.isdigit() for c in m.group()) > _MAX_NUMBER_DIGITS:
        return None
    if g["whole"] is not None:
        num, den = int(g["mnum"]), int(g["mden"])
        if den == 0 or num >= den:
            return None
        value = int(g["whole"]) + Fraction(num, den)
    elif g["num"] is not None:
        if int(g["den"]) == 0:
            return None
        value = Fraction(int(g["num"]), int(g["den"]))
    else:
        if g["int"] is None and g["dec"] is None:
            return None
        digits = (g["int"] or "0").replace(",", "") + (g["dec"] or "")
        exp = g["exp"] if g["exp"] is not None else g["exp2"]
        exponent = int(exp.replace("−", "-")) if exp is not None else 0
        if abs(exponent) > _MAX_EXPONENT:
            return None
        try:
            value = Fraction(Decimal(digits)) * Fraction(10) ** exponent
        except InvalidOperation:  # pragma: no cover - the pattern admits only digits
            return None
    return -value if g["sign"] else value


def _canonical_number(value: Fraction) -> str:
    """One string per value: an integer, a finite decimal, or else "p/q"."""
    p, q = value.numerator, value.denominator
    if q == 1:
        return str(p)
    rest, twos, fives = q, 0, 0
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:
        return f"{p}/{q}"
    k = max(twos, fives)
    digits = str(abs(p) * 10**k // q).rjust(k + 1, "0")
    return ("-" if p < 0 else "") + digits[:-k] + "." + digits[-k:]


def _prepare_numbers(text: str) -> str:
    """LaTeX and markup that hide numbers: ``\\frac{3}{4}`` -> 3/4, ``1{,}000`` -> 1,000, tags, ``\\$``."""
    s = _HTML_TAG.sub(" ", text)
    s = s.replace("{,}", ",").replace("\\!", "").replace("\\$", "$").replace("\\%", "%")
    s = re.sub(r"(?<=\d)\\,(?=\d{3})", "", s)
    return re.sub(r"\\[dt]?frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}", r"\1/\2", s)


def normalize_number(text: Any) -> str | None:
    """Canonical string of a number ("1,000.50" -> "1000.5", "3/4" -> "0.75", "−3" -> "-3"); None if not one."""
    s = _prepare_numbers(str(text)).strip()
    s = s.replace("$", "").strip().rstrip(".").rstrip("%").strip()
    m = _WHOLE_NUMBER.fullmatch(s)
    if not m:
        return None
    value = _number_value(m)
    return None if value is None else _canonical_number(value)


def _first_number(text: str, last: bool = False) -> str | None:
    """Canonical string of the first (or last) number in text; None if it has none."""
    matches = _NUMBER.finditer(text)
    for m in reversed(list(matches)) if last else matches:
        value = _number_value(m)
        if value is not None:
            return _canonical_number(value)
    return None


def _stated_number(span: str) -> str | None:
    """The number a statement gives: after its last "=" if it has one ("2 + 3 = 5"), else its first."""
    return _first_number(span.rsplit("=", 1)[-1])


def extract_number(text: str) -> str | None:
    """The number a reply gives: a stated answer's, else the last ``\\boxed{}``'s, else the last number."""
    s = _prepare_numbers(text)
    for span in _statements(s):
        if (found := _stated_number(span)) is not None:
            return found
    boxed = last_boxed(s)
    if boxed is not None and (found := _stated_number(boxed)) is not None:
        return found
    return _first_number(s, last=True)


# --- option letters ------------------------------------------------------------------------------

# an upper-case letter standing alone ("A", "(B)", "C."), not "E. coli" nor a word or a name part
_UPPER = re.compile(r"(?<![A-Za-z0-9'’°\-])([A-E])(?![A-Za-z0-9'’\-])(?!\.\s?coli)")
# "a" / "(b)" / "option c": lower-case letters count only where they cannot be a word
_LOWER_MARKED = re.compile(r"\(([a-e])\)|(?i:\b(?:option|choice))\s*\(?([a-e])(?![A-Za-z0-9])")
_LOWER_FIRST = re.compile(r"[\s*_\[(]*([a-e])(?=\s*$|[.):,;]|\s*\))")
# "A patient", "A 45-year-old": the article, unless the word after it says the letter is meant
_ARTICLE_NEXT = re.compile(r"\s+([a-z]+|\d)")
_LETTER_VERBS = frozenset(
    "is was seems appears looks fits matches would should must because since as and or here best correct right".split()
)
# letters that name things ("vitamin D", "hepatitis B", "type A"), not options
_NAMED = re.compile(
    r"(?i:vitamin|hepatitis|type|group|class|grade|stage|phase|factor|protein|complex|cluster|influenza|"
    r"plan|part|section|site|zone|ring|chain|schedule|point|blood|serotype|strain|lead)\s+$"
)
_NEGATED = re.compile(r"(?i:\bnot\s+(?:option\s+|choice\s+)?)\(?[A-Ea-e]\)?(?![A-Za-z0-9])")
_ASSERTED = re.compile(
    r"(?:(?i:\b(?:option|choice))\s*)?\(?(?<![A-Za-z0-9'])([A-Ea-e])\)?(?![A-Za-z0-9'])\s*"
    r"(?i:(?:is|seems|appears|looks)\s+(?:to\s+be\s+)?(?:the\s+)?(?:most\s+)?"
    r"(?:correct|right|best|true|accurate|appropriate|likely|answer)\b)"
    r"|(?i:\b(?:I\s+(?:would\s+|will\s+|'d\s+)?(?:choose|pick|select|go\s+with)|it\s+(?:must|should|would)\s+be"
    r"|my\s+choice\s+is))\s+(?i:(?:option|choice)\s+)?\(?([A-E])(?![A-Za-z0-9'])"
)
_BOTH_ASSERTED = re.compile(
    r"(?<![A-Za-z0-9'])\(?([A-E])\)?\s*(?:,|&|(?i:and|or))\s*(?i:(?:option|choice)\s+)?\(?([A-E])\)?"
    r"(?![A-Za-z0-9'])\s+(?i:(?:are|were)\s+(?:both\s+)?(?:correct|right|true|the\s+answers?))"
)
_LEADING = re.compile(r"[\s*_#>\"'\[(]*(?:([A-E])(?![A-Za-z0-9'’])(?!\.\s?coli)|([a-e])(?=[.):]|\s*$))")


def _named(text: str, pos: int) -> bool:
    """Whether the letter at ``pos`` follows a word that makes it a name ("vitamin D")."""
    return bool(_NAMED.search(text, max(0, pos - 20), pos))


def _letters(n_choices: int | None) -> str:
    n = len(LETTERS) if n_choices is None else max(0, min(int(n_choices), len(LETTERS)))
    return LETTERS[:n]


def _is_article(text: str, m: re.Match) -> bool:
    """Whether the "A" matched at m is the article ("A patient ...") rather than an option letter."""
    if m.group(1) != "A":
        return False
    nxt = _ARTICLE_NEXT.match(text, m.end())
    return bool(nxt) and nxt.group(1) not in _LETTER_VERBS


def _upper_letters(text: str, valid: str) -> list[tuple[int, str]]:
    out = []
    for m in _UPPER.finditer(text):
        if m.group(1) not in valid or _is_article(text, m) or _named(text, m.start()):
            continue
        out.append((m.start(), m.group(1)))
    return out


def _lower_letters(text: str, valid: str) -> list[tuple[int, str]]:
    out = []
    for m in _LOWER_MARKED.finditer(text):
        letter = (m.group(1) or m.group(2)).upper()
        if letter in valid:
            out.append((m.start(), letter))
    return out


def _statement_letters(span: str, valid: str) -> set[str]:
    """The option letters a statement names ("C" -> {C}; "b" -> {B}; "C and D" -> {C, D}; "not B" -> {})."""
    span = _NEGATED.sub(" ", span)
    found = {letter for _, letter in _upper_letters(span, valid)}
    found |= {letter for _, letter in _lower_letters(span, valid)}
    first = _LOWER_FIRST.match(span)
    if first and first.group(1).upper() in valid:
        found.add(first.group(1).upper())
    return found


def extract_choice(text: str, n_choices: int | None = None) -> str | None:
    """The option letter a reply picks, or None.

    In order: the last answer statement that names a letter ("Answer: b", "The correct answer is (C).";
    naming two, "Answer: C and D", abstains); a letter asserted as right ("Option A is the right one",
    "it must be C"); a leading letter ("B. Because ..."); the last letter mentioned. Letters beyond
    ``n_choices`` are not answers; "A" before a word ("A patient ...") is the article.
    """
    valid = _letters(n_choices)
    text = _HTML_TAG.sub(" ", text)
    for span in _statements(text):
        named = _statement_letters(span, valid)
        if len(named) > 1:
            return None
        if named:
            return named.pop()
    if any(m.group(1) in valid and m.group(2) in valid and m.group(1) != m.group(2)
           for m in _BOTH_ASSERTED.finditer(text)):
        return None
    asserted = []
    for m in _ASSERTED.finditer(text):
        letter = m.group(1) or m.group(2)
        # a bare lower-case letter is a word ("a is ..." is rare; "(a) is" and "option a is" are not)
        if letter.islower() and not re.match(r"(?i:option|choice)|\(", m.group(0)):
            continue
        if letter.upper() in valid and not _named(text, m.start()):
            asserted.append(letter.upper())
    if asserted:
        return asserted[-1]
    lead = _LEADING.match(text)
    if lead:
        letter = lead.group(1) or (lead.group(2) or "").upper()
        article = lead.group(1) == "A" and _is_article(text, lead)
        if letter in valid and not article:
            return letter
    mentions = _upper_letters(text, valid) + _lower_letters(text, valid)
    return max(mentions)[1] if mentions else None


# --- MATH answers --------------------------------------------------------------------------------

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


def _clean_math(text: str) -> str:
    """String clean-up of a MATH answer: spacing commands, ``\\left``, ``\\dfrac``, degrees, units, ``x =``."""
    s = str(text).strip()
    s = re.sub(r"(?<!\\)\\[!,;]", "", s.replace("\n", " "))  # LaTeX spacing (not a "\\\\" row end)
    s = re.sub(r"(?<!\\)\\ ", " ", s)
    s = s.replace("\\displaystyle", "")
    s = s.strip().strip("$").strip()
    if "\\begin{" not in s:  # a doubled backslash is an escaped one, except where it ends a matrix row
        s = s.replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("−", "-")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\circ", "").replace("°", "")
    s = s.replace("\\$", "").replace("\\%", "").replace("%", "").replace("{,}", ",")
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
    s = re.sub(r"^\s*[A-Za-z]\s*\\in\s*", "", s)  # "x \in [1, 3)" -> "[1, 3)"
    s = _squash(s).rstrip(".")
    return _fix_fracs(_fix_sqrt(s))


_FRAC_NUMBER = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}")


def _exact_number(s: str) -> Fraction | None:
    """Value of a cleaned MATH answer that is a plain number, a/b or \\frac{a}{b}; None otherwise."""
    m = _FRAC_NUMBER.fullmatch(s)
    if m and len(s) <= _MAX_NUMBER_DIGITS:
        num, den = int(m.group(2)), int(m.group(3))
        if den == 0:
            return None
        value = Fraction(num, den)
        return -value if m.group(1) else value
    m = _WHOLE_NUMBER.fullmatch(s)
    if not m or (m.group("whole") is not None):
        return None
    return _number_value(m)


def _rational_latex(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


_WORDS = re.compile(r"[A-Za-z]{2,}(?:\s[A-Za-z]+)*")
# latex2sympy evaluates \binom while parsing: a huge one would run for ever
_BIG_BINOMIAL = re.compile(r"\\binom\s*\{?\s*\d{4,}")
_MAX_SYMPY_CHARS = 300
_MAX_DIGITS = 1000  # an unevaluated answer whose value may have more digits is not evaluated


def _log10_bound(expr) -> float:
    """An upper bound of log10 |value| of an unevaluated numeric expression (symbols count as 10)."""
    import math

    import sympy

    if isinstance(expr, sympy.Rational):
        return max(int(expr.p).bit_length(), int(expr.q).bit_length()) * 0.30103
    if not expr.args:
        return 1.0
    parts = [_log10_bound(a) for a in expr.args]
    if isinstance(expr, sympy.Pow):
        if parts[1] > 6:
            return math.inf
        return 10 ** parts[1] * max(parts[0], 0.0)
    if isinstance(expr, sympy.factorial):
        if parts[0] > 6:
            return math.inf
        n = 10 ** parts[0]
        return n * math.log10(max(n, 2.0))
    if isinstance(expr, sympy.Mul):
        return sum(max(p, 0.0) for p in parts)
    return max(parts) + 1.0


def _too_costly(expr) -> bool:
    """Whether evaluating an unevaluated expression could take long: a value with more than
    ``_MAX_DIGITS`` digits, a root of a huge integer (SymPy factors it), a sum, integral or limit."""
    import sympy

    for node in sympy.preorder_traversal(expr):
        if isinstance(node, (sympy.Sum, sympy.Product, sympy.Integral, sympy.Limit, sympy.Derivative)):
            return True
        if isinstance(node, (sympy.Pow, sympy.factorial)) and _log10_bound(node) > _MAX_DIGITS:
            return True
        if isinstance(node, sympy.Pow) and node.base.is_Integer and not node.exp.is_Integer \
                and abs(int(node.base)) > 10**30:
            return True
    return False


@functools.lru_cache(maxsize=1)
def _latex_parser():
    """``latex2sympy`` and its settings (imported on first use: the ANTLR parser takes ~0.5 s to load)."""
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig, NormalizationConfig, latex2sympy

    normalization = NormalizationConfig(basic_latex=True, units=True, malformed_operators=True, nits=True,
                                        boxed="none", equations=False)
    conversion = ConversionConfig(lowercase_symbols=False)
    return functools.partial(latex2sympy, normalization_config=normalization, conversion_config=conversion)


class _Unsupported(Exception):
    """The quick reader does not take this input; the full LaTeX parser will."""


_TOKEN = re.compile(r"(\d+(?:\.\d+)?|\.\d+)|(\\[A-Za-z]+)|([A-Za-z])|([-+*^(){}\[\]])|(\s+)")
_MULTIPLY = ("*", "\\cdot", "\\times")
_ATOM_START = ("(", "{", "\\frac", "\\sqrt", "\\pi", "\\infty")


class _QuickReader:
    """Recursive-descent reader of the common MATH answer shapes (numbers, letters, + - * ^, implicit
    products, ``\\frac``, ``\\sqrt``, ``\\pi``, ``\\infty``) straight into SymPy, reading them as
    ``latex2sympy`` does ("e" is Euler's number, "I" the imaginary unit, "x^23" is x**23). The ANTLR
    parser takes 10-200 ms an answer; this takes well under one. Anything else raises ``_Unsupported``."""

    def __init__(self, text: str):
        import sympy

        self.sp = sympy
        self.tokens: list[tuple[int, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise _Unsupported(text[pos:])
            pos = m.end()
            if m.lastindex != 5:
                self.tokens.append((m.lastindex, m.group(m.lastindex)))
        self.i = 0

    def read(self):
        with self.sp.evaluate(False):  # evaluated later, once _too_costly has looked at it
            expr = self.expr()
        if self.i != len(self.tokens):
            raise _Unsupported("trailing input")
        return expr

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[int, str]:
        if self.i >= len(self.tokens) or (expected is not None and self.tokens[self.i][1] != expected):
            raise _Unsupported(f"expected {expected}")
        self.i += 1
        return self.tokens[self.i - 1]

    def expr(self):
        out = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            right = self.term()
            out = out + right if op == "+" else out - right
        return out

    def _starts_atom(self) -> bool:
        if self.i >= len(self.tokens):
            return False
        kind, tok = self.tokens[self.i]
        return kind in (1, 3) or tok in _ATOM_START

    def term(self):
        out = self.factor()
        while True:
            if self.peek() in _MULTIPLY:
                self.take()
                out = out * self.factor()
            elif self._starts_atom():
                prev_kind, prev = self.tokens[self.i - 1]
                if self.peek() == "\\frac" and prev_kind == 1:
                    raise _Unsupported("mixed number")  # 1\frac{4}{5}: latex2sympy reads 9/5
                if prev_kind == 3 and self.tokens[self.i][0] == 3:
                    raise _Unsupported("adjacent letters")
                out = out * self.factor()
            else:
                return out

    def factor(self):
        if self.peek() == "-":
            self.take()
            return -self.factor()
        if self.peek() == "+":
            self.take()
            return self.factor()
        base = self.atom()
        if self.peek() == "^":
            self.take()
            if self.peek() == "{":
                exponent = self.braced()
            else:
                kind, tok = self.take()
                if kind not in (1, 3):
                    raise _Unsupported("exponent")
                exponent = self.leaf(kind, tok)
            if self.peek() == "^":
                raise _Unsupported("stacked powers")
            return base ** exponent
        return base

    def braced(self):
        self.take("{")
        inner = self.expr()
        self.take("}")
        return inner

    def leaf(self, kind: int, tok: str):
        sp = self.sp
        if kind == 1:
            return sp.Rational(tok)
        if tok == "e":
            return sp.E
        if tok == "I":
            return sp.I
        return sp.Symbol(tok)

    def atom(self):
        sp = self.sp
        kind, tok = self.take()
        if kind in (1, 3):
            return self.leaf(kind, tok)
        if tok == "\\pi":
            return sp.pi
        if tok == "\\infty":
            return sp.oo
        if tok == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if tok == "{":
            self.i -= 1
            return self.braced()
        if tok == "\\frac":
            num = self.braced()
            return num / self.braced()
        if tok == "\\sqrt":
            if self.peek() == "[":
                self.take()
                index = self.expr()
                self.take("]")
                return sp.root(self.braced(), index)
            return sp.sqrt(self.braced())
        raise _Unsupported(tok)


def _parse_latex(s: str):
    """SymPy expression of a cleaned MATH answer: the quick reader, else ``latex2sympy``."""
    try:
        return _QuickReader(s).read()
    except (_Unsupported, ZeroDivisionError, ValueError, TypeError, OverflowError):
        return _latex_parser()(s)


def _sympy_canonical(s: str) -> str | None:
    """Canonical LaTeX of a parsed and evaluated expression; None where it does not parse or is not a value."""
    import sympy
    from sympy.logic.boolalg import BooleanAtom

    if len(s) > _MAX_SYMPY_CHARS or _BIG_BINOMIAL.search(s):
        return None
    expr = _parse_latex(s)
    if isinstance(expr, (bool, BooleanAtom)) or not hasattr(expr, "doit") or _too_costly(expr):
        return None
    expr = expr.doit()
    floats = expr.atoms(sympy.Float)
    if floats:  # decimals are exact values: 0.5 is 1/2
        expr = expr.xreplace({f: sympy.Rational(str(f)) for f in floats})
        expr = expr.doit()
    if isinstance(expr, (bool, BooleanAtom)):
        return None
    if isinstance(expr, sympy.Rational):
        return _rational_latex(Fraction(int(expr.p), int(expr.q)))
    if isinstance(expr, sympy.FiniteSet):  # "1 \pm \sqrt{5}": its elements, in the order of any set
        return _set_latex(_normalize_math(_latex_of(e)) for e in expr.args)
    return _latex_of(expr) or None


def _latex_of(expr) -> str:
    import sympy

    return _squash(sympy.latex(expr).replace("\\left", "").replace("\\right", "").replace("\\ ", " "))


def _set_latex(elements) -> str:
    """A set of canonical elements, written once: sorted, without repeats, nested sets flattened."""
    flat = set()
    for e in elements:
        pair = _encloses(e)
        if pair == ("\\{", "\\}"):
            flat.update(_split_top(e[2:-2], ","))
        else:
            flat.add(e)
    return "\\{" + ",".join(sorted(flat)) + "\\}"


_BRACKET = re.compile(r"\\[{}]|[()\[\]{}]")


def _split_top(s: str, sep: str) -> list[str]:
    """s split at each ``sep`` outside brackets and braces."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        m = _BRACKET.match(s, i)
        if m:
            depth += 1 if m.group() in ("(", "[", "{", "\\{") else -1
            i = m.end()
            continue
        if depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(s[start:])
    return parts


def _encloses(s: str) -> tuple[str, str] | None:
    """The bracket pair around the whole of s ("(1,2]" -> ("(", "]")), if one pair does enclose it."""
    m = _BRACKET.match(s)
    if not m or m.group() not in ("(", "[", "\\{"):
        return None
    depth = 0
    for b in _BRACKET.finditer(s):
        depth += 1 if b.group() in ("(", "[", "{", "\\{") else -1
        if depth == 0:
            if b.end() != len(s):
                return None
            close = b.group()
            if m.group() == "\\{" and close != "\\}" or m.group() != "\\{" and close not in (")", "]"):
                return None
            return m.group(), close
    return None


def _canonical_structure(s: str) -> str | None:
    """Unions, intervals, tuples and sets, element by element (sets sorted); None if s is none of them."""
    parts = _split_top(s, "\\cup")
    if len(parts) > 1 and all(parts):
        return "\\cup".join(_normalize_math(p) for p in parts)
    pair = _encloses(s)
    inner = s[len(pair[0]):-len(pair[1])] if pair else s
    elements = _split_top(inner, ",")
    if pair and pair[0] == "\\{":
        return _set_latex(_normalize_math(e) for e in elements)
    if len(elements) < 2 or not all(elements):
        return None
    canon = [_normalize_math(e) for e in elements]
    if pair:
        return pair[0] + ",".join(canon) + pair[1]
    return _set_latex(canon)  # "3, 5, 7": the answers, a set


def normalize_math(text: Any) -> str:
    """Canonical string of a MATH answer: equivalent answers give equal strings.

    ``0.5``, ``0.50``, ``\\frac{1}{2}``, ``\\tfrac12`` and ``1/2`` all give ``\\frac{1}{2}``; ``1.5`` and
    ``\\frac{3}{2}`` give ``\\frac{3}{2}``; ``\\sqrt{12}`` and ``2\\sqrt{3}`` give ``2\\sqrt{3}``; intervals,
    tuples and sets are read element by element (sets sorted). Spacing, ``\\left``/``\\right``, degrees,
    ``\\text`` units and a leading ``x =`` are dropped first. Words and whatever does not parse keep that
    cleaned string; nothing raises. Results are cached.
    """
    return _normalize_math(str(text))


_MAX_ANSWER_CHARS = 1000  # a longer "answer" is junk: only its whitespace is normalised


@functools.lru_cache(maxsize=16384)
def _normalize_math(text: str) -> str:
    if len(text) > _MAX_ANSWER_CHARS:
        return _squash(text)
    try:
        s = _clean_math(text)
    except Exception:  # never raise on junk: keep the whitespace-normalised text
        return _squash(text)
    if not s:
        return s
    value = _exact_number(s)
    if value is not None:
        return _rational_latex(value)
    if _WORDS.fullmatch(s):  # "Evelyn", "Monday": a word, not a product of symbols
        return s
    try:
        out = _canonical_structure(s)
        if out is None:
            out = _sympy_canonical(s)
    except Exception:  # noqa: BLE001 - a parse or SymPy failure keeps the cleaned string
        out = None
    return out if out is not None else s


_DELIMITED = re.compile(r"\${1,2}([^$]+)\${1,2}|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_PROSE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")


def _stated_math(span: str) -> str | None:
    """The MATH answer of a statement: its first ``$...$``, else the statement if it reads as math,
    else its first token if that holds a digit or a LaTeX command ("5 apples" -> 5)."""
    m = _DELIMITED.match(span.strip())
    if m:
        return normalize_math(next(g for g in m.groups() if g is not None)) or None
    plain = span.strip().rstrip(".,;").strip()
    if not plain:
        return None
    bare = re.sub(r"\\(?:text|mathrm|mbox|textbf)\{[^{}]*\}", "x", plain)
    if not _PROSE.search(re.sub(r"\\[A-Za-z]+", "", bare)):
        return normalize_math(plain) or None
    token = plain.split()[0].rstrip(".,;:")
    if re.search(r"[\d\\]", token):
        return normalize_math(token) or None
    return None


def extract_math(text: str) -> str | None:
    """The last ``\\boxed{}`` content, normalised; else the last answer statement ("answer is $X$")."""
    boxed = last_boxed(text)
    if boxed is not None:
        return normalize_math(boxed) or None
    for start in _statement_starts(text):
        delimited = _DELIMITED.match(text[:start + _STATEMENT_CHARS], start)
        if delimited:
            found = normalize_math(next(g for g in delimited.groups() if g is not None)) or None
        else:
            found = _stated_math(_statement_at(text, start))
        if found is not None:
            return found
    return None


# --- the public interface ------------------------------------------------------------------------

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
    """Gold answer in the form ``extract_answer`` produces (letter, number string or canonical LaTeX)."""
    _check_kind(kind)
    s = str(answer).strip()
    if kind == "multiple_choice":
        m = re.fullmatch(r"[\s(\[]*([A-Za-z])[\s).:\]]*", s)
        return m.group(1).upper() if m else s.upper()
    if kind == "number":
        return normalize_number(s) or " ".join(s.split())
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
