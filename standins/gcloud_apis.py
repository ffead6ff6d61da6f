"""A stand-in for the Google Cloud REST APIs that ``deploy.sh`` reaches through the real ``gcloud``.

``write_gcloud_config`` makes a scratch ``CLOUDSDK_CONFIG`` that sends every API here:
``api_endpoint_overrides/<api> = http://127.0.0.1:PORT/<api>/``, so a path's first segment names
its API. gcloud calls Cloud Run on a *regional* host derived from that override
(``us-central1-127.0.0.1:PORT``, which does not resolve), so gcloud's HTTP proxy setting points here
as well and requests arrive in absolute form; the routes ignore the host.

The state is one fake project: functions (create/patch finish at once: their operation is done),
service accounts, IAM policies (one get/set pair for every API), Cloud Scheduler jobs and uploaded
source archives. ``requests`` records every call for assertions; ``server.unknown`` lists the ones
no route matched (answered 404 in Google's error shape).
"""

from __future__ import annotations

import base64
import copy
import io
import itertools
import json
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from standins.http_server import Request, StandIn, StandInServer

# Every API gcloud may call for deploy.sh's commands.
APIS = (
    "cloudfunctions",
    "run",
    "iam",
    "cloudresourcemanager",
    "secretmanager",
    "cloudscheduler",
    "serviceusage",
    "cloudbuild",
    "artifactregistry",
    "storage",
)
PROJECT_NUMBER = "123456789012"
_ID = r"[^/:?]+"
_P = rf"projects/(?P<project>{_ID})"
_L = rf"{_P}/locations/(?P<location>{_ID})"

# method, API, path after "/<api>/" (a regex), handler method of GoogleApis
ROUTES: list[tuple[str, str, str, str]] = [
    ("GET", "cloudfunctions", rf"v2/{_L}/runtimes", "list_runtimes"),
    ("POST", "cloudfunctions", rf"v2/{_L}/functions:generateUploadUrl", "generate_upload_url"),
    ("GET", "cloudfunctions", rf"v2/{_L}/functions/(?P<function>{_ID})", "get_function"),
    ("POST", "cloudfunctions", rf"v2/{_L}/functions", "create_function"),
    ("PATCH", "cloudfunctions", rf"v2/{_L}/functions/(?P<function>{_ID})", "patch_function"),
    ("GET", "cloudfunctions", rf"v2/{_L}/operations/(?P<operation>{_ID})", "get_operation"),
    ("PUT", "upload", rf"(?P<obj>{_ID})", "put_upload"),
    ("GET", "serviceusage", rf"v1/{_P}/services/(?P<service>{_ID})", "get_api_service"),
    ("GET", "cloudbuild", rf"v1/{_L}/defaultServiceAccount", "get_default_build_account"),
    ("GET", "cloudresourcemanager", rf"v1/{_P}", "get_project"),
    ("GET", "iam", rf"v1/{_P}/serviceAccounts/(?P<email>{_ID})", "get_service_account"),
    ("POST", "iam", rf"v1/{_P}/serviceAccounts", "create_service_account"),
    ("GET", "secretmanager", rf"v1/{_P}/secrets", "list_secrets"),
    ("GET", "cloudscheduler", rf"v1/{_L}/jobs/(?P<job>{_ID})", "get_job"),
    ("POST", "cloudscheduler", rf"v1/{_L}/jobs", "create_job"),
    ("PATCH", "cloudscheduler", rf"v1/{_L}/jobs/(?P<job>{_ID})", "patch_job"),
    # IAM policies: Cloud Run services, secrets, projects, functions.
    *[
        (method, api, rf"v\w+/(?P<resource>.+):{verb}IamPolicy", f"{verb}_iam_policy")
        for api in ("run", "secretmanager", "cloudresourcemanager", "cloudfunctions")
        for method, verb in (("GET", "get"), ("POST", "get"), ("POST", "set"))
    ],
]


@dataclass
class Recorded:
    """One request as the stand-in saw it; ``body`` is parsed JSON, or bytes for an upload."""

    api: str
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any

    def __str__(self) -> str:
        return f"{self.method} /{self.api}/{self.path}"


