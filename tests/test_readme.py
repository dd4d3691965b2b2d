"""The README's Python example runs as written and does what it says."""
import json
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


def test_readme_python_example_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    values = namespace["values"]
    assert list(values.columns)[:5] == ["agent_a", "agent_b", "topic", "weight", "n_conversations"]
    doc = json.loads((tmp_path / "teams.json").read_text())
    members = sorted([m for t in doc["teams"] for m in t["members"]] + doc["isolates"])
    assert members == ["ada", "gauss", "hippo"]
    assert namespace["partition"].communities == sorted(namespace["partition"].communities, key=lambda c: (-len(c), c[0]))
