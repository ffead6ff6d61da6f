"""Gemini's ``generateContent`` / ``streamGenerateContent``, on AI Studio and on Vertex AI.

As documented (https://ai.google.dev/api/generate-content, https://ai.google.dev/gemini-api/docs/
thinking, /caching; https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest/v1/
projects.locations.publishers.models/generateContent):

- AI Studio: ``POST /v1beta/models/MODEL:generateContent`` (or ``v1``), the API key in
  ``x-goog-api-key`` or ``?key=``: none is 403 ``PERMISSION_DENIED``, a wrong one 400
  ``API_KEY_INVALID``. ``GEMINI_API_BASE`` is ``base_url`` (LiteLLM appends ``models/...``).
- Vertex AI: ``POST /v1/projects/P/locations/L/publishers/google/models/MODEL:generateContent``
  with ``Authorization: Bearer`` an OAuth access token that ``FakeGoogleOAuth`` issued (else 401
  ``UNAUTHENTICATED``), for the ``cloud-platform`` scope, of a service account of project P (else
  403 ``PERMISSION_DENIED``, as without ``roles/aiplatform.user`` there). ``VERTEXAI_API_BASE``
  is ``url``: LiteLLM appends the whole path.
- ``:streamGenerateContent?alt=sse``: ``data: {GenerateContentResponse}`` events, each with the
  usage so far; the last carries ``finishReason``.
- Body: ``contents`` required; an unknown field is 400 ``Invalid JSON payload received. Unknown
  name "NAME"``; camelCase or snake_case names (protobuf JSON takes both).
- ``usageMetadata``: ``promptTokenCount`` includes ``cachedContentTokenCount``;
  ``candidatesTokenCount`` excludes ``thoughtsTokenCount`` (both billed as output);
  ``totalTokenCount`` is their sum. Thought parts (``"thought": true``) are returned only with
  ``thinkingConfig.includeThoughts``; thinking counts against ``maxOutputTokens``.

Directives and token counts: ``llm_wire`` (``#cached:N`` for cache hits, ``#think:N``); the model
thinks when ``thinkingConfig`` asks (a budget other than 0, ``includeThoughts`` or a level) or the
prompt says ``#think``. An inline or file part counts 258 tokens (an image, by Gemini's docs).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
import uuid
from typing import Any

from .google_oauth import CLOUD_PLATFORM, FakeGoogleOAuth
from .http_server import Request, StandIn, StandInServer
from .llm_wire import Call, ChunkedStream, Recorder, answer_words, directives, thinking_words, words

API_KEY = "AIza-test-provider-secret-do-not-log"
DEFAULT_THINKING_WORDS = 24
MEDIA_PART_TOKENS = 258

_METHOD = r":(?P<method>generateContent|streamGenerateContent)"
STUDIO_ROUTE = r"/(?P<version>v1beta|v1)/models/(?P<model>[^/:]+)" + _METHOD
VERTEX_ROUTE = (
    r"/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google/models/(?P<model>[^/:]+)" + _METHOD
)
KNOWN_FIELDS = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "safetySettings", "generationConfig", "cachedContent"}
)
VERTEX_ONLY_FIELDS = frozenset({"labels"})
_CAMEL = re.compile(r"_([a-z])")


def _camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def _parts_text(parts: Any) -> tuple[str, int]:
    """The words of the text parts, and how many media parts there are."""
    text, media = [], 0
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            text.append(part["text"])
        elif any(key in part for key in ("inlineData", "inline_data", "fileData", "file_data")):
            media += 1
    return " ".join(text), media


def prompt_tokens(body: dict[str, Any]) -> int:
    """System words, plus each content's words and 3, plus 258 per media part."""
    system = body.get("systemInstruction") or body.get("system_instruction") or {}
    text, media = _parts_text(system.get("parts") if isinstance(system, dict) else None)
    total = words(text) + media * MEDIA_PART_TOKENS
    for content in body.get("contents") or []:
        text, media = _parts_text(content.get("parts") if isinstance(content, dict) else None)
        total += words(text) + 3 + media * MEDIA_PART_TOKENS
    return total


