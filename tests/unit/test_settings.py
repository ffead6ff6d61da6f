"""Settings from the environment, read in this process (no server); the cold-start effects are
in the server tests."""

from __future__ import annotations

import pytest

from shared.pricing.model_prices import ModelPrice, parse_model_prices
from shared.settings import USER_CHANGEABLE_CLAIMS, RefusedToStart, Settings, SettingsError, is_deployed


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


DEPLOYED = {"K_SERVICE": "chat", "GOOGLE_CLOUD_PROJECT": "p"}
EMULATED = {**DEPLOYED, "FUNCTIONS_EMULATOR": "true", "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099"}


def test_deployed_instance_requires_billing_by_default() -> None:
    assert Settings.from_env(DEPLOYED).require_billing is True


def test_explicit_false_opts_a_deployed_instance_out_of_required_billing() -> None:
    assert Settings.from_env({**DEPLOYED, "CHAT_REQUIRE_BILLING": "false"}).require_billing is False


def test_local_instance_does_not_require_billing_by_default() -> None:
    assert Settings.from_env({}).require_billing is False


def test_functions_emulator_flag_alone_is_not_local() -> None:
    assert is_deployed({**DEPLOYED, "FUNCTIONS_EMULATOR": "true"})
    assert is_deployed({**DEPLOYED, "FUNCTIONS_EMULATOR": "true", "FIREBASE_AUTH_EMULATOR_HOST": "10.0.0.7:9099"})


@pytest.mark.parametrize("auth_host", ["127.0.0.1:9099", "localhost:9099", "[::1]:9099"])
def test_functions_emulator_with_a_loopback_auth_emulator_is_local(auth_host: str) -> None:
    env = {**DEPLOYED, "FUNCTIONS_EMULATOR": "true", "FIREBASE_AUTH_EMULATOR_HOST": auth_host}
    assert not is_deployed(env)
    assert Settings.from_env(env).deployed is False


@pytest.mark.parametrize(
    "variable", ["FIREBASE_AUTH_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "SECRET_MANAGER_EMULATOR_HOST"]
)
def test_deployed_instance_refuses_to_start_with_an_emulator_host(variable: str) -> None:
    with pytest.raises(RefusedToStart, match=variable):
        Settings.from_env({**DEPLOYED, variable: "127.0.0.1:1"})


def test_emulator_hosts_are_fine_under_the_functions_emulator() -> None:
    assert Settings.from_env({**EMULATED, "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8080"}).deployed is False


@pytest.mark.parametrize("claim", USER_CHANGEABLE_CLAIMS)
def test_team_claim_refuses_claims_a_user_can_change(claim: str) -> None:
    with pytest.raises(SettingsError, match="LAGO_TEAM_CLAIM") as raised:
        Settings.from_env({"LAGO_API_CHARGE_BY": "team_id", "LAGO_TEAM_CLAIM": claim})
    assert not isinstance(raised.value, RefusedToStart), "the instance starts and answers 503, naming the key"


def test_team_claim_accepts_a_custom_claim() -> None:
    assert Settings.from_env({"LAGO_TEAM_CLAIM": "org"}).lago.team_claim == "org"


def test_model_prices_parse_litellm_per_token_keys() -> None:
    raw = '{"openai/ft": {"input_cost_per_token": 3e-07, "output_cost_per_token": 1.2e-06}, "x/y": {"input_cost_per_token": 0, "output_cost_per_token": 1}}'
    prices = Settings.from_env({"CHAT_MODEL_PRICES": raw}).model_prices
    assert dict(prices) == {"openai/ft": ModelPrice(3e-07, 1.2e-06), "x/y": ModelPrice(0.0, 1.0)}


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        '{"m": 1}',
        '{"m": {"input_cost_per_token": 1e-6}}',
        '{"m": {"input_cost_per_token": -1, "output_cost_per_token": 1}}',
        '{"m": {"input_cost_per_token": "1", "output_cost_per_token": 1}}',
        '{"m": {"input_cost_per_token": true, "output_cost_per_token": 1}}',
        '{"m": {"input_cost_per_token": 0, "output_cost_per_token": 0}}',
        '{"m": {"input_cost_per_token": 1, "output_cost_per_token": 1, "extra": 2}}',
        '{"m": {"input_cost_per_token": 1e999, "output_cost_per_token": 1}}',
    ],
)
def test_malformed_model_prices_are_named(raw: str) -> None:
    prices, errors = parse_model_prices(raw)
    assert dict(prices) == {} and len(errors) == 1 and errors[0].startswith("CHAT_MODEL_PRICES")
    with pytest.raises(SettingsError, match="CHAT_MODEL_PRICES"):
        Settings.from_env({"CHAT_MODEL_PRICES": raw})


@pytest.mark.parametrize(
    ("env", "required"),
    [
        ({}, False),
        ({"CHAT_BUDGET_CENTS": "100"}, True),
        ({"CHAT_NEW_ACCOUNT_BUDGET_CENTS": "10"}, True),
        ({"CHAT_PROJECT_BUDGET_CENTS": "10000"}, True),
        ({"LAGO_BILLS_COST": "true"}, True),
    ],
)
def test_prices_are_required_when_a_budget_or_the_metric_uses_the_cost(env: dict[str, str], required: bool) -> None:
    assert Settings.from_env(env).prices_required is required


def test_unpriced_models_are_those_litellm_would_bill_at_zero_until_priced() -> None:
    from shared.pricing.model_prices import register_prices, unpriced_models

    model = "openai/not-in-cost-map-settings-test"
    assert unpriced_models(("openai/gpt-4o-mini", model)) == (model,)
    register_prices({model: ModelPrice(1e-6, 2e-6)})
    assert unpriced_models(("openai/gpt-4o-mini", model)) == ()


def test_limits_are_off_unless_set_and_refuse_zero_by_name() -> None:
    settings = Settings.from_env({})
    assert (settings.rate_limit_rpm, settings.rate_limit_tpm, settings.max_concurrent) == (None, None, None)
    assert settings.project_budget_cents is None and settings.lago.read_timeout_s == 1.5
    with pytest.raises(SettingsError, match="CHAT_RATE_LIMIT_RPM must be at least 1"):
        Settings.from_env({"CHAT_RATE_LIMIT_RPM": "0"})
    limited = Settings.from_env({"CHAT_RATE_LIMIT_TPM": "9000", "CHAT_PROJECT_BUDGET_CENTS": "5000"})
    assert (limited.rate_limit_tpm, limited.project_budget_cents) == (9000, 5000)
