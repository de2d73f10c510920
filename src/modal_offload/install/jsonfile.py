"""Our entries in other programs' JSON(C) settings files: merged in, checked, taken out.

Byte-exact uninstall without trusting a re-serialiser: on the first edit we keep the file's
exact previous bytes (or the fact that it did not exist) plus the hash of what we wrote. If
the file is still exactly what we wrote, uninstall puts the old bytes back. If someone edited
it since, we cut out only our entries (restoring any value we had replaced) and leave the
rest of their edits alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import OffloadError
from ..fileio import atomic_write_text
from . import jsonc, userfile
from .blocks import Status

JPath = tuple[str, ...]
_MISSING: Any = {"__modal_offload_missing__": True}  # JSON-storable "there was no value"
RECORD_VERSION = 1


@dataclass(frozen=True)
class JsonSpec:
    path: Path
    values: Mapping[JPath, Any] = field(default_factory=dict)  # keys set to exact values
    items: Sequence[tuple[JPath, Any]] = ()  # list entries we add
    ours: Callable[[Any], bool] = lambda _item: False  # recognises our list entries


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _record_path(path: Path) -> Path:
    key = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:16]
    return paths.backups_dir() / "edits" / f"{path.name}.{key}.json"


def _load_record(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(_record_path(path).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if data.get("version") == RECORD_VERSION else None


def _get(data: Any, path: JPath) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return _MISSING
        data = data[key]
    return data


def _read(path: Path) -> tuple[bytes | None, str]:
    try:
        raw = userfile.target(path).read_bytes()
    except FileNotFoundError:
        return None, "{}\n"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OffloadError(f"{path} is not UTF-8 text", "left untouched") from None
    return raw, text if text.strip() else "{}\n"


def _parse(path: Path, text: str) -> Any:
    try:
        data = jsonc.loads(text)
    except jsonc.JsoncError as exc:
        raise OffloadError(f"cannot parse {path} ({exc.message})",
                           "left untouched; fix the file and rerun") from None
    if not isinstance(data, dict):
        raise OffloadError(f"{path} does not hold a JSON object", "left untouched")
    return data


def _created_prefix(data: Any, path: JPath) -> JPath | None:
    for depth in range(1, len(path) + 1):
        if _get(data, path[:depth]) is _MISSING:
            return path[:depth]
    return None


def install(spec: JsonSpec) -> bool:
    raw, text = _read(spec.path)
    data = _parse(spec.path, text)
    new, previous, created = text, {}, []
    for key, value in spec.values.items():
        current = _get(data, key)
        if current != value:
            previous[json.dumps(key)] = current
            prefix = _created_prefix(data, key)
            if prefix:
                created.append(list(prefix))
            new = jsonc.set_value(new, key, value)
    for list_path, item in spec.items:
        current = _get(jsonc.loads(new), list_path)
        if current is _MISSING:
            prefix = _created_prefix(data, list_path)
            created.append(list(prefix or list_path))
            current = []
        if not isinstance(current, list):
            raise OffloadError(f"{spec.path}: {'.'.join(list_path)} is not a list",
                               "left untouched")
        mine = [i for i, x in enumerate(current) if spec.ours(x)]
        if [current[i] for i in mine] == [item]:
            continue
        for index in reversed(mine):
            new = jsonc.remove_item(new, list_path, index)
        new = jsonc.append_item(new, list_path, item)
    if new == text and raw is not None:
        return False
    userfile.check_writable(spec.path)  # before the record: a refusal leaves no trace
    record = _load_record(spec.path)
    if record is None:
        record = {"version": RECORD_VERSION, "path": str(spec.path), "restorable": True,
                  "before": None if raw is None else base64.b64encode(raw).decode(),
                  "previous": {}, "created": []}
    elif raw is None or _sha(raw) != record.get("after"):
        record["restorable"] = False  # edited by someone since: only surgical removal is safe
    for dumped, value in previous.items():
        record["previous"].setdefault(dumped, value)
    record["created"] += [c for c in created if c not in record["created"]]
    data_out = new.encode("utf-8")
    record["after"] = _sha(data_out)
    atomic_write_text(_record_path(spec.path), json.dumps(record, indent=1))
    userfile.write(spec.path, data_out)
    return True


def check(spec: JsonSpec) -> tuple[Status, str]:
    raw, text = _read(spec.path)
    if raw is None:
        return Status.MISSING, "file absent"
    try:
        data = _parse(spec.path, text)
    except OffloadError as exc:
        return Status.FOREIGN, exc.message
    problems, present = [], 0
    for key, value in spec.values.items():
        current = _get(data, key)
        present += current is not _MISSING
        if current != value:
            problems.append(".".join(key))
    for list_path, item in spec.items:
        current = _get(data, list_path)
        mine = [x for x in current if spec.ours(x)] if isinstance(current, list) else []
        present += bool(mine)
        if mine != [item]:
            problems.append(".".join(list_path))
    if not problems:
        return Status.OK, ""
    if not present:
        return Status.MISSING, "our entries are absent"
    return Status.DRIFTED, "differs at " + ", ".join(problems)


def uninstall(spec: JsonSpec) -> bool:
    raw, text = _read(spec.path)
    record = _load_record(spec.path)
    if raw is None:
        _record_path(spec.path).unlink(missing_ok=True)
        return False
    if record and record.get("restorable") and _sha(raw) == record.get("after"):
        before = record.get("before")
        if before is None:
            userfile.remove(spec.path, b"{}\n")
        else:
            userfile.write(spec.path, base64.b64decode(before))
        _record_path(spec.path).unlink(missing_ok=True)
        return True
    data = _parse(spec.path, text)
    new = text
    for list_path, _item in spec.items:
        current = _get(jsonc.loads(new), list_path)
        if isinstance(current, list):
            for index in reversed([i for i, x in enumerate(current) if spec.ours(x)]):
                new = jsonc.remove_item(new, list_path, index)
    previous = (record or {}).get("previous", {})
    for key, value in spec.values.items():
        if _get(data, key) != value:
            continue  # changed by the user since: theirs now
        old = previous.get(json.dumps(key), _MISSING)
        new = jsonc.remove_key(new, key) if old == _MISSING else jsonc.set_value(new, key, old)
    for prefix in sorted((tuple(c) for c in (record or {}).get("created", [])),
                         key=len, reverse=True):
        if _get(jsonc.loads(new), prefix) in ({}, []):
            new = jsonc.remove_key(new, prefix)
    if record and record.get("before") is None and jsonc.loads(new) == {}:
        userfile.remove(spec.path, b"{}\n")
        _record_path(spec.path).unlink(missing_ok=True)
        return True
    if new != text:
        userfile.write(spec.path, new.encode("utf-8"))
    _record_path(spec.path).unlink(missing_ok=True)
    return new != text
