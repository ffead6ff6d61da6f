"""The library behind the Cloud Functions in ``functions/main.py``.

One module per concern: ``settings`` (configuration), ``secret_env`` (Secret Manager at cold
start), ``logs`` (structured logging), ``errors`` (our error types and their HTTP shape),
``auth`` (Firebase ID tokens), ``app_check`` (Firebase App Check), ``sign_in_policy``
(which identities may chat), ``chat_request`` (the request body), ``chat_params``
(its optional fields and which models take them), ``llm`` (LiteLLM calls),
``local_model`` (the embedded offline model), ``chat`` (``ChatService``: one request from its
verified caller to its billed answer), ``billing_event`` / ``lago_events`` / ``billing`` /
``outbox`` / ``replay`` / ``invoker`` (usage billing in Lago; who may run the replay),
``lago_accounts`` / ``budget`` / ``ledger`` (customers, usage, and the payer's and the
project's spending limits on a Firestore ledger shared by every instance), ``pricing`` (what
the provider will charge: a call's usage priced, a request's estimate and worst case, the
operator's prices), ``rate_limits`` (per-payer requests, tokens and concurrency),
``reservation`` (what a call holds until it is billed), ``shutdown`` (SIGTERM: streams ended
and billed in time), ``instance`` (the per-instance singletons). Above them all, the HTTP layer:
``serving`` (routing, CORS, errors as JSON) and ``routes`` (the endpoints, one routing table per
function); nothing below imports it.
"""
