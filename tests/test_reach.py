"""The reachability check (issue 19): the server URL is resolved as the `modal` client
resolves it, and only an HTTP/2 server's answer counts as reachable."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from modal_offload import credentials
from modal_offload.reach import unreachable_reason
from testing.modal_emulator import ModalEmulator

PROFILES = ('[default]\nserver_url = "http://profile-default:1"\n'
            '[work]\nserver_url = "http://profile-work:2"\nactive = true\n')
# (config file text, environment)
CASES: dict[str, tuple[str, dict[str, str]]] = {
    "nothing set: the default pair": ("", {}),
    "environment": ("", {"MODAL_SERVER_URL": "http://env:3"}),
    "active profile": (PROFILES, {}),
    "MODAL_PROFILE": (PROFILES, {"MODAL_PROFILE": "default"}),
    "environment over the profile": (PROFILES, {"MODAL_SERVER_URL": "http://env:3"}),
}


@pytest.fixture
def config_path(tmp_path: Path) -> Iterator[Path]:
    import modal.config

    yield tmp_path / "modal.toml"
    importlib.reload(modal.config)


@pytest.mark.parametrize("case", sorted(CASES))
def test_server_url_is_the_clients(config_path: Path, case: str) -> None:
    import modal.config

    text, env = CASES[case]
    config_path.write_text(text)
    scrubbed = {k: v for k, v in os.environ.items()
                if k not in ("MODAL_SERVER_URL", "MODAL_PROFILE")}
    with mock.patch.dict(os.environ, {**scrubbed, **env, "MODAL_CONFIG_PATH": str(config_path)},
                         clear=True):
        importlib.reload(modal.config)
        assert credentials.server_url() == modal.config.config["server_url"]


def test_an_http2_server_answers(modal_emulator: ModalEmulator) -> None:
    assert unreachable_reason(modal_emulator.url, 5) is None
    # One of several URLs answering is enough, as the client races them.
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{dead.getsockname()[1]},{modal_emulator.url}"
        assert unreachable_reason(url, 5) is None


def test_a_server_that_is_not_http2_does_not_count() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        threading.Thread(target=answer, daemon=True).start()
        why = unreachable_reason(f"http://127.0.0.1:{server.getsockname()[1]}", 5)
    assert why is not None and "not as an HTTP/2 server" in why


def test_the_check_does_not_import_modal() -> None:
    code = ("import sys; from modal_offload import reach; "
            "reach.unreachable_reason('http://127.0.0.1:9', 0.5); print('modal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert out.stdout == b"False\n", out.stderr
