"""Settings: defaults < user config file < workspace `.modal-offload.toml` < env < flags.

Every value is validated where it enters, and a bad one names its source and the fix,
so a typo in an env var never silently lifts the budget cap.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from . import paths
from .errors import ConfigError
from .exec_args import BACKENDS  # the one list of backend names, shared with exec's parser
from .pricing import Prices

# run_heavy's modes (PRIMARY_MODAL_MODE, --mode): here so the CLI's parser offers them without
# importing heavy.py (~45 ms) on every command.
HEAVY_MODES = ("auto", "modal", "local")
NO_BUDGET_POLICIES = ("local", "refuse")
MISSING_PROGRAM_POLICIES = ("local", "refuse", "remote")
MAX_HEARTBEAT_SECONDS = 15.0
# Modal's own bounds: a sandbox `timeout` (and idle timeout) of up to 24 hours
# (https://modal.com/docs/guide/sandboxes); cpu and memory have an unpublished maximum that
# Modal enforces with InvalidError (https://modal.com/docs/guide/resources): 64 cores and
# 336 GiB is the reading the in-repo emulator enforces too (testing/modal_emulator/limits.py).
# Checked here so a bad setting is a one-line error before anything is created.
MAX_TIMEOUT_SECONDS = 24 * 3600
MAX_CPU = 64.0
MAX_MEMORY_MB = 336 * 1024


@dataclass(frozen=True)
class Settings:
    max_min_per_day: float = 180.0
    heavy_cpu: float = 6.0
    heavy_memory_mb: int = 14 * 1024
    exec_cpu: float = 6.0
    exec_memory_mb: int = 14 * 1024
    timeout_seconds: int = 3600
    idle_timeout_seconds: int = 300
    apt_packages: tuple[str, ...] = ()
    pip_packages: tuple[str, ...] = ()
    app_name: str = "modal-offload"
    backend: str = "modal"
    sync_back: bool = True
    sync_max_bytes: int = 50 * 1024 * 1024
    # Paths a sync may track (issue 21): the host keeps one manifest entry per path in
    # memory (~300 bytes each), so a tree past this is refused during its scan.
    sync_max_files: int = 250_000
    forward_env: tuple[str, ...] = ()
    when_no_budget: str = "local"
    heartbeat_seconds: float = MAX_HEARTBEAT_SECONDS
    heavy_entry: str = "primary_compute:do_heavy_stuff"
    local_only: tuple[str, ...] = ()
    remote_always: tuple[str, ...] = ()
    use_host: bool = True
    host_idle_seconds: int = 900
    gpu: str | None = None  # `TYPE[:N]` for every remote sandbox (`[resources] gpu`)
    max_usd_per_day: float | None = None  # an optional dollar cap beside the minutes cap
    price_cpu_core_second: float | None = None  # overrides of pricing.py's table
    price_gib_second: float | None = None
    price_gpu: Mapping[str, float] = field(default_factory=dict)
    # The remote image (issue 12, see image/spec.py): `[image]` in the config files.
    image_python: str = ""  # "" = the local interpreter's major.minor
    image_deps: tuple[str, ...] = ("auto",)  # "auto", "none", or workspace-relative files
    image_extras: tuple[str, ...] = ()  # optional-dependency groups (pyproject, uv.lock)
    image_groups: tuple[str, ...] = ()  # dependency groups (uv.lock, poetry.lock)
    image_commands: tuple[str, ...] = ()
    image_env: tuple[tuple[str, str], ...] = ()
    image_node: str = "auto"  # "auto" (when package.json exists), "yes", "no"
    when_missing_program: str = "local"
    protected: tuple[str, ...] = ()  # extra paths sync back never changes (issue 13)
    upload_secrets: tuple[str, ...] = ()  # secret-looking files allowed up, by name
    allow_home_workspace: bool = False  # a workspace root of $HOME or / may sync
    # Issue 19 (laptop networks): how long the reachability check may take before Modal
    # counts as unreachable; how long the session host then answers "offline" without asking
    # again; how long a remote command may stay out of reach before it is given up.
    reach_timeout_seconds: float = 1.5
    offline_seconds: float = 30.0
    resume_grace_seconds: float = 180.0
    open_timeout_seconds: float = 900.0  # opening a session, a first image build included
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


def _number(value: Any, *, integer: bool = False, minimum: float = 0.0,
            maximum: float = math.inf) -> float:
    if isinstance(value, bool):
        raise ValueError("is not a number")
    if isinstance(value, str):
        value = value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("is not a number") from None
    if math.isnan(number) or math.isinf(number):
        raise ValueError("is not a finite number")
    if number < minimum:
        raise ValueError(f"must be >= {minimum:g}")
    if number > maximum:
        raise ValueError(f"must be <= {maximum:g} (Modal's limit)")
    if integer and number != int(number):
        raise ValueError("must be a whole number")
    return number


def _float(minimum: float = 0.0, maximum: float = math.inf) -> Callable[[Any], float]:
    return lambda v: _number(v, minimum=minimum, maximum=maximum)


def _int(minimum: float = 0.0, maximum: float = math.inf) -> Callable[[Any], int]:
    return lambda v: int(_number(v, integer=True, minimum=minimum, maximum=maximum))


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false (1/0)")


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return tuple(str(value).replace(",", " ").split())


def _lines(value: Any) -> tuple[str, ...]:
    """A list (TOML) or newline-separated text (env): each entry kept whole, spaces and all."""
    listed = isinstance(value, (list, tuple))
    items = [str(v) for v in value] if listed else str(value).splitlines()
    return tuple(item.strip() for item in items if item.strip())


_ENV_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _env_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """A TOML table, or `K=V` entries one per line (env)."""
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for line in _lines(value):
            name, sep, val = line.partition("=")
            if not sep:
                raise ValueError(f"entry {line!r} is not NAME=VALUE")
            pairs.append((name.strip(), val))
    for name, _ in pairs:
        if not name or not set(name) <= _ENV_NAME or name[0].isdigit():
            raise ValueError(f"{name!r} is not a valid environment variable name")
    return tuple(sorted(pairs))


def _python_series(value: Any) -> str:
    text = str(value).strip()
    if text and not re.fullmatch(r"3\.\d{1,2}", text):
        raise ValueError("must be a Python series such as 3.12")
    return text


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip()
        if text not in options:
            raise ValueError(f"must be one of: {', '.join(options)}")
        return text

    return parse


def _heartbeat(value: Any) -> float:
    number = _number(value, minimum=0.05)
    if number > MAX_HEARTBEAT_SECONDS:
        raise ValueError(f"must be at most {MAX_HEARTBEAT_SECONDS:g} seconds")
    return number


def _gpu(value: Any) -> str | None:
    from .pricing import normalize_gpu

    return normalize_gpu(str(value))


def _optional_float(value: Any) -> float | None:
    if isinstance(value, str) and value.strip().lower() in ("", "none"):
        return None
    return _float()(value)


def _gpu_prices(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError("must be a table of GPU type = dollars per second")
    return {str(k).upper(): _float()(v) for k, v in value.items()}


# field -> (parser, env names in priority order); the original toolkit's names come first.
_SPEC: dict[str, tuple[Callable[[Any], Any], tuple[str, ...]]] = {
    "max_min_per_day": (_float(), ("PRIMARY_MODAL_MAX_MIN_PER_DAY",)),
    "heavy_cpu": (_float(0.125, MAX_CPU), ("PRIMARY_MODAL_CPU",)),
    "heavy_memory_mb": (_int(128, MAX_MEMORY_MB), ("PRIMARY_MODAL_MEMORY_MB",)),
    "exec_cpu": (_float(0.125, MAX_CPU), ("MODAL_CPU",)),
    "exec_memory_mb": (_int(128, MAX_MEMORY_MB), ("MODAL_MEMORY_MB",)),
    "timeout_seconds": (_int(1, MAX_TIMEOUT_SECONDS), ("MODAL_TIMEOUT_SECONDS",)),
    "idle_timeout_seconds": (_int(1, MAX_TIMEOUT_SECONDS), ("MODAL_OFFLOAD_IDLE_TIMEOUT",)),
    "apt_packages": (_words, ("MODAL_APT_PACKAGES",)),
    "pip_packages": (_words, ("MODAL_PIP_PACKAGES",)),
    "app_name": (lambda v: str(v).strip() or "modal-offload", ("MODAL_APP_NAME",)),
    "backend": (_choice(BACKENDS), ("MODAL_OFFLOAD_BACKEND",)),
    "sync_back": (_bool, ("MODAL_SYNC_BACK",)),
    "sync_max_bytes": (_int(0), ("MODAL_SYNC_MAX_BYTES",)),
    "sync_max_files": (_int(1), ("MODAL_OFFLOAD_SYNC_MAX_FILES",)),
    "forward_env": (_words, ("MODAL_OFFLOAD_FORWARD_ENV",)),
    "when_no_budget": (_choice(NO_BUDGET_POLICIES), ("MODAL_OFFLOAD_WHEN_NO_BUDGET",)),
    "heartbeat_seconds": (_heartbeat, ("MODAL_OFFLOAD_HEARTBEAT_SECONDS",)),
    "heavy_entry": (str, ("MODAL_OFFLOAD_HEAVY_ENTRY",)),
    "local_only": (_words, ("MODAL_OFFLOAD_LOCAL_ONLY",)),
    "remote_always": (_words, ("MODAL_OFFLOAD_REMOTE_ALWAYS",)),
    "use_host": (_bool, ("MODAL_OFFLOAD_HOST",)),
    "host_idle_seconds": (_int(1), ("MODAL_OFFLOAD_HOST_IDLE_SECONDS",)),
    "gpu": (_gpu, ("MODAL_OFFLOAD_GPU",)),
    "max_usd_per_day": (_optional_float, ("PRIMARY_MODAL_MAX_USD_PER_DAY",)),
    "price_cpu_core_second": (_optional_float, ()),
    "price_gib_second": (_optional_float, ()),
    "price_gpu": (_gpu_prices, ()),
    "image_python": (_python_series, ("MODAL_OFFLOAD_IMAGE_PYTHON",)),
    "image_deps": (_words, ("MODAL_OFFLOAD_IMAGE_DEPS",)),
    "image_extras": (_words, ("MODAL_OFFLOAD_IMAGE_EXTRAS",)),
    "image_groups": (_words, ("MODAL_OFFLOAD_IMAGE_GROUPS",)),
    "image_commands": (_lines, ("MODAL_OFFLOAD_IMAGE_COMMANDS",)),
    "image_env": (_env_pairs, ("MODAL_OFFLOAD_IMAGE_ENV",)),
    "image_node": (lambda v: _choice(("auto", "yes", "no"))(
        {True: "yes", False: "no"}.get(v, v) if isinstance(v, bool) else v),
        ("MODAL_OFFLOAD_IMAGE_NODE",)),
    "when_missing_program": (_choice(MISSING_PROGRAM_POLICIES),
                             ("MODAL_OFFLOAD_WHEN_MISSING_PROGRAM",)),
    "protected": (_words, ("MODAL_OFFLOAD_PROTECTED",)),
    "upload_secrets": (_words, ("MODAL_OFFLOAD_UPLOAD_SECRETS",)),
    "allow_home_workspace": (_bool, ("MODAL_OFFLOAD_ALLOW_HOME_WORKSPACE",)),
    "reach_timeout_seconds": (_float(0.05, 60), ("MODAL_OFFLOAD_REACH_TIMEOUT",)),
    "offline_seconds": (_float(0, 3600), ("MODAL_OFFLOAD_OFFLINE_SECONDS",)),
    "resume_grace_seconds": (_float(0, 24 * 3600), ("MODAL_OFFLOAD_RESUME_GRACE",)),
    "open_timeout_seconds": (_float(1, 24 * 3600), ("MODAL_OFFLOAD_OPEN_TIMEOUT",)),
}

# Friendlier spellings accepted in TOML files.
_TOML_ALIASES: dict[str, str] = {
    "routing.local_only": "local_only", "routing.remote": "remote_always",
    "routing.when_missing_program": "when_missing_program",
    "image.apt": "apt_packages", "image.pip": "pip_packages", "image.python": "image_python",
    "image.deps": "image_deps", "image.extras": "image_extras", "image.groups": "image_groups",
    "image.commands": "image_commands", "image.env": "image_env", "image.node": "image_node",
    "resources.gpu": "gpu", "prices.cpu_core_second": "price_cpu_core_second",
    "prices.gib_second": "price_gib_second", "prices.gpu": "price_gpu",
}


def _parse_toml(raw: bytes) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    data: dict[str, Any] = tomllib.loads(raw.decode())  # what tomllib.load does with a file
    return data


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        # Blank (the usual workspace marker) is an empty document: the parser, ~2.5 ms to
        # import, loads only for a file with something in it (issue 17).
        data = _parse_toml(raw) if raw.strip(b" \t\n") else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # TOMLDecodeError and UnicodeDecodeError included
        raise ConfigError(f"cannot read {path} ({exc})", "fix or remove the file") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                dotted = f"{key}.{sub}"
                flat[_TOML_ALIASES.get(dotted, str(sub))] = subvalue
        else:
            flat[key] = value
    unknown = sorted(set(flat) - set(_SPEC))
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting(s) {', '.join(unknown)}",
            f"known settings are: {', '.join(sorted(_SPEC))}",
        )
    return flat


def _apply(values: dict[str, Any], layer: Mapping[str, Any], source: str,
           sources: dict[str, str]) -> None:
    for name, raw in layer.items():
        if raw is None:
            continue
        parser, _ = _SPEC[name]
        try:
            values[name] = parser(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {name}={raw!r} {exc}", "fix the value") from None
        sources[name] = source


def _check_workspace_layer(layer: Mapping[str, Any], ws_file: Path, user: Mapping[str, Any],
                           user_file: Path, env: Mapping[str, str]) -> None:
    """A workspace file may come from anyone (a cloned repository, an unpacked archive), so
    it cannot widen what leaves this laptop or lift the user's cap (issue 13, red team):
    no raising `max_min_per_day` above the user's own (config or default), no naming a
    secret-looking variable in `forward_env` (globs are fine: they never forward one), no
    `upload_secrets`. Those go in the user config or the environment."""
    from .remote_env import looks_secret

    where = f"set it in {user_file} or the environment instead"
    if "max_min_per_day" in layer:
        own = user.get("max_min_per_day", Settings.max_min_per_day)
        try:
            wanted = _SPEC["max_min_per_day"][0](layer["max_min_per_day"])
        except ValueError:
            wanted = own  # _apply reports the bad value
        if wanted > own:
            raise ConfigError(f"{ws_file}: max_min_per_day={wanted:g} is above your own cap "
                              f"({own:g}); a workspace file may only lower it",
                              f"{where} (PRIMARY_MODAL_MAX_MIN_PER_DAY)")
    if layer.get("upload_secrets"):
        raise ConfigError(f"{ws_file}: upload_secrets cannot be set by a workspace file, which "
                          "may come from anyone", f"{where} (MODAL_OFFLOAD_UPLOAD_SECRETS)")
    try:
        named = _words(layer.get("forward_env", ()))
    except ValueError:
        named = ()
    secret = [n for n in named if not any(c in n for c in "*?[")
              and looks_secret(n, env.get(n, ""))]
    if secret:
        raise ConfigError(f"{ws_file}: forward_env names secret-looking {', '.join(secret)}, "
                          "which a workspace file (it may come from anyone) cannot forward",
                          f"{where} (MODAL_OFFLOAD_FORWARD_ENV)")


def load(workspace: Path | None = None, overrides: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    user_file = paths.user_config_file()
    _apply(values, _read_toml(user_file), str(user_file), sources)
    if workspace is not None:
        ws_file = workspace / paths.WORKSPACE_CONFIG_NAME
        layer = _read_toml(ws_file)
        _check_workspace_layer(layer, ws_file, values, user_file, env)
        _apply(values, layer, str(ws_file), sources)
    for name, (parser, env_names) in _SPEC.items():
        for env_name in env_names:
            if env_name in env:
                raw = env[env_name]
                try:
                    values[name] = parser(raw)
                except ValueError as exc:
                    raise ConfigError(
                        f"{env_name}={raw!r} {exc}", f"fix or unset {env_name}"
                    ) from None
                sources[name] = f"env {env_name}"
                break
    _apply(values, dict(overrides or {}), "command line", sources)
    return replace(Settings(), **values, sources=sources)


def setting_names() -> list[str]:
    return [f.name for f in fields(Settings) if f.name != "sources"]


def prices(settings: Settings) -> Prices:
    """The price table with this configuration's overrides (pricing.py)."""
    return Prices().with_overrides(settings.price_cpu_core_second, settings.price_gib_second,
                                   settings.price_gpu)
