"""The Modal backend: `modal.Sandbox` sessions. `import modal` happens only in here."""

from __future__ import annotations

from ..credentials import missing_reason
from ..errors import BackendUnavailable
from ._base import Backend, Session, SessionInfo, SessionSpec


class ModalBackend(Backend):
    name = "modal"

    def unavailable_reason(self) -> str | None:
        return missing_reason()

    def open_session(self, spec: SessionSpec) -> Session:
        raise BackendUnavailable("the Modal backend is not built yet", "use --backend local")

    def find_session(self, spec: SessionSpec) -> Session | None:
        return None

    def list_sessions(self, app_name: str) -> list[SessionInfo]:
        return []
