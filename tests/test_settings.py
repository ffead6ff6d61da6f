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
