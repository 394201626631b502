"""Settings, the adaptive debounce and local feedback counting: plain functions and classes."""

import logging

import pytest

from completion.api import CompletionSettings
from lsp_server.config import ServerConfig, apply_initialization_options, apply_options, configuration_section
from lsp_server.debounce import Debouncer, DebounceRules
from lsp_server.feedback import Feedback


def test_initialization_options_apply_and_warn():
    config, warnings = apply_initialization_options(ServerConfig(), {
        "latencyBudgetMs": 80, "maxLines": 3, "enabledLanguages": ["python"], "backend": "torch",
        "modelPath": "/m", "logLevel": "DEBUG", "threads": 1, "debounceMs": 0, "completeAfterDeletion": True,
        "backgroundRefinement": False, "maxLInes": 2, "steps": 4, "tokensPerStep": 4, "minSteps": 2,
        "indentFromContext": False, "alternatives": 0,
    })
    assert config.settings.tokens_per_step == 4 and config.settings.min_steps == 2 and config.settings.alternatives == 0
    assert not config.settings.indent_from_context
    assert config.settings.latency_budget_ms == 80 and config.settings.max_lines == 3
    assert config.settings.enabled_languages == ["python"]
    assert (config.backend, config.model_dir, config.log_level, config.threads) == ("torch", "/m", "debug", 1)
    assert config.debounce_ms == 0 and config.complete_after_deletion and not config.background_refinement
    assert len(warnings) == 2 and all("unknown" in w for w in warnings)


def test_bad_options_keep_the_current_values():
    base = ServerConfig(settings=CompletionSettings(latency_budget_ms=150))
    config, warnings = apply_initialization_options(base, {"latencyBudgetMs": "fast", "maxLines": 0,
                                                           "enabledLanguages": "python", "logLevel": "loud",
                                                           "backend": "gpu-please", "debounceMs": -5,
                                                           "completeAfterDeletion": "yes", "tokensPerStep": 0.5,
                                                           "minSteps": 0, "indentFromContext": "no",
                                                           "alternatives": -1})
    assert config == base and len(warnings) == 11
    assert apply_initialization_options(base, None) == (base, [])
    assert apply_initialization_options(base, [1])[1]


def test_settings_layer_on_top_and_adaptive_debounce_comes_back():
    config, _ = apply_options(ServerConfig(), {"debounceMs": 120, "maxLines": 4}, "setting")
    config, warnings = apply_options(config, {"debounceMs": "adaptive"}, "setting")
    assert config.debounce_ms is None and config.settings.max_lines == 4 and not warnings
    assert apply_options(config, {"x": 1}, "setting")[1] == ["unknown setting 'x'"]


def test_engine_key_changes_only_with_model_backend_or_threads():
    base = ServerConfig()
    assert apply_options(base, {"latencyBudgetMs": 10})[0].engine_key == base.engine_key
    assert apply_options(base, {"backend": "torch"})[0].engine_key != base.engine_key
    assert apply_options(base, {"modelPath": "/m"})[0].engine_key != base.engine_key


@pytest.mark.parametrize(("settings", "section"), [
    ({"quicksilver": {"maxLines": 2}, "python": {}}, {"maxLines": 2}),
    ({"maxLines": 2}, {"maxLines": 2}),  # just our section, as some Neovim set-ups send it
    ({}, None), (None, None), ({"python": {"x": 1}}, None), ([1], None),
])
def test_configuration_section(settings, section):
    assert configuration_section(settings) == section


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def type_keys(debouncer: Debouncer, clock: FakeClock, interval_s: float, count: int) -> None:
    for _ in range(count):
        clock.now += interval_s
        debouncer.on_edit()


def test_debounce_defaults_until_enough_keystrokes():
    clock = FakeClock()
    debouncer = Debouncer(clock=clock)
    type_keys(debouncer, clock, 0.05, 5)
    assert debouncer.delay_ms() == 2.0 * 200  # default interval, no latency known yet


def test_debounce_follows_typing_speed_minus_latency_and_is_clamped():
    rules = DebounceRules()
    clock = FakeClock()
    fast, slow = Debouncer(rules, clock), Debouncer(rules, clock)
    type_keys(fast, clock, 0.08, 30)
    type_keys(slow, clock, 0.30, 30)
    assert fast.delay_ms() == pytest.approx(2.0 * 80) and slow.delay_ms() == pytest.approx(2.0 * 300)
    slow.observe_latency(100)
    assert slow.delay_ms() == pytest.approx(600 - 100)  # start earlier when the model is slow
    fast.observe_latency(1000)
    assert fast.delay_ms() == rules.min_ms
    type_keys(slow, clock, 5.0, 10)  # pauses are not typing speed
    assert slow.delay_ms() == pytest.approx(500)
    assert slow.delay_ms(fixed_ms=0) == 0 and slow.delay_ms(fixed_ms=75) == 75


def test_feedback_counts_once_per_suggestion_and_logs(caplog):
    clock = FakeClock()
    feedback = Feedback(keep=2, clock=clock)
    first = feedback.shown("file:///a.py", "inline", "return x")
    second = feedback.shown("file:///a.py", "completion", "y")
    clock.now = 1.5
    with caplog.at_level(logging.INFO, logger="quicksilver.feedback"):
        assert feedback.record(first, "accepted").chars == 8
        assert feedback.record(first, "dismissed") is None  # already settled
        feedback.record(second, "dismissed")
        feedback.record("qs-999", "accepted")
    assert feedback.counts == {"shown": 2, "accepted": 1, "dismissed": 1, "unknown": 2, "accepted_chars": 8}
    assert "accepted after 1.5 s" in caplog.text and "accept rate 50%" in caplog.text
    third = feedback.shown("u", "inline", "z")
    feedback.shown("u", "inline", "w")
    assert feedback.record(first, "accepted") is None and feedback.record(third, "accepted")  # only `keep` remembered
