"""Secrets from Google Secret Manager into the process environment, once, at cold start.

``functions/main.py`` calls ``load_secrets()`` before anything reads the environment (the
settings, the Lago callback, LiteLLM's provider keys), in the gunicorn master before it forks.

Which variables: ``SECRETS`` lists them, separated by spaces or commas, each ``VAR`` (secret id
``VAR``, version ``latest``), ``VAR=secret-id`` or ``VAR=secret-id:VERSION``. Without ``SECRETS``
the list is Lago's four variables plus the provider keys the ``CHAT_MODELS`` need (LiteLLM's own
check); those are optional, so one that does not exist is only logged at INFO.

A variable already set (non-empty) wins and costs no call: ``--set-secrets`` and local env files
keep working. Secrets are read from ``SECRET_MANAGER_EMULATOR_HOST`` (a local server speaking the
v1 REST API) or, on a deployed instance (``K_SERVICE``), from Secret Manager itself, in project
``SECRETS_PROJECT`` / ``GOOGLE_CLOUD_PROJECT`` / ``GCLOUD_PROJECT``.

Reads run in parallel, each with a timeout and bounded retries inside one overall deadline
(``SECRETS_TIMEOUT_S``), so a wrong endpoint or a slow API delays a cold start by seconds, not a
minute. Failures are logged by variable, secret id and reason; the instance starts regardless.
No value is ever logged, and no exception message is (they may quote data).
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import re
import threading
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from .logs import configure, log
from .settings import is_deployed

LAGO_VARIABLES = ("LAGO_API_BASE", "LAGO_API_KEY", "LAGO_API_EVENT_CODE", "LAGO_API_CHARGE_BY")
DEFAULT_TIMEOUT_S = 8.0
_MAX_THREADS = 10  # requests keeps 10 connections per host; more would be discarded
# After the deadline, how long to wait for threads to notice their own timeouts.
_JOIN_GRACE_S = 1.0
_ITEM = re.compile(
    r"(?P<variable>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<secret>[A-Za-z0-9_-]{1,255})(?::(?P<version>[1-9][0-9]*|latest))?)?"
)


@dataclass(frozen=True)
class SecretRef:
    """One variable to load: from which secret and version; ``required`` if named in ``SECRETS``."""

    variable: str
    secret_id: str
    version: str = "latest"
    required: bool = True


@dataclass(frozen=True)
class SecretReport:
    """What ``load_secrets`` did, by variable name (never values)."""

    loaded: tuple[str, ...] = ()
    already_set: tuple[str, ...] = ()
    # variable -> not_found | permission_denied | corrupt | timeout | error
    failures: Mapping[str, str] = field(default_factory=dict)
    skipped: bool = False


class CorruptPayload(Exception):
    """The payload failed its CRC32C check or cannot be an environment value."""


def load_secrets(env: MutableMapping[str, str] | None = None) -> SecretReport:
    """Put the configured secrets into ``env`` (default ``os.environ``); never raises, never hangs."""
    env = os.environ if env is None else env
    configure()
    try:
        return _load(env)
    except Exception as error:  # noqa: BLE001 - a crash here would be a crash loop; start without
        log("ERROR", "secrets_error", error_class=type(error).__name__)
        return SecretReport(skipped=True)


def _load(env: MutableMapping[str, str]) -> SecretReport:
    source = _source(env)
    if source is None:
        return SecretReport(skipped=True)
    wanted = wanted_secrets(env)
    already_set = tuple(ref.variable for ref in wanted if env.get(ref.variable))
    todo = [ref for ref in wanted if not env.get(ref.variable)]
    report, elapsed_ms = _read_into(env, todo, source, _timeout_s(env))
    log(
        "INFO",
        "secrets_loaded",
        loaded=list(report.loaded),
        already_set=list(already_set),
        failed=list(report.failures),
        elapsed_ms=elapsed_ms,
    )
    return SecretReport(report.loaded, already_set, report.failures)


def _source(env: Mapping[str, str]) -> tuple[str, str] | None:
    """``(project, emulator host)`` to read from, or None (logged) when there is nowhere to read."""
    project = _first(env, "SECRETS_PROJECT", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")
    emulator = env.get("SECRET_MANAGER_EMULATOR_HOST", "").strip()
    deployed = is_deployed(env)
    if not project or not (emulator or deployed):
        reason = "no project" if emulator or deployed else "not deployed and no SECRET_MANAGER_EMULATOR_HOST"
        log("WARNING" if deployed or emulator else "INFO", "secrets_skipped", reason=reason)
        return None
    return project, emulator


def _read_into(
    env: MutableMapping[str, str], todo: list[SecretRef], source: tuple[str, str], timeout_s: float
) -> tuple[SecretReport, int]:
    """Read ``todo`` within ``timeout_s`` and set what was read; ``(report, elapsed ms)``."""
    started = time.monotonic()  # after the list: making the default one may import LiteLLM
    results = _fetch_all(todo, *source, started + timeout_s) if todo else {}
    loaded, failures = [], {}
    for ref in todo:
        outcome = results[ref.variable]
        if isinstance(outcome, str):
            env[ref.variable] = outcome  # here, not in the threads: one writer to os.environ
            loaded.append(ref.variable)
        else:
            failures[ref.variable] = outcome[0]
            _log_failure(ref, *outcome)
    elapsed_ms = round((time.monotonic() - started) * 1000)
    return SecretReport(tuple(loaded), (), failures), elapsed_ms


class SecretRetry:
    """Reads again, from requests, secrets that could not be read at cold start.

    At most one reader at a time, and never a waiter: a request that finds a read under way, or
    the backoff not yet over, gets ``False`` at once (the caller answers 503 with ``Retry-After``).
    Each read is bounded by ``RETRY_TIMEOUT_S``; the pause between reads doubles up to
    ``RETRY_MAX_DELAY_S``.
    """

    RETRY_TIMEOUT_S = 5.0
    RETRY_FIRST_DELAY_S = 1.0
    RETRY_MAX_DELAY_S = 60.0

    def __init__(self, refs: tuple[SecretRef, ...], source: tuple[str, str], env: MutableMapping[str, str]) -> None:
        self.refs = refs
        self._source = source
        self._env = env
        self._reader = threading.Lock()
        self._done = False
        self._delay = self.RETRY_FIRST_DELAY_S
        self._next_at = time.monotonic() + self._delay
        self._timeout_s = min(_timeout_s(env), self.RETRY_TIMEOUT_S)

    @classmethod
    def for_missing(cls, variables: tuple[str, ...], env: MutableMapping[str, str]) -> SecretRetry | None:
        """A retry of the secrets behind ``variables``, or None when none comes from Secret Manager."""
        source = _source(env)
        refs = tuple(ref for ref in wanted_secrets(env) if ref.variable in variables and not env.get(ref.variable))
        return cls(refs, source, env) if source and refs else None

    def retry_after_s(self) -> int:
        """Whole seconds until the next read may start (at least 1)."""
        return max(1, math.ceil(self._next_at - time.monotonic()))

    def attempt(self) -> bool:
        """Read the secrets if due and no one else is: True once every one of them is set."""
        if not self._reader.acquire(blocking=False):
            return False
        try:
            if self._done or time.monotonic() < self._next_at:
                return False  # True is answered once: one request rebuilds the instance
            todo = [ref for ref in self.refs if not self._env.get(ref.variable)]
            report, elapsed_ms = _read_into(self._env, todo, self._source, self._timeout_s)
            done = not report.failures
            log(
                "INFO" if done else "WARNING",
                "secrets_retried",
                loaded=list(report.loaded),
                failed=list(report.failures),
                elapsed_ms=elapsed_ms,
                next_in_s=None if done else self._delay,
            )
            self._done = done
            if not done:
                self._next_at = time.monotonic() + self._delay
                self._delay = min(self._delay * 2, self.RETRY_MAX_DELAY_S)
            return done
        except Exception as error:  # noqa: BLE001 - a failed retry must not fail the request; retried later
            log("ERROR", "secrets_error", error_class=type(error).__name__)
            self._next_at = time.monotonic() + self._delay
            return False
        finally:
            self._reader.release()


def wanted_secrets(env: Mapping[str, str]) -> tuple[SecretRef, ...]:
    """The variables to load: ``SECRETS`` if set, else Lago's and the models' provider keys."""
    spec = env.get("SECRETS")
    if spec is None:
        names = list(LAGO_VARIABLES)
        for model in (m.strip() for m in env.get("CHAT_MODELS", "").split(",")):
            names += [key for key in missing_provider_keys(model) if key not in names]
        return tuple(SecretRef(name, name, required=False) for name in names)
    refs: dict[str, SecretRef] = {}
    for item in filter(None, re.split(r"[\s,]+", spec)):
        match = _ITEM.fullmatch(item)
        if match is None:
            # Name only what precedes "=": a mistyped item might hold a value.
            log("ERROR", "secrets_item_invalid", variable=item.split("=", 1)[0][:64])
            continue
        variable = match["variable"]
        refs[variable] = SecretRef(variable, match["secret"] or variable, match["version"] or "latest")
    return tuple(refs.values())


def missing_provider_keys(model: str) -> tuple[str, ...]:
    """The provider key variables ``model`` needs that ``os.environ`` lacks (LiteLLM's check)."""
    if not model or model.startswith("local/"):
        return ()  # the embedded model needs no key
    import litellm  # only when needed: importing it costs seconds

    litellm.suppress_debug_info = True  # else an unknown provider prints a banner to stdout
    try:
        return tuple(litellm.validate_environment(model=model).get("missing_keys") or ())
    except Exception:  # noqa: BLE001 - an unknown provider needs no key we could load
        return ()


def unavailable_models(models: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The models that cannot be served because their provider keys are missing, with those keys.
    Not logged here: only the function that calls models reports them (``ChatService``)."""
    return {model: missing for model in models if (missing := missing_provider_keys(model))}


def _fetch_all(refs: list[SecretRef], project: str, emulator: str, deadline: float) -> dict[str, Any]:
    """Read every secret in parallel; each result is a value or ``(reason, error class)``."""
    try:
        client = _client(emulator)
    except Exception as error:  # noqa: BLE001 - no client: every secret fails, the instance starts
        return {ref.variable: ("error", type(error).__name__) for ref in refs}
    pool = concurrent.futures.ThreadPoolExecutor(min(len(refs), _MAX_THREADS), thread_name_prefix="secret")
    late: set[concurrent.futures.Future[str]] = set()
    try:
        futures = {pool.submit(_fetch, client, project, ref, deadline): ref for ref in refs}
        done, late = concurrent.futures.wait(futures, timeout=max(deadline - time.monotonic(), 0) + _JOIN_GRACE_S)
    finally:
        # Join the threads before the server forks. Each call ends by the deadline on its own;
        # only a thread stuck past every timeout (e.g. in DNS) is abandoned, to bound the start.
        pool.shutdown(wait=not late, cancel_futures=True)
        client.transport.close()
    results: dict[str, Any] = {futures[f].variable: ("timeout", "DeadlineExceeded") for f in late}
    for future in done:
        failure = future.exception()
        results[futures[future].variable] = future.result() if failure is None else _classify(failure)
    return results


def _client(emulator: str) -> Any:
    from google.cloud import secretmanager

    # REST on both paths: no gRPC threads or channels in the master before the fork, and the
    # deployed path is the one the tests run.
    if emulator:
        from google.auth.credentials import AnonymousCredentials

        return secretmanager.SecretManagerServiceClient(
            transport="rest",
            client_options={"api_endpoint": f"http://{emulator}"},
            credentials=AnonymousCredentials(),
        )
    return secretmanager.SecretManagerServiceClient(transport="rest")


def _fetch(client: Any, project: str, ref: SecretRef, deadline: float) -> str:
    from google.api_core import retry as retries

    # Half the time left per attempt and half for retrying: an attempt that starts just
    # before the retry deadline still ends by the overall deadline.
    budget = max(deadline - time.monotonic(), 0.2) / 2
    response = client.access_secret_version(
        name=client.secret_version_path(project, ref.secret_id, ref.version),
        timeout=budget,
        retry=retries.Retry(predicate=_transient, initial=0.1, maximum=1.0, multiplier=2.0, timeout=budget),
    )
    return _checked_text(response.payload)


def _checked_text(payload: Any) -> str:
    import google_crc32c

    # The client does not check the checksum; the API always sends one.
    if "data_crc32c" not in payload or google_crc32c.value(payload.data) != payload.data_crc32c:
        raise CorruptPayload("checksum mismatch")
    try:
        text: str = payload.data.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptPayload("not UTF-8") from None
    if "\x00" in text:
        raise CorruptPayload("NUL byte")  # os.environ refuses it
    return text


def _transient(error: Exception) -> bool:
    import requests
    from google.api_core import exceptions
    from google.api_core import retry as retries

    timeouts = (requests.Timeout, exceptions.DeadlineExceeded, exceptions.GatewayTimeout)
    return retries.if_transient_error(error) or isinstance(error, timeouts)


def _classify(error: BaseException) -> tuple[str, str]:
    """``(reason, error class)``: the message is dropped, as it may quote the request or data."""
    import requests
    from google.api_core import exceptions

    if isinstance(error, CorruptPayload):
        reason = "corrupt"
    elif isinstance(error, exceptions.NotFound):
        reason = "not_found"
    elif isinstance(error, (exceptions.Forbidden, exceptions.Unauthorized)):
        reason = "permission_denied"
    elif isinstance(error, (exceptions.RetryError, exceptions.DeadlineExceeded, requests.Timeout, TimeoutError)):
        reason = "timeout"  # a RetryError: transient failures until the deadline
    else:
        reason = "error"
    return reason, type(error).__name__


def _log_failure(ref: SecretRef, reason: str, error_class: str) -> None:
    # An optional secret that does not exist is normal (e.g. one of two accepted provider keys).
    severity = "ERROR" if ref.required else "INFO" if reason == "not_found" else "WARNING"
    log(
        severity,
        "secret_unavailable",
        variable=ref.variable,
        secret=ref.secret_id,
        version=ref.version,
        reason=reason,
        error_class=error_class,
    )


def _timeout_s(env: Mapping[str, str]) -> float:
    raw = env.get("SECRETS_TIMEOUT_S", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not 0 < value <= 60:
        log("WARNING", "secrets_timeout_invalid", default=DEFAULT_TIMEOUT_S)
        return DEFAULT_TIMEOUT_S
    return value


def _first(env: Mapping[str, str], *keys: str) -> str:
    return next((env[k].strip() for k in keys if env.get(k, "").strip()), "")
