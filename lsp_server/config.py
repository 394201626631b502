"""Server configuration: CLI defaults, then the client's initializationOptions, then its
`workspace/didChangeConfiguration` settings (section "quicksilver"), each applied on top."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from completion.api import CompletionSettings
from runtime.loader import BACKENDS

LOG_LEVELS = ("debug", "info", "warning", "error")
SECTION = "quicksilver"


@dataclass
class ServerConfig:
    model_dir: str | None = None  # None: the bundled models/default
    backend: str = "auto"
    threads: int | None = None
    log_level: str = "info"
    settings: CompletionSettings = field(default_factory=CompletionSettings)
    debounce_ms: float | None = None  # None: adaptive from the typing speed; 0: off
    complete_after_deletion: bool = False  # automatic requests right after a deletion get nothing
    background_refinement: bool = True  # keep refining after an answer, for the next request

    @property
    def engine_key(self) -> tuple:
        """What the loaded engine depends on: a change here means a reload."""
        return self.model_dir, self.backend, self.threads


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _backend(value: Any) -> bool:
    return value in BACKENDS


def _nonempty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _debounce(value: Any) -> bool:
    return value == "adaptive" or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0)


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


# option key (camelCase, as editors send JSON) -> (check, where it goes: "settings.<field>" or a ServerConfig field)
OPTIONS = {
    "latencyBudgetMs": (_positive_number, "settings.latency_budget_ms"),
    "maxLines": (_positive_int, "settings.max_lines"),
    "tokensPerStep": (lambda v: _positive_number(v) and v >= 1, "settings.tokens_per_step"),
    "minSteps": (_positive_int, "settings.min_steps"),
    "indentFromContext": (_bool, "settings.indent_from_context"),
    "alternatives": (_count, "settings.alternatives"),
    "enabledLanguages": (_string_list, "settings.enabled_languages"),
    "backend": (_backend, "backend"),
    "modelPath": (_nonempty_string, "model_dir"),
    "threads": (_positive_int, "threads"),
    "logLevel": (lambda v: isinstance(v, str) and v.lower() in LOG_LEVELS, "log_level"),
    "debounceMs": (_debounce, "debounce_ms"),
    "completeAfterDeletion": (_bool, "complete_after_deletion"),
    "backgroundRefinement": (_bool, "background_refinement"),
}


def _normalise(key: str, value: Any) -> Any:
    if key == "logLevel":
        return value.lower()
    if key == "debounceMs":
        return None if value == "adaptive" else float(value)
    return value


def apply_options(config: ServerConfig, options: Any, source: str = "initialization option",
                  ) -> tuple[ServerConfig, list[str]]:
    """A new config with the options applied, plus one warning per option ignored.

    Bad options are warnings, not errors: an editor with a stale setting should still get completions.
    Keys that are absent keep their current value.
    """
    if options is None:
        return config, []
    if not isinstance(options, dict):
        return config, [f"{source}s must be an object, got {type(options).__name__}"]
    top: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    warnings = []
    for key, value in options.items():
        if key not in OPTIONS:
            warnings.append(f"unknown {source} {key!r}")
            continue
        check, target = OPTIONS[key]
        if not check(value):
            warnings.append(f"ignoring {source} {key}={value!r}")
            continue
        if target.startswith("settings."):
            settings[target.removeprefix("settings.")] = _normalise(key, value)
        else:
            top[target] = _normalise(key, value)
    return replace(config, settings=replace(config.settings, **settings), **top), warnings


def apply_initialization_options(config: ServerConfig, options: Any) -> tuple[ServerConfig, list[str]]:
    return apply_options(config, options, "initialization option")


def configuration_section(settings: Any) -> Any:
    """Our part of a didChangeConfiguration payload.

    Clients send either every section ({"quicksilver": {...}, "python": {...}}) or, like some
    Neovim set-ups, just ours; None and {} mean "nothing to change".
    """
    if isinstance(settings, dict) and SECTION in settings:
        return settings[SECTION]
    if isinstance(settings, dict) and settings and all(key in OPTIONS for key in settings):
        return settings
    return None


def apply_log_level(level: str) -> None:
    """Our loggers follow the level; pygls logs every message at INFO, so it stays quieter unless debugging."""
    logging.getLogger("quicksilver").setLevel(level.upper())
    logging.getLogger("pygls").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
