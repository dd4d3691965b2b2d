"""The public API is documented: numpy-style docstrings with examples, and every module names its
public names in ``__all__`` (issue 16, part 5). The examples themselves run as doctests
(``--doctest-modules`` in setup.cfg)."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import teamgraph


def _module_names() -> list[str]:
    return ["teamgraph"] + sorted(m.name for m in pkgutil.walk_packages(teamgraph.__path__, "teamgraph."))


def _has_parameters(obj: object) -> bool:
    """Whether calling ``obj`` takes arguments (a class: its constructor; no signature: assume so)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # e.g. an exception class that keeps Exception's constructor
        return True
    return bool(signature.parameters)


def _sections(doc: str) -> set[str]:
    """The numpy-style section titles of ``doc`` (a title line underlined with dashes)."""
    lines = [line.strip() for line in inspect.cleandoc(doc).splitlines()]
    return {title for title, rule in zip(lines, lines[1:]) if title and rule and set(rule) == {"-"}}


def _missing_sections(obj: object) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if not doc.strip():
        return ["a docstring"]
    found = _sections(doc)
    wanted = []
    if _has_parameters(obj):
        wanted.append("Parameters")
    if not inspect.isclass(obj):
        wanted.append("Returns")
    wanted.append("Examples")
    missing = [s for s in wanted if s not in found]
    if "Examples" in found and ">>>" not in doc.split("Examples", 1)[1]:
        missing.append("an example (>>>) under Examples")
    return missing


PUBLIC = sorted(teamgraph.__all__)


def test_all_names_exist_and_are_unique():
    assert len(set(teamgraph.__all__)) == len(teamgraph.__all__)
    assert [n for n in teamgraph.__all__ if not hasattr(teamgraph, n)] == []


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_is_documented(name):
    obj = getattr(teamgraph, name)
    if not callable(obj):  # METRICS, __version__: documented where they are defined
        return
    missing = _missing_sections(obj)
    assert not missing, f"teamgraph.{name} ({obj.__module__}) lacks {', '.join(missing)} in its docstring"


@pytest.mark.parametrize("module_name", _module_names())
def test_module_states_its_public_names(module_name):
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    assert names is not None, f"{module_name} has no __all__"
    assert isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names), f"{module_name}.__all__"
    assert len(set(names)) == len(names), f"{module_name}.__all__ repeats a name"
    absent = [n for n in names if not hasattr(module, n)]
    assert not absent, f"{module_name}.__all__ names what it does not define: {', '.join(absent)}"


def test_section_finder_reads_numpy_docstrings():
    def documented(x):
        """One line.

        Parameters
        ----------
        x : int

        Returns
        -------
        int

        Examples
        --------
        >>> documented(1)
        1
        """
        return x

    def bare(x):
        """Only a line (a function of one argument without Parameters, Returns or Examples)."""
        return x

    assert _missing_sections(documented) == []
    assert _missing_sections(bare) == ["Parameters", "Returns", "Examples"]
    assert _missing_sections(lambda: None) == ["a docstring"]
