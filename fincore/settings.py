"""Shared by both zones: helpers for settings objects built from the environment.

Components build a frozen settings dataclass in their `config.py` with these helpers, at start
time, never at import time. Backends are chosen by one URL per port whose scheme picks the
adapter from an allow-list (`choose_adapter`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or invalid. The message names the variable, never a secret value."""


def env_str(name: str, default: str | None = None, env: Mapping[str, str] | None = None) -> str:
    source = os.environ if env is None else env
    value = source.get(name)
    if value is None or value == "":
        if default is None:
            raise SettingsError(f"{name} is required")
        return default
    return value


def env_int(
    name: str,
    default: int,
    env: Mapping[str, str] | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    raw = env_str(name, str(default), env)
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer") from exc
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be <= {maximum}")
    return value


def env_float(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    raw = env_str(name, str(default), env)
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number") from exc


def env_bool(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    raw = env_str(name, "1" if default else "0", env).strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be a boolean (1/0, true/false)")


def env_list(name: str, default: str = "", env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    raw = env_str(name, default, env) if default or (env or os.environ).get(name) else ""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def var_dir(env: Mapping[str, str] | None = None) -> Path:
    """The folder that holds all local state (databases, keys, logs); git-ignored."""
    return Path(env_str("FINCORE_VAR_DIR", "var", env)).resolve()


def environment(env: Mapping[str, str] | None = None) -> str:
    value = env_str("FINCORE_ENV", "development", env)
    if value not in {"development", "test", "production"}:
        raise SettingsError("FINCORE_ENV must be development, test or production")
    return value


def is_production(env: Mapping[str, str] | None = None) -> bool:
    return environment(env) == "production"


def url_scheme(url: str) -> str:
    """A backend URL's scheme without its driver suffix (`postgresql+psycopg` -> `postgresql`)."""
    scheme = urlsplit(url).scheme.lower()
    return scheme.split("+", 1)[0]


def choose_adapter(setting: str, url: str, allowed: Mapping[str, Callable[[str], T]]) -> T:
    """Build the adapter for `url` from an allow-listed scheme map; refuse anything else."""
    scheme = url_scheme(url)
    factory = allowed.get(scheme)
    if factory is None:
        choices = ", ".join(sorted(allowed))
        raise SettingsError(
            f"{setting}: scheme {scheme!r} is not allowed (choose one of: {choices})"
        )
    return factory(url)


def refuse_dev_defaults_in_production(
    component: str, checks: Mapping[str, bool], env: Mapping[str, str] | None = None
) -> None:
    """In production, refuse to start when any named development default is in use."""
    if not is_production(env):
        return
    used = [name for name, in_use in checks.items() if in_use]
    if used:
        raise SettingsError(
            f"{component}: development defaults are not allowed in production: {', '.join(used)}"
        )