class ApiError(Exception):
    """Answered as Google's ``{"error": {"code", "status", "message"}}``."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def _not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} was not found")


def _camel(key: str) -> str:
    """``service_config`` -> ``serviceConfig``: gcloud sends some update masks in snake case."""
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def _apply_update_mask(body: dict[str, Any], target: dict[str, Any], mask: str) -> None:
    """Copies each masked field (``a.b.c``) from body into target; a field absent from body is cleared."""
    for path in filter(None, mask.split(",")):
        *parents, leaf = (_camel(key) for key in path.split("."))
        src, dst = body, target
        for key in parents:
            src, dst = src.get(key, {}), dst.setdefault(key, {})
        if leaf in src:
            dst[leaf] = copy.deepcopy(src[leaf])
        else:
            dst.pop(leaf, None)


class GoogleApis(StandIn):
    """One fake Google Cloud project behind a :class:`StandInServer`."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self.secrets = set(secrets)  # ids of the secrets that exist
        self.functions: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.service_accounts: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}  # "<api> <resource name>" -> IAM policy
        self.jobs: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}  # object name -> zip
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        prefix = r"(?:http://[^/]+)?/"  # absolute form when it came through the proxy setting
        self.server = StandInServer(
            [(method, f"{prefix}{api}/{path}", self._route(api, name)) for method, api, path, name in ROUTES]
        )

    def write_gcloud_config(self, config_dir: Path, project: str) -> None:
        """A gcloud configuration (for ``CLOUDSDK_CONFIG=config_dir``) that sends every call here."""
        settings = {
            "api_endpoint_overrides": {api: f"{self.url}/{api}/" for api in APIS},
            "auth": {"disable_credentials": "true"},
            "core": {"project": project, "disable_usage_reporting": "true", "disable_prompts": "true"},
            "component_manager": {"disable_update_check": "true"},
            "survey": {"disable_prompts": "true"},
            "proxy": {"type": "http", "address": "127.0.0.1", "port": str(self.server.port)},
        }
        text = "".join(
            f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()) + "\n"
            for section, values in settings.items()
        )
        (config_dir / "configurations").mkdir(parents=True, exist_ok=True)
        (config_dir / "configurations" / "config_default").write_text(text)
        (config_dir / "active_config").write_text("default")

    # ---- for assertions -------------------------------------------------------------------------

    def function(self, name: str) -> dict[str, Any]:
        """The stored function whose short name is ``name``."""
        (function,) = (f for full, f in self.functions.items() if full.endswith(f"/functions/{name}"))
        return function

    def source_files(self, function: dict[str, Any]) -> list[str]:
        """The file names in the zip that a function's storageSource points at."""
        data = self.uploads[function["buildConfig"]["source"]["storageSource"]["object"]]
        return sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())

    def members(self, api: str, resource: str, role: str) -> set[str]:
        """Members bound to ``role`` on a resource (``resource`` is the full name or its tail)."""
        return {
            member
            for key, policy in self.policies.items()
            if key.startswith(f"{api} ") and (key == f"{api} {resource}" or key.endswith(f"/{resource}"))
            for binding in policy.get("bindings", [])
            if binding["role"] == role
            for member in binding.get("members", [])
        }

    # ---- dispatch ------------------------------------------------------------------------------

    def _route(self, api: str, name: str) -> Callable[[Request], None]:
        def serve(request: Request) -> None:
            path = request.path.split(f"/{api}/", 1)[1]
            body: Any = request.body
            if body and "json" in (request.headers.get("Content-Type") or ""):
                body = json.loads(body)
            recorded = Recorded(api, request.method, path, parse_qs(request.query), body)
            with self._lock:
                self.requests.append(recorded)
                try:
                    answer = getattr(self, name)(recorded, **request.params)
                except ApiError as e:
                    error = {"error": {"code": e.code, "status": e.status, "message": e.message}}
                    request.send_json(e.code, error)
                    return
            request.send_json(200, answer)

        return serve

    # ---- cloudfunctions v2 ---------------------------------------------------------------------

    def list_runtimes(self, req: Recorded, project: str, location: str) -> dict[str, Any]:
        names = ("python310", "python311", "python312")
        return {"runtimes": [{"name": n, "environment": "GEN_2", "stage": "GA"} for n in names]}

    def generate_upload_url(self, req: Recorded, project: str, location: str) -> dict[str, Any]:
        obj = f"function-source-{next(self._ids)}.zip"
        self.uploads[obj] = b""  # issued; the PUT fills it
        return {
            "uploadUrl": f"{self.url}/upload/{obj}",
            "storageSource": {"bucket": f"gcf-v2-uploads-{PROJECT_NUMBER}-{location}", "object": obj},
        }

    def put_upload(self, req: Recorded, obj: str) -> dict[str, Any]:
        if obj not in self.uploads:
            raise ApiError(403, "PERMISSION_DENIED", f"no upload URL was issued for {obj}")
        self.uploads[obj] = req.body
        return {}

    def get_function(self, req: Recorded, project: str, location: str, function: str) -> dict[str, Any]:
        name = f"projects/{project}/locations/{location}/functions/{function}"
        if name not in self.functions:
            raise _not_found(f"Resource '{name}'")
        return self.functions[name]

    def create_function(self, req: Recorded, project: str, location: str) -> dict[str, Any]:
        (function_id,) = req.query["functionId"]
        name = f"projects/{project}/locations/{location}/functions/{function_id}"
        if name in self.functions:
            raise ApiError(409, "ALREADY_EXISTS", f"Function {name} already exists")
        service = function_id.lower().replace("_", "-")  # Cloud Run service names have no "_"
        function = {**copy.deepcopy(req.body), "name": name, "state": "ACTIVE", "environment": "GEN_2"}
        function.setdefault("serviceConfig", {}).update(
            service=f"projects/{project}/locations/{location}/services/{service}",
            uri=f"https://{service}-{PROJECT_NUMBER}.{location}.run.app",
        )
        self.functions[name] = function
        return self._done_operation(project, location, function)

    def patch_function(self, req: Recorded, project: str, location: str, function: str) -> dict[str, Any]:
        stored = self.get_function(req, project, location, function)
        _apply_update_mask(req.body, stored, req.query.get("updateMask", [""])[0])
        return self._done_operation(project, location, stored)

    def get_operation(self, req: Recorded, project: str, location: str, operation: str) -> dict[str, Any]:
        name = f"projects/{project}/locations/{location}/operations/{operation}"
        if name not in self.operations:
            raise _not_found(f"Operation {name}")
        return self.operations[name]

    def _done_operation(self, project: str, location: str, function: dict[str, Any]) -> dict[str, Any]:
        name = f"projects/{project}/locations/{location}/operations/operation-{next(self._ids)}"
        metadata_type = "type.googleapis.com/google.cloud.functions.v2.OperationMetadata"
        stages = [{"name": stage, "state": "COMPLETE"} for stage in ("BUILD", "SERVICE")]
        self.operations[name] = {
            "name": name,
            "done": True,
            "metadata": {"@type": metadata_type, "stages": stages},
            "response": {"@type": "type.googleapis.com/google.cloud.functions.v2.Function", **function},
        }
        return self.operations[name]

    # ---- what gcloud checks before deploying ---------------------------------------------------

    def get_api_service(self, req: Recorded, project: str, service: str) -> dict[str, Any]:
        return {"name": f"projects/{PROJECT_NUMBER}/services/{service}", "state": "ENABLED"}

    def get_default_build_account(self, req: Recorded, project: str, location: str) -> dict[str, Any]:
        email = f"{PROJECT_NUMBER}@cloudbuild.gserviceaccount.com"
        return {"serviceAccountEmail": f"projects/{project}/serviceAccounts/{email}"}

    def get_project(self, req: Recorded, project: str) -> dict[str, Any]:
        return {"projectId": project, "projectNumber": PROJECT_NUMBER, "lifecycleState": "ACTIVE"}

    # ---- iam service accounts ------------------------------------------------------------------

    def get_service_account(self, req: Recorded, project: str, email: str) -> dict[str, Any]:
        if email not in self.service_accounts:
            raise _not_found(f"Service account projects/{project}/serviceAccounts/{email}")
        return self.service_accounts[email]

    def create_service_account(self, req: Recorded, project: str) -> dict[str, Any]:
        email = f"{req.body['accountId']}@{project}.iam.gserviceaccount.com"
        if email in self.service_accounts:
            raise ApiError(409, "ALREADY_EXISTS", f"Service account {email} already exists")
        self.service_accounts[email] = {
            **req.body.get("serviceAccount", {}),
            "name": f"projects/{project}/serviceAccounts/{email}",
            "projectId": project,
            "email": email,
            "uniqueId": str(next(self._ids)),
        }
        return self.service_accounts[email]

    # ---- secret manager ------------------------------------------------------------------------

    def list_secrets(self, req: Recorded, project: str) -> dict[str, Any]:
        names = sorted(self.secrets)
        return {"secrets": [{"name": f"projects/{PROJECT_NUMBER}/secrets/{n}"} for n in names], "totalSize": len(names)}

    # ---- IAM policies, one shape for every API -------------------------------------------------

    def get_iam_policy(self, req: Recorded, resource: str) -> dict[str, Any]:
        return self.policies.get(f"{req.api} {resource}", {"version": 1, "etag": "ACAB"})

    def set_iam_policy(self, req: Recorded, resource: str) -> dict[str, Any]:
        etag = base64.b64encode(f"etag-{next(self._ids)}".encode()).decode()
        self.policies[f"{req.api} {resource}"] = {**req.body["policy"], "etag": etag}
        return self.policies[f"{req.api} {resource}"]

    # ---- cloud scheduler -----------------------------------------------------------------------

    def get_job(self, req: Recorded, project: str, location: str, job: str) -> dict[str, Any]:
        name = f"projects/{project}/locations/{location}/jobs/{job}"
        if name not in self.jobs:
            raise _not_found(f"Job {name}")
        return self.jobs[name]

    def create_job(self, req: Recorded, project: str, location: str) -> dict[str, Any]:
        job = {**req.body, "state": "ENABLED"}
        if job["name"] in self.jobs:
            raise ApiError(409, "ALREADY_EXISTS", f"Job {job['name']} already exists")
        self.jobs[job["name"]] = job
        return job

    def patch_job(self, req: Recorded, project: str, location: str, job: str) -> dict[str, Any]:
        stored = self.get_job(req, project, location, job)
        _apply_update_mask(req.body, stored, req.query.get("updateMask", [""])[0])
        return stored
