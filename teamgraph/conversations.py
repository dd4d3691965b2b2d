"""Conversation records and their JSONL form (one conversation per line)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from .errors import InputError

__all__ = ["Utterance", "Conversation", "STATUSES", "conversation_from_dict", "iter_conversations_jsonl",
           "read_conversations", "write_conversations"]


@dataclass(frozen=True)
class Utterance:
    """One turn of a conversation. ``status`` is ``ok``, ``empty`` or ``error``; failed turns are kept.

    A turn that is not ``ok`` is scored as a zero vector (see :mod:`teamgraph.metrics`), so a
    failed reply lowers its pair's value instead of silently disappearing.

    Parameters
    ----------
    speaker : str
        The agent who spoke (``agent_a`` or ``agent_b`` of its conversation).
    text : str
        What was said (empty for a failed turn).
    status : {"ok", "empty", "error"}, default "ok"
        Whether the model replied; not checked here (:func:`conversation_from_dict` checks it).

    Examples
    --------
    >>> Utterance("ada", "Let x be 2.")
    Utterance(speaker='ada', text='Let x be 2.', status='ok')
    >>> Utterance("bob", "", status="error").to_dict()
    {'speaker': 'bob', 'text': '', 'status': 'error'}
    """

    speaker: str
    text: str
    status: str = "ok"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this turn (``status`` only when it is not ``ok``)."""
        d = {"speaker": self.speaker, "text": self.text}
        if self.status != "ok":
            d["status"] = self.status
        return d


@dataclass(frozen=True)
class Conversation:
    """The utterances of two agents about one topic, in order.

    ``id`` is optional: when missing, a stable id is derived from the content, so the same
    conversation always gets the same id (used as edge provenance). A Conversation is immutable
    and hashable; a list of utterances is stored as a tuple.

    Parameters
    ----------
    agent_a, agent_b : str
        The two agents, in the order given (:attr:`pair` gives them sorted).
    topic : str
        What they talked about; relationship values are computed per topic.
    utterances : sequence of Utterance, default ()
        The turns, in order.
    id : str, optional
        A unique id; None derives 16 hex digits from a hash of the other fields.

    Examples
    --------
    >>> conv = Conversation("bob", "ada", "mathematics",
    ...                     [Utterance("bob", "2 + 2?"), Utterance("ada", "4.")])
    >>> conv.pair, len(conv.utterances), len(conv.id)
    (('ada', 'bob'), 2, 16)
    >>> conv.id == Conversation("bob", "ada", "mathematics", conv.utterances).id
    True
    """

    agent_a: str
    agent_b: str
    topic: str
    utterances: tuple[Utterance, ...] = field(default_factory=tuple)
    id: str | None = None

    def __post_init__(self) -> None:
        # Accept lists for convenience; store tuples so the record stays hashable and immutable.
        object.__setattr__(self, "utterances", tuple(self.utterances))
        if self.id is None:
            object.__setattr__(self, "id", _content_id(self))

    @property
    def pair(self) -> tuple[str, str]:
        """The two agent names, sorted."""
        return tuple(sorted((self.agent_a, self.agent_b)))  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this conversation, as one line of a conversations file holds it."""
        return {
            "id": self.id,
            "agent_a": self.agent_a,
            "agent_b": self.agent_b,
            "topic": self.topic,
            "utterances": [u.to_dict() for u in self.utterances],
        }


def _content_id(conv: Conversation) -> str:
    payload = json.dumps(
        [conv.agent_a, conv.agent_b, conv.topic, [[u.speaker, u.text, u.status] for u in conv.utterances]],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


STATUSES = ("ok", "empty", "error")


def _check_text(value: str, where: str, what: str) -> None:
    """A JSON ``\\ud800`` escape decodes to a lone surrogate, which no file or hash can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{where}: {what} holds an invalid \\u escape (a lone surrogate)") from None


