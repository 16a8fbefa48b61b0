"""tools/mutation.py's bookkeeping: which saved mutant statuses still hold after the sources change.

mutmut numbers a function's mutants from that function's source, so a saved status (keyed
`<module>.<function key>__mutmut_<n>`) means the same mutant while the function's source and the
module's code outside functions are unchanged; a change anywhere else in the module (a constant, a
property, a decorated kernel) can change what every function does, so it drops the whole module.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import mutation  # noqa: E402

SOURCE = """\
LIMIT = 3


def clip(x):
    return min(x, LIMIT)


class Pool:
    def swap(self, a):
        return a + 1

    @property
    def size(self):
        return 2
"""


def _hashes(source: str) -> dict[str, str]:
    return mutation.source_hashes("idf.m", source)


def test_keys_are_mutmuts_names_and_decorated_functions_have_none():
    assert set(_hashes(SOURCE)) == {"idf.m", "idf.m.x_clip", "idf.m.xǁPoolǁswap"}


def test_only_the_statuses_of_changed_functions_are_dropped():
    then = _hashes(SOURCE)
    results = {
        "idf.m.x_clip__mutmut_1": "killed",
        "idf.m.x_clip__mutmut_2": "survived",
        "idf.m.xǁPoolǁswap__mutmut_1": "killed",
    }
    assert mutation._fresh(results, then, then) == results
    swapped = _hashes(SOURCE.replace("a + 1", "a + 2"))
    assert mutation._fresh(results, then, swapped) == {
        k: v for k, v in results.items() if "clip" in k
    }
    # comments and blank lines do not matter, outside the functions or inside
    assert mutation._fresh(results, then, _hashes("# a comment\n" + SOURCE)) == results
    assert (
        mutation._fresh(
            results, then, _hashes(SOURCE.replace("return a + 1", "# note\n\n        return a + 1"))
        )
        == results
    )


def test_formatting_annotations_and_docstrings_do_not_count():
    """mutmut numbers mutants on the syntax tree and never mutates inside a type annotation or a
    triple-quoted string: reformatting (ruff format), typing a signature or rewording a docstring
    keeps every saved status; a changed single-quoted string is a changed mutant."""
    then = _hashes(SOURCE)
    same = (
        SOURCE.replace("def clip(x):", "def clip(\n    x: int,\n) -> int:")
        .replace("return min(x, LIMIT)", '"""Clip."""\n    return min( x , LIMIT )')
        .replace("LIMIT = 3", "LIMIT: int = 3")
        .replace("def swap(self, a):", "def swap(self, a: 'int | None') -> int:  # typed")
    )
    assert _hashes(same) == then
    assert (
        _hashes(SOURCE.replace("return min(x, LIMIT)", '"Clip."\n    return min(x, LIMIT)'))[
            "idf.m.x_clip"
        ]
        != then["idf.m.x_clip"]
    )
    assert _hashes(SOURCE.replace("LIMIT = 3", "LIMIT = 3.0"))["idf.m"] != then["idf.m"]


def test_a_change_outside_the_functions_drops_the_whole_module():
    then = _hashes(SOURCE)
    results = {"idf.m.x_clip__mutmut_1": "killed", "idf.m.xǁPoolǁswap__mutmut_1": "killed"}
    for changed in (
        SOURCE.replace("LIMIT = 3", "LIMIT = 4"),
        SOURCE.replace("return 2", "return 3"),
    ):
        now = _hashes(changed)
        assert now["idf.m.x_clip"] == then["idf.m.x_clip"]  # the function itself is unchanged
        assert mutation._fresh(results, then, now) == {}


def test_a_function_removed_or_renamed_loses_its_statuses():
    then = _hashes(SOURCE)
    now = _hashes(SOURCE.replace("def clip", "def clamp"))
    assert mutation._fresh({"idf.m.x_clip__mutmut_1": "killed"}, then, now) == {}


def test_imports_and_the_module_docstring_do_not_count():
    """Moving a module rewrites its imports and docstring; its functions compute the same."""
    then = _hashes(SOURCE)
    moved = '"""Moved."""\nimport math\nfrom idf.engine.market import amm\n' + SOURCE
    assert _hashes(moved) == then
    # a docstring-like string later in the module is code like any other
    assert _hashes(SOURCE + '\n"""not a docstring"""\n') != then