class FakeGemini(StandIn):
    """One server for both APIs: AI Studio's routes take the API key, Vertex AI's a token of ``oauth``."""

    def __init__(self, oauth: FakeGoogleOAuth | None = None, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.oauth = oauth
        self.recorder = Recorder()
        self.server = StandInServer([("POST", STUDIO_ROUTE, self._studio), ("POST", VERTEX_ROUTE, self._vertex)])

    @property
    def calls(self) -> list[Call]:
        return self.recorder.calls

    def calls_with(self, marker: str) -> list[Call]:
        return self.recorder.calls_with(marker)

    @property
    def studio_base(self) -> str:
        """``GEMINI_API_BASE``: LiteLLM appends ``models/MODEL:METHOD``."""
        return f"{self.server.url}/v1beta"

    # --- auth ----------------------------------------------------------------------------------
    def _record(self, request: Request) -> Call:
        """Every request is kept, refused or not (``caller`` stays empty when refused)."""
        try:
            raw = request.json()
        except ValueError:
            raw = None
        stream = request.params["method"] == "streamGenerateContent"
        return self.recorder.record(Call(request.path, raw if isinstance(raw, dict) else {}, stream))

    def _studio(self, request: Request) -> None:
        call = self._record(request)
        key = request.headers.get("x-goog-api-key") or _query(request.query).get("key")
        if not key:
            message = (
                "Method doesn't allow unregistered callers (callers without established identity)."
                " Please use API Key or other form of API consumer identity to call this API."
            )
            return _error(request, 403, "PERMISSION_DENIED", message)
        if key != self.api_key:
            return _error(request, 400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        call.caller = "api-key"
        self._generate(request, call)
        return None

    def _vertex(self, request: Request) -> None:
        call = self._record(request)
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        identity = self.oauth.identity(token) if self.oauth is not None and scheme == "Bearer" else None
        if identity is None:
            message = (
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie"
                " or other valid authentication credential."
            )
            return _error(request, 401, "UNAUTHENTICATED", message)
        if CLOUD_PLATFORM not in identity.scopes:
            return _error(request, 403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.")
        params = request.params
        if identity.project_id != params["project"]:
            resource = (
                f"//aiplatform.googleapis.com/projects/{params['project']}/locations/{params['location']}"
                f"/publishers/google/models/{params['model']}"
            )
            message = (
                f"Permission 'aiplatform.endpoints.predict' denied on resource '{resource}' (or it may not exist)."
            )
            return _error(request, 403, "PERMISSION_DENIED", message)
        call.caller = identity.email
        self._generate(request, call)
        return None

    # --- generateContent ---------------------------------------------------------------------
    def _generate(self, request: Request, call: Call) -> None:
        vertex = call.caller != "api-key"
        try:
            raw = request.json()
        except ValueError:
            return _error(request, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        body = {_camel(k): v for k, v in raw.items()} if isinstance(raw, dict) else {}
        stream = call.stream
        known = KNOWN_FIELDS | (VERTEX_ONLY_FIELDS if vertex else frozenset())
        unknown = next((key for key in body if key not in known), None)
        if unknown is not None:
            message = f'Invalid JSON payload received. Unknown name "{unknown}": Cannot find field.'
            return _error(request, 400, "INVALID_ARGUMENT", message)
        if not body.get("contents"):
            return _error(
                request, 400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified"
            )
        config = {_camel(k): v for k, v in (body.get("generationConfig") or {}).items()}
        thinking = {_camel(k): v for k, v in (config.get("thinkingConfig") or {}).items()}
        last_user = next(
            (_parts_text(c.get("parts"))[0] for c in reversed(body["contents"]) if c.get("role", "user") == "user"), ""
        )
        said = directives(last_user)
        if "status" in said:
            status = said["status"]
            return _error(request, status, _STATUS.get(status, "UNKNOWN"), "stand-in error")
        prompt = prompt_tokens(body)
        cached = said.get("cached", 0)
        if cached > prompt:
            return _error(request, 400, "INVALID_ARGUMENT", f"stand-in: #cached:{cached} exceeds the prompt's {prompt}")
        thinks = (
            "think" in said
            or thinking.get("thinkingBudget", 0) != 0
            or bool(thinking.get("includeThoughts") or thinking.get("thinkingLevel"))
        )
        wanted_thoughts = said.get("think", DEFAULT_THINKING_WORDS) if thinks else 0
        wanted_text = said.get("words", 8)
        limit = config.get("maxOutputTokens")
        limit = limit if isinstance(limit, int) and limit > 0 else wanted_thoughts + wanted_text
        thoughts = min(wanted_thoughts, limit)
        text = min(wanted_text, limit - thoughts)
        finish = "MAX_TOKENS" if thoughts + text < wanted_thoughts + wanted_text else "STOP"
        answer = _Answer(
            model=request.params["model"],
            vertex=vertex,
            prompt=prompt,
            cached=cached,
            thoughts=thinking_words(thoughts),
            text=answer_words(text),
            show_thoughts=bool(thinking.get("includeThoughts")),
            finish=finish,
        )
        if stream:
            self._stream(request, call, answer, said)
            return None
        body_out = answer.response(answer.parts(answer.thoughts, answer.text), len(answer.text), finish)
        call.usage, call.completed = body_out["usageMetadata"], True
        request.send_json(200, body_out)
        return None

    def _stream(self, request: Request, call: Call, answer: _Answer, said: dict[str, int]) -> None:
        stream = ChunkedStream(request)

        def send(payload: dict[str, Any]) -> None:
            call.usage = payload["usageMetadata"]
            stream.write(f"data: {json.dumps(payload)}\r\n\r\n".encode())

        if answer.show_thoughts and answer.thoughts:
            for position, _ in enumerate(answer.thoughts):
                piece = answer.thoughts[position : position + 1]
                send(answer.response(answer.parts(piece, [], spaced=position < len(answer.thoughts) - 1), 0, None))
        for position in range(len(answer.text)):
            if said.get("cut") == position:
                stream.cut()
                return
            last = position == len(answer.text) - 1
            piece = answer.text[position : position + 1]
            send(
                answer.response(answer.parts([], piece, spaced=not last), position + 1, answer.finish if last else None)
            )
        if not answer.text:
            send(answer.response([{"text": ""}], 0, answer.finish))
        stream.end()
        call.completed = True


class _Answer:
    """One answer's words and usage, shaped as AI Studio or Vertex AI shape it."""

    def __init__(
        self,
        *,
        model: str,
        vertex: bool,
        prompt: int,
        cached: int,
        thoughts: list[str],
        text: list[str],
        show_thoughts: bool,
        finish: str,
    ) -> None:
        self.model, self.vertex, self.prompt, self.cached = model, vertex, prompt, cached
        self.thoughts, self.text, self.show_thoughts, self.finish = thoughts, text, show_thoughts, finish
        self.response_id = uuid.uuid4().hex[:22]
        self.created = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")

    def parts(self, thoughts: list[str], text: list[str], spaced: bool = False) -> list[dict[str, Any]]:
        tail = " " if spaced else ""
        parts: list[dict[str, Any]] = []
        if thoughts and self.show_thoughts:
            parts.append({"text": " ".join(thoughts) + tail, "thought": True})
        if text:
            parts.append({"text": " ".join(text) + tail})
        return parts

    def usage(self, candidates: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "promptTokenCount": self.prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": self.prompt + candidates + len(self.thoughts),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt}],
        }
        if self.cached:
            usage["cachedContentTokenCount"] = self.cached
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": self.cached}]
        if self.thoughts:
            usage["thoughtsTokenCount"] = len(self.thoughts)
        if self.vertex:
            usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": candidates}]
            usage["trafficType"] = "ON_DEMAND"
        return usage

    def response(self, parts: list[dict[str, Any]], candidates: int, finish: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
        body: dict[str, Any] = {
            "candidates": [candidate],
            "usageMetadata": self.usage(candidates),
            "modelVersion": self.model,
            "responseId": self.response_id,
        }
        if self.vertex:
            body["createTime"] = self.created
        return body


_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _query(query: str) -> dict[str, str]:
    return {key: values[0] for key, values in urllib.parse.parse_qs(query).items()}


def _error(request: Request, status: int, kind: str, message: str) -> None:
    request.send_json(status, {"error": {"code": status, "message": message, "status": kind}})