def conversation_from_dict(obj: object, where: str = "conversation") -> Conversation:
    """Build a Conversation from its JSON object, with an error naming ``where`` and the problem."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("agent_a", "agent_b", "topic"):
        if key not in obj:
            raise InputError(f"{where}: missing field '{key}'")
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise InputError(f"{where}: field '{key}' must be a non-empty string")
        _check_text(obj[key], where, f"field '{key}'")
    if obj["agent_a"] == obj["agent_b"]:
        raise InputError(f"{where}: agent_a and agent_b are both {_short(obj['agent_a'])}")
    raw = obj.get("utterances")
    if not isinstance(raw, list):
        raise InputError(f"{where}: field 'utterances' must be a list")
    utterances = []
    for i, u in enumerate(raw):
        if not isinstance(u, dict) or not isinstance(u.get("speaker"), str) or not isinstance(u.get("text"), str):
            raise InputError(f"{where}: utterance {i} must be an object with string 'speaker' and 'text'")
        if u["speaker"] not in (obj["agent_a"], obj["agent_b"]):
            raise InputError(f"{where}: utterance {i} speaker {_short(u['speaker'])} is neither agent_a nor agent_b")
        _check_text(u["text"], where, f"utterance {i} text")
        status = u.get("status", "ok")
        if status not in STATUSES:
            raise InputError(f"{where}: utterance {i} status must be one of {', '.join(STATUSES)}, got {_short(status)}")
        utterances.append(Utterance(u["speaker"], u["text"], status))
    conv_id = obj.get("id")
    if conv_id is not None and not isinstance(conv_id, str):
        raise InputError(f"{where}: field 'id' must be a string")
    if conv_id is not None:
        _check_text(conv_id, where, "field 'id'")
    return Conversation(obj["agent_a"], obj["agent_b"], obj["topic"], tuple(utterances), conv_id)


def _short(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for one-line messages."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001  (e.g. an int of more than 4300 digits)
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def iter_conversations_jsonl(path: str | Path) -> Iterator[Conversation]:
    """Yield conversations from a UTF-8 JSONL file; blank lines are skipped.

    Every problem is an InputError naming the file and the line: bytes that are not UTF-8, invalid
    JSON, a record that is not a conversation.
    """
    path = Path(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with fh:
        for lineno, raw in enumerate(_raw_lines(fh, path), start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a byte order mark
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte "
                                 f"{exc.start + 1} of the line); conversations files are UTF-8 JSONL") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            except RecursionError:
                raise InputError(f"{path}:{lineno}: invalid JSON (nested too deeply)") from None
            except ValueError as exc:  # e.g. an integer of more than 4300 digits
                raise InputError(f"{path}:{lineno}: invalid JSON ({' '.join(str(exc).split())[:120]})") from None
            yield conversation_from_dict(obj, where=f"{path}:{lineno}")


def _raw_lines(fh: BinaryIO, path: Path) -> Iterator[bytes]:
    """The lines of a binary file, split like text mode does (at \\n, \\r\\n and \\r), without their ends."""
    while True:
        try:
            chunk = fh.readline()
        except OSError as exc:  # a folder given as the file, a failing disk
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if not chunk:
            return
        yield from chunk.splitlines() or [b""]


def read_conversations(path: str | Path) -> list[Conversation]:
    """Read every conversation of a JSONL file (errors name the line number).

    Each non-blank line is one JSON object: ``agent_a``, ``agent_b``, ``topic``, ``utterances``
    (objects with ``speaker``, ``text`` and an optional ``status``) and an optional ``id``; the
    format :func:`write_conversations` writes.

    Parameters
    ----------
    path : str or Path
        A UTF-8 JSONL file (a byte order mark is allowed; lines may end in ``\\n``, ``\\r\\n`` or ``\\r``).

    Returns
    -------
    list of Conversation
        In file order.

    Raises
    ------
    InputError
        The file cannot be read, is empty, is not UTF-8, or a line is not valid JSON or not a
        conversation (a missing field, a speaker who is neither agent, an unknown status); the
        message names the file and the line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "conversations.jsonl"
    >>> _ = path.write_text('{"agent_a": "ada", "agent_b": "bob", "topic": "mathematics", '
    ...                     '"utterances": [{"speaker": "ada", "text": "2 + 2?"}, {"speaker": "bob", "text": "4"}]}\\n')
    >>> [(c.pair, c.topic, len(c.utterances)) for c in read_conversations(path)]
    [(('ada', 'bob'), 'mathematics', 2)]
    >>> _ = path.write_text('{"agent_a": "ada"}\\n')
    >>> read_conversations(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    teamgraph.errors.InputError: ...conversations.jsonl:1: missing field 'agent_b'
    >>> tmp.cleanup()
    """
    convs = list(iter_conversations_jsonl(path))
    if not convs:
        raise InputError(f"{path}: no conversations in file")
    return convs


def write_conversations(conversations: Iterable[Conversation], path: str | Path) -> None:
    """Write conversations as JSONL, one object per line (what :func:`read_conversations` reads).

    Parameters
    ----------
    conversations : iterable of Conversation
        Written in the order given, each with its ``id``.
    path : str or Path
        The file to write (replaced when it exists; its folder must exist). Text is UTF-8 and
        not escaped to ASCII.

    Returns
    -------
    None

    Raises
    ------
    OSError
        The file cannot be written (a missing folder, no permission, a full disk).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "conversations.jsonl"
    >>> conv = Conversation("ada", "bob", "mathematics", [Utterance("ada", "2 + 2?"), Utterance("bob", "4")])
    >>> write_conversations([conv], path)
    >>> read_conversations(path) == [conv]
    True
    >>> tmp.cleanup()
    """
    with Path(path).open("w", encoding="utf-8") as fh:
        for conv in conversations:
            fh.write(json.dumps(conv.to_dict(), ensure_ascii=False) + "\n")
