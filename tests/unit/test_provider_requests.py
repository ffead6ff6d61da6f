"""What reaches each provider family, through LiteLLM's own request transformation (its
``get_optional_params`` and the provider's config, as ``litellm.completion`` runs them):
the completion limit the estimate reserves is the limit sent, and media reach the provider
only in the forms the one allow-list of URL-like fields permits, with no host name looked up
by this process. No server: the transformation is pure but for the lookups it would make."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before LiteLLM is imported

import litellm
import pytest
from litellm.llms.vertex_ai.gemini.transformation import transform_request_body
from litellm.types.utils import LlmProviders
from litellm.utils import ProviderConfigManager, get_optional_params

from shared.chat_request import ChatRequest, parse_chat_request
from shared.errors import ApiError
from shared.pricing.estimate import estimate
from shared.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
FAMILIES = {
    "openai/gpt-4o-mini": "openai",
    "openai/o4-mini": "openai reasoning",
    "anthropic/claude-sonnet-4-5": "anthropic",
    "gemini/gemini-2.5-flash": "gemini",
    "vertex_ai/gemini-2.5-flash": "vertex gemini",
    "vertex_ai/claude-sonnet-4-5": "vertex claude",
}
SETTINGS = Settings.from_env({"CHAT_MODELS": ",".join(FAMILIES), "CHAT_MAX_TOKENS": "4096"})
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PDF = "data:application/pdf;base64,JVBERi0xLjQK"


def parse(model: str, **body: Any) -> ChatRequest:
    body.setdefault("messages", [{"role": "user", "content": "hello"}])
    return parse_chat_request(json.dumps({"model": model, **body}).encode(), SETTINGS)


def provider_body(request: ChatRequest) -> dict[str, Any]:
    """The JSON body LiteLLM would send the provider for ``request``."""
    name, provider, _, _ = litellm.get_llm_provider(request.model)
    optional = get_optional_params(model=name, custom_llm_provider=provider, **request.params)
    messages = json.loads(json.dumps(request.messages))
    if name.startswith("gemini"):
        body = transform_request_body(
            messages=messages,
            model=name,
            optional_params=dict(optional),
            custom_llm_provider=provider,  # type: ignore[arg-type]
            litellm_params={},
            cached_content=None,
        )
        return dict(body)
    config = ProviderConfigManager.get_provider_chat_config(model=name, provider=LlmProviders(provider))
    assert config is not None
    return config.transform_request(
        model=name, messages=messages, optional_params=dict(optional), litellm_params={}, headers={}
    )


def sent_limit(body: dict[str, Any]) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        if key in body:
            return int(body[key])
    return int(body["generationConfig"]["max_output_tokens"])


@pytest.fixture
def resolved() -> Iterator[list[str]]:
    """Every host name looked up while the test runs (each lookup fails: nothing is reached)."""
    seen: list[str] = []

    def refuse(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(host))
        raise OSError(f"no lookups in this test: {host}")

    original = socket.getaddrinfo
    socket.getaddrinfo = refuse  # type: ignore[assignment]
    try:
        yield seen
    finally:
        socket.getaddrinfo = original  # type: ignore[assignment]


# --- the limit reserved is the limit sent -------------------------------------------------------


@pytest.mark.parametrize("model", FAMILIES)
@pytest.mark.parametrize("limit", [{"max_tokens": 300}, {"max_completion_tokens": 300}, {}])
def test_the_completion_limit_reserved_is_the_limit_the_provider_gets(model: str, limit: dict[str, int]) -> None:
    request = parse(model, **limit)
    assert sent_limit(provider_body(request)) == estimate(request).completion_tokens == (300 if limit else 4096)


@pytest.mark.parametrize("model", ["openai/o4-mini", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"])
def test_both_limits_are_refused_where_litellm_would_send_the_larger(model: str) -> None:
    # Seen: max_tokens 1 with max_completion_tokens 4096 reserved 1 while LiteLLM sent 4096.
    with pytest.raises(ApiError, match="not both"):
        parse(model, max_tokens=1, max_completion_tokens=4096)


def test_reasoning_effort_keeps_the_limit_sent() -> None:
    for model in ("openai/o4-mini", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"):
        request = parse(model, max_tokens=3000, reasoning_effort="low")
        assert sent_limit(provider_body(request)) == 3000, model


# --- what reaches the provider from a URL-like field --------------------------------------------


def user_part(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "look"}, part]}]


@pytest.mark.parametrize("model", [model for model in FAMILIES if model != "openai/o4-mini"])  # same as 4o-mini
def test_inline_images_and_files_reach_every_provider_inline_with_no_lookup(model: str, resolved: list[str]) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "file", "file": {"file_data": PDF}},
            ],
        }
    ]
    sent = json.dumps(provider_body(parse(model, messages=messages)))
    assert PNG.partition(",")[2] in sent and PDF.partition(",")[2] in sent
    assert "file_uri" not in sent and "gs://" not in sent
    assert resolved == []


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"])
def test_an_https_image_reaches_the_providers_that_fetch_it_themselves_as_a_url(
    model: str, resolved: list[str]
) -> None:
    url = "https://images.example.com/cat.png"
    sent = provider_body(parse(model, messages=user_part({"type": "image_url", "image_url": {"url": url}})))
    assert url in json.dumps(sent)
    assert resolved == []


@pytest.mark.parametrize(
    "model", ["gemini/gemini-2.5-flash", "vertex_ai/gemini-2.5-flash", "vertex_ai/claude-sonnet-4-5"]
)
def test_an_https_image_is_refused_where_litellm_would_download_it_here(model: str, resolved: list[str]) -> None:
    url = "https://images.example.com/cat.png"
    with pytest.raises(ApiError, match="must be inline") as raised:
        parse(model, messages=user_part({"type": "image_url", "image_url": {"url": url}}))
    assert raised.value.param == "messages[0].content"
    assert resolved == []


@pytest.mark.parametrize("model", FAMILIES)
@pytest.mark.parametrize(
    "part",
    [
        # Seen: LiteLLM turned gs:// into a Vertex file_uri, read with the function's service account.
        {"type": "file", "file": {"file_data": "gs://operator-bucket/payroll.pdf"}},
        {"type": "file", "file": {"file_data": "https://files.example.com/a.pdf"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;x=gs://operator-bucket/payroll.pdf;base64,AA"}},
        {"type": "file", "file": {"file_data": PDF, "file_url": "gs://operator-bucket/payroll.pdf"}},
        {"type": "image_url", "image_url": {"url": "gs://operator-bucket/payroll.png"}},
        {"type": "image_url", "image_url": {"url": "http://169.254.169.254/computeMetadata/v1/"}},
        {"type": "image_url", "image_url": {"url": "https://images.example.com/a.png#gs://operator-bucket/b.pdf"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,not base64!"}},
        {"type": "image_url", "image_url": {"url": PNG, "format": "application/pdf"}},
        {"type": "image_url", "image_url": {"url": PNG}, "mime_type": "application/pdf"},
    ],
)
def test_url_forms_outside_the_allow_list_are_refused_by_name(model: str, part: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as raised:
        parse(model, messages=user_part(part))
    assert raised.value.param == "messages[0].content"
