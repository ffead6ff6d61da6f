"""Cloud Functions entry points. Wiring only: each function hands its request to ``shared``.

Importing this module is the instance's cold start: secrets are read into the environment,
then the settings, the Lago callback and the other per-instance singletons are made once.
"""

import gc
import os

# The collector paused while the imports build ~0.5 million long-lived objects (LiteLLM's most
# of all): its passes over them were ~20 % of the import's CPU. Frozen below, before the server
# forks, as Python's gc docs advise for pre-fork servers: the worker's collections then skip them.
gc.disable()

# Before LiteLLM is imported anywhere: use the bundled cost map, no network at cold start.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from shared.secret_env import load_secrets  # noqa: E402

# Before anything reads the environment, and in the master, before the server forks.
load_secrets()

import flask  # noqa: E402
import functions_framework  # noqa: E402

from shared import routes, serving  # noqa: E402
from shared.body_guard import BodyGuard  # noqa: E402
from shared.instance import current_instance, start_instance  # noqa: E402
from shared.shutdown import hook_worker_sigterm  # noqa: E402

instance = start_instance()
hook_worker_sigterm()  # in the master, before gunicorn forks its worker
# functions-framework runs this module inside its Flask app's context: bound every body there.
flask.current_app.wsgi_app = BodyGuard(flask.current_app.wsgi_app, serving.body_limit(instance))  # type: ignore[method-assign]
gc.freeze()
gc.enable()

# Who may call what when deployed: these check Firebase ID tokens in code; every other entry point
# is private (scripts/stage.py marks it so in functions.yaml; deploy.sh must agree, a test checks).
PUBLIC_ENTRY_POINTS = ("chat", "usage")


@functions_framework.http
def chat(request: flask.Request) -> flask.Response:
    """OpenAI-compatible chat completions for signed-in Firebase users."""
    return serving.serve(request, current_instance(), routes.CHAT_ROUTES)


@functions_framework.http
def usage(request: flask.Request) -> flask.Response:
    """The signed-in user's usage in the current billing period, and their budget."""
    return serving.serve(request, current_instance(), routes.USAGE_ROUTES)


@functions_framework.http
def replay_billing(request: flask.Request) -> flask.Response:
    """Drains the billing outbox; private, invoked by Cloud Scheduler with OIDC."""
    return serving.serve(request, current_instance(), routes.REPLAY_ROUTES, preflight=False)
