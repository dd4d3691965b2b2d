import json

import pytest

import teamgraph as tg
from teamgraph.errors import InputError


def make_conv(a="ada", b="hippo", topic="mathematics", texts=("x", "y")):
    speakers = [a, b]
    return tg.Conversation(a, b, topic, [tg.Utterance(speakers[i % 2], t) for i, t in enumerate(texts)])


def test_jsonl_round_trip_keeps_everything(tmp_path):
    convs = [make_conv(), make_conv("bob", "cy", "general", ("hi", "", "bye"))]
    path = tmp_path / "c.jsonl"
    tg.write_conversations(convs, path)
    back = tg.read_conversations(path)
    assert back == convs
    assert [c.id for c in back] == [c.id for c in convs]


def test_content_id_is_stable_and_content_sensitive():
    assert make_conv().id == make_conv().id
    assert make_conv().id != make_conv(texts=("x", "z")).id


@pytest.mark.parametrize(
    "line, problem",
    [
        ("{not json", "invalid JSON"),
        ('[1, 2]', "expected a JSON object"),
        ('{"agent_a": "a", "topic": "t", "utterances": []}', "missing field 'agent_b'"),
        ('{"agent_a": "a", "agent_b": "b", "topic": "t", "utterances": "no"}', "'utterances' must be a list"),
        ('{"agent_a": "a", "agent_b": "b", "topic": "t", "utterances": [{"speaker": "z", "text": "q"}]}', "speaker 'z'"),
        ('{"agent_a": "a", "agent_b": "a", "topic": "t", "utterances": []}', "both 'a'"),
    ],
)
def test_malformed_line_names_line_number_and_problem(tmp_path, line, problem):
    good = json.dumps(make_conv().to_dict())
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(InputError) as err:
        tg.read_conversations(path)
    assert f"bad.jsonl:3:" in str(err.value)
    assert problem in str(err.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        tg.read_conversations(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="no conversations"):
        tg.read_conversations(tmp_path / "empty.jsonl")


# -- issue 12: bad bytes and odd records are one InputError naming the file and line ------------------------


def test_a_line_that_is_not_utf8_names_file_and_line(tmp_path):
    good = json.dumps(make_conv().to_dict(), ensure_ascii=False).encode("utf-8")
    path = tmp_path / "bad.jsonl"
    path.write_bytes(good + b"\n" + good.replace(b"mathematics", b"math\xe9matiques") + b"\n")
    with pytest.raises(InputError) as err:
        tg.read_conversations(path)
    message = str(err.value)
    assert message.startswith(f"{path}:2: not UTF-8 text (byte 0xe9 at byte ") and "\n" not in message


def test_cli_teams_on_a_non_utf8_file_exits_2_with_one_line(tmp_path, capsys):
    from teamgraph.cli import main

    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\xff\xfe{\x00}\x00\n")  # UTF-16, say
    code = main(["teams", "--conversations", str(path), "--json", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}:1: not UTF-8 text (byte 0xff at byte 1 of the line)" in err


def test_byte_order_mark_and_cr_line_ends_are_read(tmp_path):
    convs = [make_conv(), make_conv("bob", "cy", "general", ("hi", "bye"))]
    lines = [json.dumps(c.to_dict()) for c in convs]
    for name, data in [("bom.jsonl", b"\xef\xbb\xbf" + "\n".join(lines).encode()),
                       ("crlf.jsonl", "\r\n".join(lines).encode() + b"\r\n"),
                       ("cr.jsonl", "\r".join(lines).encode())]:
        (tmp_path / name).write_bytes(data)
        assert tg.read_conversations(tmp_path / name) == convs, name
    (tmp_path / "cr_bad.jsonl").write_bytes(("\r".join(lines) + "\r\r{oops").encode())
    with pytest.raises(InputError, match=r"cr_bad.jsonl:4: invalid JSON"):  # lines counted as text mode counts them
        tg.read_conversations(tmp_path / "cr_bad.jsonl")


@pytest.mark.parametrize("line, problem", [
    ('{"agent_a": "a\\ud800", "agent_b": "b", "topic": "t", "utterances": []}', "field 'agent_a' holds an invalid \\u escape"),
    ('{"agent_a": "a", "agent_b": "b", "topic": "t", "utterances": [{"speaker": "a", "text": "\\udfff"}]}',
     "utterance 0 text holds an invalid \\u escape"),
    ('{"agent_a": "a", "agent_b": "b", "topic": "t", "utterances": [{"speaker": "a", "text": "x", "status": 3}]}',
     "utterance 0 status must be one of ok, empty, error, got 3"),
    ('{"agent_a": "a", "agent_b": "b", "topic": "t", "id": "\\ud800", "utterances": []}', "field 'id' holds"),
    ("[" * 100000 + "]" * 100000, "invalid JSON (nested too deeply)"),
    ('{"agent_a": ' + "9" * 5000 + "}", "invalid JSON (Exceeds the limit"),
])
def test_records_no_file_or_hash_could_hold_are_refused_by_line(tmp_path, line, problem):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps(make_conv().to_dict()) + "\n" + line + "\n")
    with pytest.raises(InputError) as err:
        tg.read_conversations(path)
    assert str(err.value).startswith(f"{path}:2: ") and problem in str(err.value)


def test_a_folder_given_as_the_file_is_one_error(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        tg.read_conversations(tmp_path)
