"""Backends: see `_base.py` for the contract and the registry."""

from ._base import Backend, Process, Session, SessionInfo, SessionSpec, get_backend

__all__ = ["Backend", "Process", "Session", "SessionInfo", "SessionSpec", "get_backend"]
