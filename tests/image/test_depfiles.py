"""Property tests for the dependency-file parsers (image/depfiles.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from modal_offload.image import depfiles

NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}([-_.][A-Za-z0-9]{1,5}){0,2}", fullmatch=True)
SPECS = st.sampled_from(["", "==1.0", ">=2,<3", "~=1.4.2", "[extra]>=1",
                         " ; python_version<'3.12'"])
REQUIREMENT = st.builds(lambda n, s: n + s, NAMES, SPECS)
COMMENT = st.sampled_from(["", "  # pinned", "\t#why"])


@given(st.lists(st.tuples(REQUIREMENT, COMMENT, st.booleans()), max_size=12))
@settings(max_examples=200, deadline=None)
def test_requirement_lines_survive_comments_blanks_and_continuations(
        entries: list[tuple[str, str, bool]]) -> None:
    text = ""
    for req, comment, split in entries:
        if split and " " not in req and len(req) > 2:
            text += f"{req[:2]}\\\n{req[2:]}{comment}\n\n"  # a continuation inside the name
        else:
            text += f"# heading\n{req}{comment}\n"
    parsed = depfiles.parse_requirements(text)
    assert list(parsed.lines) == [req.strip() for req, _, _ in entries]
    assert depfiles.names(parsed.lines) == [depfiles.normalize(depfiles.requirement_name(r) or "")
                                            for r, _, _ in entries]


@given(st.text(max_size=400))
@example("\\ ")  # a requirement line ending in a backslash (CI found it)
@settings(max_examples=300, deadline=None)
def test_any_text_parses_or_fails_cleanly_and_flattening_is_stable(text: str) -> None:
    parsed = depfiles.parse_requirements(text)  # never raises without includes
    again = depfiles.parse_requirements(depfiles.render_requirements(parsed))
    assert again.lines == parsed.lines


def test_includes_are_inlined_and_local_paths_dropped_with_a_note() -> None:
    files = {"base.txt": "numpy==2.1.0\n-r more/extra.txt\n", "more/extra.txt": "rich\n"}
    parsed = depfiles.parse_requirements(
        "-r base.txt\n-e .\n./wheels/x.whl\n-c constraints.txt\n--index-url https://x/simple\n",
        lambda p: files[p] if p in files else (_ for _ in ()).throw(FileNotFoundError(p)))
    assert parsed.lines == ("numpy==2.1.0", "rich", "--index-url https://x/simple")
    assert parsed.includes == ("base.txt", "more/extra.txt")
    assert len(parsed.dropped) == 3 and all("(" in d for d in parsed.dropped)
    with pytest.raises(depfiles.DepFileError, match=r"missing\.txt"):
        depfiles.parse_requirements("-r missing.txt\n", lambda p: (_ for _ in ()).throw(
            FileNotFoundError(p)))


CONDA_ITEMS = st.from_regex(r"[a-z][a-z0-9-]{0,8}(=[0-9]{1,2}(\.[0-9]{1,2})?)?",
                            fullmatch=True).filter(lambda s: not s.startswith("python"))


@given(st.lists(CONDA_ITEMS, max_size=6), st.lists(REQUIREMENT, max_size=4),
       st.lists(st.sampled_from(["conda-forge", "defaults", "bioconda"]), max_size=3),
       st.sampled_from(["", "3.11", "3.12"]), st.sampled_from(["  ", "    "]))
@settings(max_examples=200, deadline=None)
def test_environment_yml_round_trip(conda: list[str], pip: list[str], channels: list[str],
                                    python: str, indent: str) -> None:
    deps = [*conda, *([f"python={python}"] if python else [])]
    text = "name: demo  # the env\nchannels:\n" + "".join(f"{indent}- {c}\n" for c in channels)
    text += "dependencies:\n" + "".join(f"{indent}- {d}\n" for d in deps)
    if pip:
        text += f"{indent}- pip:\n" + "".join(f"{indent}{indent}- \"{p}\"\n" for p in pip)
    parsed = depfiles.parse_environment_yml(text)
    assert parsed.name == "demo" and parsed.channels == tuple(channels)
    assert parsed.conda == tuple(deps) and parsed.pip == tuple(pip)
    assert parsed.python == (python or None)


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_environment_yml_any_text_parses_or_names_the_problem(text: str) -> None:
    try:
        depfiles.parse_environment_yml(text)
    except depfiles.DepFileError as exc:
        assert "environment.yml" in str(exc)


@given(st.lists(REQUIREMENT, max_size=5), st.dictionaries(
    st.sampled_from(["test", "docs", "dev"]), st.lists(REQUIREMENT, max_size=3), max_size=3))
@settings(max_examples=100, deadline=None)
def test_pyproject_dependencies_and_extras(deps: list[str], extras: dict[str, list[str]]) -> None:
    def arr(items: list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"  # TOML basic strings
    text = f'[project]\nname = "demo"\ndependencies = {arr(deps)}\n'
    if extras:
        text += "[project.optional-dependencies]\n" + "".join(
            f"{k} = {arr(v)}\n" for k, v in extras.items())
    parsed = depfiles.parse_pyproject(text)
    assert parsed.name == "demo" and parsed.dependencies == tuple(deps)
    assert parsed.optional == {k: tuple(v) for k, v in extras.items()}


def test_bad_files_fail_with_their_name() -> None:
    with pytest.raises(depfiles.DepFileError, match=r"pyproject\.toml"):
        depfiles.parse_pyproject("[project\n")
    with pytest.raises(depfiles.DepFileError, match=r"package\.json"):
        depfiles.parse_package_json("{")
    with pytest.raises(depfiles.DepFileError, match="line 2"):
        depfiles.parse_environment_yml("dependencies:\n  - a: {b: c}\n")
