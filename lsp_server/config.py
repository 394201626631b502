"""Server configuration: CLI defaults, overridden by the client's initializationOptions."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from completion.api import CompletionSettings
from runtime.loader import BACKENDS

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass
class ServerConfig:
    model_dir: str | None = None  # None: the bundled models/default
    backend: str = "auto"
    threads: int | None = None
    log_level: str = "info"
    settings: CompletionSettings = field(default_factory=CompletionSettings)


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _backend(value: Any) -> bool:
    return value in BACKENDS


def _nonempty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


# initializationOptions key -> (check, where it goes: "settings.<field>" or a ServerConfig field)
OPTIONS = {
    "latencyBudgetMs": (_positive_number, "settings.latency_budget_ms"),
    "maxLines": (_positive_int, "settings.max_lines"),
    "enabledLanguages": (_string_list, "settings.enabled_languages"),
    "backend": (_backend, "backend"),
    "modelPath": (_nonempty_string, "model_dir"),
    "logLevel": (lambda v: isinstance(v, str) and v.lower() in LOG_LEVELS, "log_level"),
}


def apply_initialization_options(config: ServerConfig, options: Any) -> tuple[ServerConfig, list[str]]:
    """A new config with the client's options applied, plus one warning per option ignored.

    Bad options are warnings, not errors: an editor with a stale setting should still get completions.
    """
    if options is None:
        return config, []
    if not isinstance(options, dict):
        return config, [f"initializationOptions must be an object, got {type(options).__name__}"]
    top: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    warnings = []
    for key, value in options.items():
        if key not in OPTIONS:
            warnings.append(f"unknown initialization option {key!r}")
            continue
        check, target = OPTIONS[key]
        if not check(value):
            warnings.append(f"ignoring initialization option {key}={value!r}")
            continue
        if key == "logLevel":
            value = value.lower()
        if target.startswith("settings."):
            settings[target.removeprefix("settings.")] = value
        else:
            top[target] = value
    return replace(config, settings=replace(config.settings, **settings), **top), warnings


def apply_log_level(level: str) -> None:
    """Our loggers follow the level; pygls logs every message at INFO, so it stays quieter unless debugging."""
    logging.getLogger("quicksilver").setLevel(level.upper())
    logging.getLogger("pygls").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
