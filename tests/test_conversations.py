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
