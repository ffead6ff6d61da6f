"""The ``replay_billing`` route: drain the outbox into Lago (Cloud Scheduler calls it)."""

from __future__ import annotations

import flask

from .errors import ApiError, ErrorCode
from .handlers import Routes, json_response
from .instance import Instance
from .invoker import verify_invoker
from .logs import log

_PER_EVENT_TIMEOUT_S = 5.0
_RUN_BUDGET_S = 50.0  # well inside Cloud Scheduler's default 3-minute attempt deadline


def replay_route(request: flask.Request, instance: Instance) -> flask.Response:
    """Send due outbox events; answers with the counts. IAM keeps the function private; the
    caller's OIDC token is checked here too."""
    verify_invoker(request.headers.get("Authorization"), instance.settings)
    billing = instance.billing
    if not billing.enabled or billing.client is None:
        raise ApiError(ErrorCode.UNAVAILABLE, "Billing is not configured on this instance.")
    if billing.outbox is None:
        raise ApiError(ErrorCode.UNAVAILABLE, "The billing outbox is disabled (BILLING_OUTBOX=false).")
    report = billing.outbox.replay(
        billing.client,
        limit=instance.settings.replay_batch_size,
        per_event_timeout_s=_PER_EVENT_TIMEOUT_S,
        budget_s=_RUN_BUDGET_S,
    )
    log("INFO", "billing_replayed", **report.to_dict())
    return json_response(report.to_dict())


# Any path; no CORS preflight: only Cloud Scheduler calls it.
REPLAY_ROUTES: Routes = {"": {"POST": replay_route}}
