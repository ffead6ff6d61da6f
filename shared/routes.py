"""The endpoints: each route reads its request, calls one engine, and writes its response.

Routes are HTTP in, HTTP out; the plumbing around them (routing tables, CORS, errors as JSON)
is ``serving.py``, the work below them is the engines (``chat``, ``replay``).
"""

from __future__ import annotations

import time

import flask

from .app_check import APP_CHECK_HEADER
from .chat_request import parse_chat_request
from .errors import REQUEST_ID_HEADER, ApiError, ErrorCode
from .instance import Instance
from .invoker import verify_invoker
from .logs import log
from .replay import drain_outbox
from .responses_api import parse_responses_request, response_body, response_events
from .serving import ANY_REST, Routes, json_response, labelled_stream, read_body

CHAT_PATH_SUFFIX = "/v1/chat/completions"
RESPONSES_PATH_SUFFIX = "/v1/responses"
MODELS_PATH_SUFFIX = "/v1/models"
# Models have no release date here; ``created`` is when this instance started (OpenAI's field).
_STARTED = int(time.time())


def chat_completions(request: flask.Request, instance: Instance) -> flask.Response:
    """``POST .../v1/chat/completions``: a JSON completion, or its server-sent events."""
    settings = instance.settings
    # The token first: an anonymous sender's body is never waited for.
    caller = instance.verifier.verify_authorization(request.headers.get("Authorization"))
    instance.sign_in.check(caller)
    raw = read_body(request, settings.max_body_bytes)
    chat_request = parse_chat_request(raw, settings)
    instance.app_check.check(request.headers.get(APP_CHECK_HEADER), chat_request.model)
    if not chat_request.stream:
        answer = instance.chat.complete(chat_request, caller)
        response = json_response(answer.body)
        response.headers.update(answer.headers)
        response.headers[REQUEST_ID_HEADER] = answer.body["id"]
        return response
    stream = instance.chat.stream(chat_request, caller)
    return flask.Response(
        labelled_stream(stream.lines, request.headers.get("X-Cloud-Trace-Context"), settings.project_id),
        mimetype="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            REQUEST_ID_HEADER: stream.call_id,
            **stream.headers,
        },
    )


def responses(request: flask.Request, instance: Instance) -> flask.Response:
    """``POST .../v1/responses``: the Responses API, served as a chat completion (the same checks,
    policy, budgets, limits and billing) and answered as a ``response`` or its named events."""
    settings = instance.settings
    caller = instance.verifier.verify_authorization(request.headers.get("Authorization"))
    instance.sign_in.check(caller)
    raw = read_body(request, settings.max_body_bytes)
    responses_request = parse_responses_request(raw, settings)
    instance.app_check.check(request.headers.get(APP_CHECK_HEADER), responses_request.chat.model)
    if not responses_request.chat.stream:
        answer = instance.chat.complete(responses_request.chat, caller)
        response = json_response(response_body(answer.body, responses_request))
        response.headers.update(answer.headers)
        response.headers[REQUEST_ID_HEADER] = answer.body["id"]
        return response
    stream = instance.chat.stream(responses_request.chat, caller)
    events = response_events(stream.lines, stream.call_id, responses_request)
    return flask.Response(
        labelled_stream(events, request.headers.get("X-Cloud-Trace-Context"), settings.project_id),
        mimetype="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            REQUEST_ID_HEADER: stream.call_id,
            **stream.headers,
        },
    )


def _model_entry(model_id: str, model: str, instance: Instance) -> dict[str, object]:
    return {
        "id": model_id,
        "object": "model",
        "created": _STARTED,
        "owned_by": model.partition("/")[0] if "/" in model else "system",
        # The page sends these models a fresh limited-use App Check token: the server consumes it.
        **({"limited_use_app_check": True} if model in instance.settings.app_check.consume_models else {}),
    }


def list_models(request: flask.Request, instance: Instance) -> flask.Response:
    """``GET .../v1/models``: the ids ``CHAT_MODELS`` lists (public ids where given), the default
    first, in OpenAI's list shape."""
    instance.sign_in.check(instance.verifier.verify_authorization(request.headers.get("Authorization")))
    instance.app_check.check(request.headers.get(APP_CHECK_HEADER))
    data = [_model_entry(model_id, model, instance) for model_id, model in instance.settings.model_ids.items()]
    return json_response({"object": "list", "data": data})


def retrieve_model(request: flask.Request, instance: Instance) -> flask.Response:
    """``GET .../v1/models/{id}``: one allowed model by its public id or LiteLLM name (which may
    hold slashes), or OpenAI's 404."""
    instance.sign_in.check(instance.verifier.verify_authorization(request.headers.get("Authorization")))
    instance.app_check.check(request.headers.get(APP_CHECK_HEADER))
    requested = request.path.partition(f"{MODELS_PATH_SUFFIX}/")[2].rstrip("/")
    model = instance.settings.model_for(requested)
    if model is None:
        message = f"The model '{requested[:100]}' does not exist or you do not have access to it."
        raise ApiError(ErrorCode.MODEL_NOT_FOUND, message, param="model")
    return json_response(_model_entry(requested, model, instance))


def usage(request: flask.Request, instance: Instance) -> flask.Response:
    """``GET``: the caller's usage in the current billing period, and their budget."""
    caller = instance.verifier.verify_authorization(request.headers.get("Authorization"))
    instance.sign_in.check(caller)
    instance.app_check.check(request.headers.get(APP_CHECK_HEADER))
    return json_response(instance.chat.usage(caller))


# The ``chat`` function answers under any prefix; ``usage`` at any path.
CHAT_ROUTES: Routes = {
    CHAT_PATH_SUFFIX: {"POST": chat_completions},
    RESPONSES_PATH_SUFFIX: {"POST": responses},
    MODELS_PATH_SUFFIX: {"GET": list_models},
    MODELS_PATH_SUFFIX + ANY_REST: {"GET": retrieve_model},
}
USAGE_ROUTES: Routes = {"": {"GET": usage}}


def replay_billing(request: flask.Request, instance: Instance) -> flask.Response:
    """Drain the outbox; answers with the run's counts. IAM keeps the function private; the
    caller's OIDC token is checked here too."""
    verify_invoker(request.headers.get("Authorization"), instance.settings)
    billing = instance.billing
    if not billing.enabled or billing.client is None:
        raise ApiError(ErrorCode.UNAVAILABLE, "Billing is not configured on this instance.")
    if billing.outbox is None:
        raise ApiError(ErrorCode.UNAVAILABLE, "The billing outbox is disabled (BILLING_OUTBOX=false).")
    settings = instance.settings
    report = drain_outbox(
        billing.outbox, billing.client, page_size=settings.replay_batch_size, budget_s=settings.replay_budget_s
    )
    log("INFO" if report.remaining == 0 else "WARNING", "billing_replayed", **report.to_dict())
    return json_response(report.to_dict())


# Any path; no CORS preflight: only Cloud Scheduler calls it.
REPLAY_ROUTES: Routes = {"": {"POST": replay_billing}}
