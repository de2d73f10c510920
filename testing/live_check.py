"""`make live-check`: the shared scenarios (testing/scenarios.py) against real Modal.

Uses your Modal credentials exactly as the `modal` client finds them (resolved before the
scenarios switch HOME to a scratch folder), an app of its own (`modal-offload-live-check`)
and a scratch ledger, so your own ledger and sessions are never touched. Prints one row per
scenario with its wall time and the remote minutes it charged, and stops every sandbox it
started. Without credentials it says so and exits 0.

UNVERIFIED: real Modal is unreachable from where this was written; the same scenarios pass
against the in-repo emulator (tests/emulator/test_scenarios.py).
"""

from __future__ import annotations

import os
import sys

from modal_offload import credentials, paths

from .scenarios import SCENARIOS, Row, Scenario, run_scenario

APP_NAME = "modal-offload-live-check"
# Client settings carried into the scenarios' scratch HOME.
_CLIENT_SETTINGS = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_PROFILE", "MODAL_ENVIRONMENT",
                    "MODAL_SERVER_URL", "MODAL_OAUTH_REFRESH_TOKEN", "MODAL_OAUTH_CLIENT_ID",
                    "MODAL_OAUTH_CLIENT_SECRET", "MODAL_OAUTH_JWT_KEY")


class LiveTarget:
    name = "live"

    def __init__(self) -> None:
        self._env = {k: os.environ[k] for k in _CLIENT_SETTINGS if k in os.environ}
        # The user's config file, found now: the scenarios run with a scratch HOME.
        self._env["MODAL_CONFIG_PATH"] = str(paths.modal_config_file())
        self._env["MODAL_APP_NAME"] = APP_NAME

    def env(self) -> dict[str, str]:
        return dict(self._env)

    def skip(self, scenario: Scenario) -> str | None:
        return None


def main(argv: list[str] | None = None) -> int:
    reason = credentials.missing_reason()
    if reason is not None:
        print(f"live-check: not run: {reason}")
        return 0
    target = LiveTarget()
    print(f"live-check against real Modal (app {APP_NAME}); costs real money and minutes")
    rows: list[Row] = []
    for scenario in SCENARIOS:
        row = run_scenario(scenario, target)
        print(row.line(), flush=True)
        rows.append(row)
    total = sum(r.cost_min for r in rows)
    print(f"total charged: {total:.3f} min")
    return 1 if any(r.status == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
