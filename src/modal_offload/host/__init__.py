"""The per-user session host: a warm background process that runs routed commands.

Split so that the thin client (`client.py`, `protocol.py`, `lifecycle.py`) imports only
the standard library; the host side (`server.py`, `runner.py`, `warm.py`, `watcher.py`)
may import anything. Issue #8.
"""
