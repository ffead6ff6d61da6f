"""Settings refused at start-up, read in this process (no server)."""

from __future__ import annotations

import pytest

from shared.settings import RefusedToStart, Settings, SettingsError


def test_charging_by_end_user_id_is_refused_by_name() -> None:
    # LiteLLM's default, but end_user_id only exists under the LiteLLM Proxy: here it billed the uid.
    with pytest.raises(SettingsError, match="LAGO_API_CHARGE_BY=end_user_id") as raised:
        Settings.from_env({"LAGO_API_CHARGE_BY": "end_user_id"})
    assert not isinstance(raised.value, RefusedToStart), "a 503 per request, not a crash loop"


@pytest.mark.parametrize("charge_by", ["user_id", "team_id"])
def test_charging_by_user_or_team_is_accepted(charge_by: str) -> None:
    assert Settings.from_env({"LAGO_API_CHARGE_BY": charge_by}).lago.charge_by == charge_by


def test_anonymous_access_on_a_deployed_instance_refuses_to_start() -> None:
    with pytest.raises(RefusedToStart, match="ALLOW_ANONYMOUS"):
        Settings.from_env({"ALLOW_ANONYMOUS": "true", "K_SERVICE": "chat", "CHAT_MAX_TOKENS": "abc"})


def test_a_malformed_value_is_a_settings_error_that_does_not_stop_the_process() -> None:
    with pytest.raises(SettingsError, match="CHAT_MAX_TOKENS") as raised:
        Settings.from_env({"CHAT_MAX_TOKENS": "abc"})
    assert not isinstance(raised.value, RefusedToStart)


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.chat_models == ("local/demo",) and settings.default_model == "local/demo"
    assert (settings.max_tokens, settings.max_body_bytes, settings.max_messages) == (4096, 262144, 200)
    assert (settings.llm_timeout_s, settings.usage_cache_s, settings.replay_batch_size) == (60.0, 10.0, 500)
    assert settings.outbox_enabled and not settings.require_billing and not settings.allow_anonymous
    assert settings.budget_cents is None and settings.cors_origins == ()
    assert not settings.lago.enabled
    assert settings.lago.missing == ("LAGO_API_BASE", "LAGO_API_KEY", "LAGO_API_EVENT_CODE")


def test_lists_are_comma_separated_and_trimmed_and_flags_take_the_usual_words() -> None:
    settings = Settings.from_env(
        {
            "CHAT_MODELS": " a/b , ,c/d ",
            "CORS_ORIGINS": "https://x.example",
            "CHAT_CHECK_REVOKED": "Yes",
            "BILLING_OUTBOX": "off",
        }
    )
    assert settings.chat_models == ("a/b", "c/d") and settings.default_model == "a/b"
    assert settings.cors_origins == ("https://x.example",)
    assert settings.check_revoked and not settings.outbox_enabled


def test_every_malformed_value_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "CHAT_MAX_TOKENS": "0",
                "CHAT_LLM_TIMEOUT_S": "9999",
                "BILLING_OUTBOX": "maybe",
                "CHAT_BUDGET_CENTS": "1.5",
            }
        )
    message = str(raised.value)
    for key in ("CHAT_MAX_TOKENS", "CHAT_LLM_TIMEOUT_S", "BILLING_OUTBOX", "CHAT_BUDGET_CENTS"):
        assert key in message


def test_lago_is_enabled_with_its_three_values_and_the_key_stays_out_of_the_repr() -> None:
    settings = Settings.from_env(
        {"LAGO_API_BASE": "https://lago.example/", "LAGO_API_KEY": "secret-key", "LAGO_API_EVENT_CODE": "llm"}
    )
    assert settings.lago.enabled and settings.lago.api_base == "https://lago.example"
    assert "secret-key" not in repr(settings)


def test_limits_are_off_unless_set_and_refuse_zero_by_name() -> None:
    settings = Settings.from_env({})
    assert (settings.rate_limit_rpm, settings.rate_limit_tpm, settings.max_concurrent) == (None, None, None)
    assert settings.project_budget_cents is None and settings.lago.read_timeout_s == 1.5
    with pytest.raises(SettingsError, match="CHAT_RATE_LIMIT_RPM must be at least 1"):
        Settings.from_env({"CHAT_RATE_LIMIT_RPM": "0"})
    limited = Settings.from_env({"CHAT_RATE_LIMIT_TPM": "9000", "CHAT_PROJECT_BUDGET_CENTS": "5000"})
    assert (limited.rate_limit_tpm, limited.project_budget_cents) == (9000, 5000)
