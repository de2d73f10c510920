"""Heavy offload: the demo's arithmetic, payload validation, modes and honest fallback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import primary_compute
from modal_offload.errors import BadInput
from modal_offload.heavy import parse_payload, validate_payload
from testing import demo_reference
from tests.helpers import REPO, cli


@pytest.mark.parametrize(("iterations", "workers", "salt", "expected"), [
    (24_000_000, 6, 17, 3427908807260612608),
    (2_000_000, 2, 17, 3049778897579708928),
])
def test_demo_gives_the_original_checksums(iterations: int, workers: int, salt: int,
                                           expected: int) -> None:
    out = primary_compute.do_heavy_stuff(
        {"iterations": iterations, "workers": workers, "salt": salt})
    assert out["checksum"] == expected
    assert out["iterations"] == iterations and out["workers"] == workers


@settings(max_examples=60, deadline=None)
@given(iterations=st.integers(0, 5000), workers=st.integers(1, 9),
       salt=st.integers(-(2**70), 2**70))
def test_fast_demo_equals_the_original_loop(iterations: int, workers: int, salt: int) -> None:
    fast = primary_compute.do_heavy_stuff(
        {"iterations": iterations, "workers": workers, "salt": salt})["checksum"]
    assert fast == demo_reference.checksum(iterations, workers, salt)


@settings(max_examples=100)
@given(st.one_of(st.integers(), st.text(), st.lists(st.integers()), st.none(),
                 st.dictionaries(st.sampled_from(["iterations", "workers", "salt"]),
                                 st.one_of(st.integers(-5, 5), st.floats(), st.text(max_size=3),
                                           st.booleans()))))
def test_payload_validation_accepts_only_sane_objects(payload: object) -> None:
    ok = (isinstance(payload, dict)
          and all(type(payload.get(k, 1)) is int for k in ("iterations", "workers", "salt"))
          and payload.get("iterations", 0) >= 0 and payload.get("workers", 1) >= 1)
    if ok:
        assert validate_payload(payload) == payload
    else:
        with pytest.raises(BadInput):
            validate_payload(payload)


def test_payload_text_errors_are_one_line() -> None:
    with pytest.raises(BadInput) as info:
        parse_payload('{"iterations": 1,')
    assert "\n" not in info.value.one_line()


def _heavy(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, object], str]:
    out = cli("heavy", *args, cwd=REPO, env=env)
    stdout = out.stdout.decode()
    return out.returncode, (json.loads(stdout) if out.returncode == 0 else {}), \
        out.stderr.decode()


def test_local_mode_runs_here_and_keys_match_the_original(tmp_home: Path) -> None:
    code, result, err = _heavy("--mode", "local", "--payload",
                               '{"iterations":2000000,"workers":2}')
    assert code == 0, err
    assert set(result) >= {"iterations", "workers", "checksum", "duration_s", "host",
                           "execution", "tracked_modal_min_today", "daily_budget_min"}
    assert result["execution"] == "local" and result["checksum"] == 3049778897579708928
    assert err == ""


def test_auto_without_credentials_runs_locally_and_says_so_once(tmp_home: Path) -> None:
    code, result, err = _heavy("--payload", '{"iterations":1000,"workers":2}')
    assert code == 0 and result["execution"] == "local"
    assert err.count("\n") == 1 and "running locally" in err and "make auth" in err


def test_modal_mode_without_credentials_fails_clearly(tmp_home: Path) -> None:
    code, _, err = _heavy("--mode", "modal", "--payload", "{}")
    assert code == 4 and err.count("\n") == 1 and "Traceback" not in err


def test_no_local_fallback_gets_its_own_exit_code(tmp_home: Path) -> None:
    code, _, err = _heavy("--no-local-fallback", "--payload", "{}")
    assert code == 4 and "credentials" in err


@pytest.mark.parametrize(("args", "needle"), [
    (("--payload", "{not json"), "not valid JSON"),
    (("--payload", "[1, 2]"), "must be a JSON object"),
    (("--payload", '{"iterations": -4}'), "iterations"),
    (("--payload", '{"iterations": 2.5}'), "iterations"),
    (("--payload", '{"workers": 0}'), "workers"),
    (("--mode", "turbo", "--payload", "{}"), "invalid choice: 'turbo'"),
    (("--payload-file", "/nonexistent/payload.json"), "cannot read payload file"),
])
def test_bad_input_is_one_line_exit_2(tmp_home: Path, args: tuple[str, ...], needle: str) -> None:
    code, _, err = _heavy(*args)
    assert code == 2 and needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_home: Path) -> None:
    out = cli("--debug", "heavy", "--payload", "[]", cwd=REPO)
    assert out.returncode == 2 and b"Traceback" in out.stderr


def test_payload_file(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text('{"iterations": 2000000, "workers": 2}')
    code, result, _ = _heavy("--mode", "local", "--payload-file", str(f))
    assert code == 0 and result["checksum"] == 3049778897579708928


def test_run_heavy_python_api_keeps_the_original_signature(tmp_home: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = primary_compute.run_heavy({"iterations": 2000000, "workers": 2},
                                       max_min_per_day=10, allow_local_fallback=True,
                                       force_mode="local")
    assert result["checksum"] == 3049778897579708928 and result["daily_budget_min"] == 10
    assert os.environ.get("HOME") == str(tmp_home)

