"""deploy.sh, run for real: the installed gcloud against a local stand-in of the Google APIs.

The module's fixture deploys twice into one fake project (a first deploy, then a re-run with
changed settings); the tests read what gcloud sent and what the fake project ended up holding.
The other tests need no API (bad settings, --dry-run, --help, shellcheck) or only a refusal.
"""

from __future__ import annotations

import copy
import fnmatch
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from standins.gcloud_apis import GoogleApis, Recorded

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy.sh"
GCLOUD = shutil.which("gcloud")
PROJECT = "demo-deploy"
REGION = "europe-west1"
SECRETS = ("LAGO_API_BASE", "LAGO_API_KEY", "LAGO_API_EVENT_CODE", "OPENAI_API_KEY")
LAGO_SECRETS = SECRETS[:3]
FUNCTIONS = ("chat", "usage", "replay_billing")
# One runtime account per function, with only what that function uses.
SA = {name: f"{name.replace('_', '-')}-fn@{PROJECT}.iam.gserviceaccount.com" for name in FUNCTIONS}
MEMBER = {name: f"serviceAccount:{email}" for name, email in SA.items()}
FUNCTION_SECRETS = {"chat": SECRETS, "usage": LAGO_SECRETS, "replay_billing": LAGO_SECRETS}
REPLAY_URL = f"https://{REGION}-{PROJECT}.cloudfunctions.net/replay_billing"
MODELS = "openai/gpt-4o-mini,anthropic/claude-3-5-haiku-latest"
SETTINGS = {
    "PROJECT_ID": PROJECT,
    "REGION": REGION,
    "CHAT_MODELS": MODELS,
    "CORS_ORIGINS": "https://app.example,https://admin.example",
    "DEPLOY_PROVIDER_SECRETS": "OPENAI_API_KEY",
    "LAGO_PLAN_CODE": "starter",
    "CHAT_MAX_TOKENS": "2048",
    "CHAT_BUDGET_CENTS": "500",
    "MIN_INSTANCES": "1",
    "MAX_INSTANCES": "7",
    "CONCURRENCY": "16",
    "MEMORY": "2Gi",
    "CPU": "2",
    "TIMEOUT": "120s",
}
RUN_TIMEOUT_S = 240

needs_gcloud = pytest.mark.skipif(GCLOUD is None, reason="gcloud (Google Cloud SDK) is not installed")


def base_env(tmp: Path) -> dict[str, str]:
    """A clean environment: no proxy, gcloud or deploy settings leak in from the caller's."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    return env | {"DEPLOY_ENV_FILE": str(tmp / "absent.env"), "CLOUDSDK_CONFIG": str(tmp / "gcloud-config")}


def run_deploy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )


@pytest.fixture
def tripwire_gcloud(tmp_path: Path) -> tuple[str, Path]:
    """A ``GCLOUD`` that records that it ran: for the paths that must call no gcloud at all."""
    marker = tmp_path / "gcloud-was-called"
    script = tmp_path / "tripwire-gcloud"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{marker}"\nexit 1\n')
    script.chmod(0o755)
    return str(script), marker


@dataclass
class Deployment:
    apis: GoogleApis
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    first_requests: list[Recorded]
    second_requests: list[Recorded]
    after_first: dict[str, dict]  # functions as the first deploy left them


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if GCLOUD is None:
        pytest.skip("gcloud (Google Cloud SDK) is not installed")
    tmp = tmp_path_factory.mktemp("deploy")
    apis = GoogleApis(secrets=SECRETS).start()
    try:
        env = base_env(tmp) | SETTINGS
        apis.write_gcloud_config(Path(env["CLOUDSDK_CONFIG"]), "some-other-project")
        first = run_deploy(env)
        assert first.returncode == 0, first.stderr
        first_requests = list(apis.requests)
        after_first = {name: copy.deepcopy(apis.function(name)) for name in FUNCTIONS}
        changed = {"CHAT_MODELS": "openai/gpt-4o-mini,openai/gpt-4o", "SCHEDULE": "*/10 * * * *"}
        second = run_deploy(env | changed)
        second_requests = apis.requests[len(first_requests) :]
        yield Deployment(apis, first, second, first_requests, second_requests, after_first)
    finally:
        apis.stop()


def _only(requests: list[Recorded], method: str, api: str, contains: str) -> list[Recorded]:
    return [r for r in requests if r.method == method and r.api == api and contains in r.path]


# ---- a first deploy ---------------------------------------------------------------------------------


def test_deploy_reaches_only_apis_the_standin_serves(deployment: Deployment) -> None:
    assert deployment.apis.server.unknown == []
    assert deployment.second.returncode == 0, deployment.second.stderr


def test_deploy_creates_each_function_with_its_entry_point_on_python311(deployment: Deployment) -> None:
    creates = _only(deployment.first_requests, "POST", "cloudfunctions", f"locations/{REGION}/functions")
    created = {r.query["functionId"][0]: r.body for r in creates if "functionId" in r.query}
    assert sorted(created) == sorted(FUNCTIONS)
    for name, body in created.items():
        assert body["buildConfig"]["entryPoint"] == name
        assert body["buildConfig"]["runtime"] == "python311"
        assert body["name"] == f"projects/{PROJECT}/locations/{REGION}/functions/{name}"


def test_deploy_passes_settings_as_env_vars_with_commas_intact(deployment: Deployment) -> None:
    common = {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "CHAT_MODELS": MODELS,
        "CORS_ORIGINS": "https://app.example,https://admin.example",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LAGO_API_CHARGE_BY": "user_id",
        "LAGO_FLUSH_TIMEOUT_S": "3",
        "LAGO_PLAN_CODE": "starter",
        "CHAT_MAX_TOKENS": "2048",
        "CHAT_BUDGET_CENTS": "500",
        "CHAT_REQUIRE_BILLING": "true",  # passed whether set or not: the code's default is not relied on
    }
    replay_only = {"REPLAY_AUDIENCE": REPLAY_URL, "REPLAY_INVOKER_EMAIL": SA["replay_billing"]}
    for name in FUNCTIONS:
        expected = common | {"SECRETS": " ".join(FUNCTION_SECRETS[name])}
        expected |= replay_only if name == "replay_billing" else {}
        assert deployment.after_first[name]["serviceConfig"]["environmentVariables"] == expected, name


def test_deploy_sizes_and_runs_each_function_as_its_own_service_account(deployment: Deployment) -> None:
    for name in FUNCTIONS:
        service = deployment.after_first[name]["serviceConfig"]
        assert service["serviceAccountEmail"] == SA[name]
        assert service["maxInstanceRequestConcurrency"] == 16
        assert service["minInstanceCount"] == 1
        assert service["maxInstanceCount"] == 7
        assert service["availableMemory"] == "2Gi"
        assert service["availableCpu"] == "2"
        assert service["timeoutSeconds"] == 120
        assert "secretEnvironmentVariables" not in service  # the code reads Secret Manager itself


def firebase_predeploy_upload(tmp: Path) -> dict[str, bytes]:
    """What ``firebase deploy`` would upload: firebase.json's functions predeploy run as the CLI
    runs it (a shell in the project folder, ``RESOURCE_DIR`` = the source), less its ``ignore``."""
    (config,) = json.loads((ROOT / "firebase.json").read_text())["functions"]
    resource_dir = tmp / "firebase-source"
    env = base_env(tmp) | {"PROJECT_DIR": str(ROOT), "RESOURCE_DIR": str(resource_dir)}
    for command in config["predeploy"]:
        subprocess.run(command, shell=True, cwd=ROOT, env=env, check=True, timeout=60)
    return {
        path.relative_to(resource_dir).as_posix(): path.read_bytes()
        for path in resource_dir.rglob("*")
        if path.is_file()
        and not any(
            fnmatch.fnmatch(part, pattern)
            for part in path.relative_to(resource_dir).parts
            for pattern in config["ignore"]
        )
    }


def test_deploy_sh_and_firebase_deploy_upload_the_same_files(deployment: Deployment, tmp_path: Path) -> None:
    firebase = firebase_predeploy_upload(tmp_path)
    assert {"main.py", "requirements.txt", "functions.yaml", "shared/settings.py"} <= firebase.keys()
    assert firebase["main.py"] == (ROOT / "functions" / "main.py").read_bytes()
    assert firebase["requirements.txt"] == (ROOT / "requirements.txt").read_bytes()
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in firebase)
    for name in FUNCTIONS:
        object_name = deployment.after_first[name]["buildConfig"]["source"]["storageSource"]["object"]
        with zipfile.ZipFile(io.BytesIO(deployment.apis.uploads[object_name])) as archive:
            uploaded = {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
        assert uploaded == firebase, name


def test_deploy_creates_one_service_account_per_function_once(deployment: Deployment) -> None:
    creates = _only(deployment.first_requests, "POST", "iam", "serviceAccounts")
    assert [r.body["accountId"] for r in creates] == ["chat-fn", "usage-fn", "replay-billing-fn"]
    assert set(SA.values()) <= set(deployment.apis.service_accounts)
    assert _only(deployment.second_requests, "POST", "iam", "serviceAccounts") == []


def test_deploy_lets_everyone_invoke_chat_and_usage_but_only_the_scheduler_account_replay(
    deployment: Deployment,
) -> None:
    members = deployment.apis.members
    services = f"projects/{PROJECT}/locations/{REGION}/services"
    assert members("run", f"{services}/chat", "roles/run.invoker") == {"allUsers"}
    assert members("run", f"{services}/usage", "roles/run.invoker") == {"allUsers"}
    assert members("run", f"{services}/replay-billing", "roles/run.invoker") == {MEMBER["replay_billing"]}


def test_deploy_grants_each_function_only_its_own_secrets(deployment: Deployment) -> None:
    for secret in SECRETS:
        resource = f"projects/{PROJECT}/secrets/{secret}"
        readers = {MEMBER[name] for name in FUNCTIONS if secret in FUNCTION_SECRETS[name]}
        assert deployment.apis.members("secretmanager", resource, "roles/secretmanager.secretAccessor") == readers
    openai = f"projects/{PROJECT}/secrets/OPENAI_API_KEY"
    assert deployment.apis.members("secretmanager", openai, "roles/secretmanager.secretAccessor") == {MEMBER["chat"]}


def test_deploy_grants_firestore_only_to_the_functions_that_use_the_outbox(deployment: Deployment) -> None:
    users = deployment.apis.members("cloudresourcemanager", f"projects/{PROJECT}", "roles/datastore.user")
    assert users == {MEMBER["chat"], MEMBER["replay_billing"]}, "usage reads no Firestore"
    granted = [r for r in deployment.apis.requests if "setIamPolicy" in r.path]
    assert not [r for r in granted if "roles/owner" in str(r.body) or "roles/editor" in str(r.body)]


def test_deploy_schedules_replay_billing_with_an_oidc_token_for_its_url(deployment: Deployment) -> None:
    creates = _only(deployment.first_requests, "POST", "cloudscheduler", "/jobs")
    assert len(creates) == 1
    job = creates[0].body
    assert job["name"] == f"projects/{PROJECT}/locations/{REGION}/jobs/replay-billing"
    assert job["schedule"] == "*/5 * * * *"
    assert job["httpTarget"]["uri"] == REPLAY_URL  # the function's cloudfunctions.net URL
    assert job["httpTarget"]["httpMethod"] == "POST"
    # The token the code checks: this audience, this account (REPLAY_AUDIENCE, REPLAY_INVOKER_EMAIL).
    assert job["httpTarget"]["oidcToken"] == {"serviceAccountEmail": SA["replay_billing"], "audience": REPLAY_URL}


def test_deploy_sends_every_call_to_the_configured_project_and_region(deployment: Deployment) -> None:
    # The scratch gcloud config names another project: --project must win everywhere.
    assert not [r for r in deployment.apis.requests if "some-other-project" in r.path]
    located = [r for r in deployment.apis.requests if "/locations/" in r.path]
    assert located and all(f"/locations/{REGION}/" in r.path for r in located)


def test_deploy_prints_the_function_urls(deployment: Deployment) -> None:
    for name in FUNCTIONS:
        assert deployment.after_first[name]["serviceConfig"]["uri"] in deployment.first.stdout


# ---- re-running it ------------------------------------------------------------------------------------


def test_redeploy_updates_functions_in_place(deployment: Deployment) -> None:
    requests = deployment.second_requests
    assert _only(requests, "POST", "cloudfunctions", f"locations/{REGION}/functions") == [
        r for r in requests if r.method == "POST" and "generateUploadUrl" in r.path
    ]
    patched = {r.path.rsplit("/", 1)[1] for r in _only(requests, "PATCH", "cloudfunctions", "/functions/")}
    assert patched == set(FUNCTIONS)
    for name in FUNCTIONS:
        env = deployment.apis.function(name)["serviceConfig"]["environmentVariables"]
        assert env["CHAT_MODELS"] == "openai/gpt-4o-mini,openai/gpt-4o"


def test_redeploy_updates_the_scheduler_job_in_place(deployment: Deployment) -> None:
    requests = deployment.second_requests
    assert _only(requests, "POST", "cloudscheduler", "/jobs") == []
    assert len(_only(requests, "PATCH", "cloudscheduler", "/jobs/replay-billing")) == 1
    (job,) = deployment.apis.jobs.values()
    assert job["schedule"] == "*/10 * * * *"


def test_redeploy_keeps_replay_billing_private(deployment: Deployment) -> None:
    services = f"projects/{PROJECT}/locations/{REGION}/services"
    assert deployment.apis.members("run", f"{services}/replay-billing", "roles/run.invoker") == {
        MEMBER["replay_billing"]
    }
    policy = deployment.apis.policies[f"run {services}/chat"]
    assert [b["role"] for b in policy["bindings"]] == ["roles/run.invoker"]  # no duplicate binding


# ---- refusals ---------------------------------------------------------------------------------------


def test_deploy_without_required_settings_exits_2_naming_them(
    tmp_path: Path, tripwire_gcloud: tuple[str, Path]
) -> None:
    gcloud, marker = tripwire_gcloud
    result = run_deploy(base_env(tmp_path) | {"GCLOUD": gcloud})
    assert result.returncode == 2
    assert "PROJECT_ID" in result.stderr and "CHAT_MODELS" in result.stderr
    assert "e.g." in result.stderr  # an example to copy
    assert not marker.exists()


def test_deploy_with_only_the_project_missing_names_only_it(tmp_path: Path, tripwire_gcloud: tuple[str, Path]) -> None:
    gcloud, marker = tripwire_gcloud
    result = run_deploy(base_env(tmp_path) | {"GCLOUD": gcloud, "CHAT_MODELS": MODELS})
    assert result.returncode == 2
    missing = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(missing) == 1 and "PROJECT_ID" in missing[0]
    assert not marker.exists()


def test_deploy_refuses_concurrency_on_a_fractional_cpu(tmp_path: Path, tripwire_gcloud: tuple[str, Path]) -> None:
    gcloud, marker = tripwire_gcloud
    result = run_deploy(base_env(tmp_path) | SETTINGS | {"GCLOUD": gcloud, "CPU": "0.5", "CONCURRENCY": "8"})
    assert result.returncode == 2
    assert "CPU >= 1" in result.stderr
    assert not marker.exists()


@needs_gcloud
def test_deploy_with_a_missing_secret_stops_before_changing_anything(tmp_path: Path) -> None:
    apis = GoogleApis(secrets=SECRETS[:3]).start()  # no OPENAI_API_KEY
    try:
        env = base_env(tmp_path) | SETTINGS
        apis.write_gcloud_config(Path(env["CLOUDSDK_CONFIG"]), PROJECT)
        result = run_deploy(env)
    finally:
        apis.stop()
    assert result.returncode == 1
    assert "OPENAI_API_KEY" in result.stderr and "gcloud secrets create OPENAI_API_KEY" in result.stderr
    assert [str(r) for r in apis.requests] == [f"GET /secretmanager/v1/projects/{PROJECT}/secrets"]


# ---- --dry-run, deploy.env, --help ----------------------------------------------------------------------


def dry_run_commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line) for line in stdout.splitlines() if line and not line.startswith("#")]


@needs_gcloud
def test_dry_run_prints_every_command_and_sends_no_request(tmp_path: Path) -> None:
    apis = GoogleApis(secrets=SECRETS).start()
    try:
        env = base_env(tmp_path) | SETTINGS
        apis.write_gcloud_config(Path(env["CLOUDSDK_CONFIG"]), PROJECT)
        result = run_deploy(env, "--dry-run")
    finally:
        apis.stop()
    assert result.returncode == 0, result.stderr
    assert apis.requests == []
    commands = dry_run_commands(result.stdout)
    assert all(c[0] == "gcloud" and c[-2:] == [f"--project={PROJECT}", "--quiet"] for c in commands)
    verbs = [" ".join(c[1:4]) for c in commands]
    for name in FUNCTIONS:
        assert f"functions deploy {name}" in verbs
    assert verbs.count("secrets add-iam-policy-binding LAGO_API_BASE") == 3, "one grant per function"
    assert verbs.count("secrets add-iam-policy-binding OPENAI_API_KEY") == 1, "chat's only"
    assert verbs.count("iam service-accounts create") == 3
    assert "scheduler jobs create" in verbs
    deploys = {c[3]: c for c in commands if c[1:3] == ["functions", "deploy"]}
    assert "--allow-unauthenticated" in deploys["chat"] and "--allow-unauthenticated" in deploys["usage"]
    assert "--no-allow-unauthenticated" in deploys["replay_billing"]
    assert "--concurrency=16" in deploys["chat"] and "--entry-point=usage" in deploys["usage"]
    assert f"  CHAT_MODELS: '{MODELS}'" in result.stdout.replace("#", " ")  # the env file, shown


def test_dry_run_reads_deploy_env_and_the_environment_wins(tmp_path: Path, tripwire_gcloud: tuple[str, Path]) -> None:
    gcloud, marker = tripwire_gcloud
    env_file = tmp_path / "deploy.env"
    env_file.write_text('PROJECT_ID=from-file\nCHAT_MODELS="a/one,b/two"\nMAX_INSTANCES=3\nMEMORY=512Mi\n')
    env = base_env(tmp_path) | {"DEPLOY_ENV_FILE": str(env_file), "GCLOUD": gcloud, "MAX_INSTANCES": "9"}
    result = run_deploy(env, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    (chat,) = [c for c in dry_run_commands(result.stdout) if c[1:4] == ["functions", "deploy", "chat"]]
    assert chat[0] == gcloud
    assert "--project=from-file" in chat and "--memory=512Mi" in chat and "--max-instances=9" in chat
    assert "CHAT_MODELS: 'a/one,b/two'" in result.stdout


def test_dry_run_with_use_set_secrets_injects_them_instead(tmp_path: Path, tripwire_gcloud: tuple[str, Path]) -> None:
    gcloud, _ = tripwire_gcloud
    env = base_env(tmp_path) | SETTINGS | {"GCLOUD": gcloud, "USE_SET_SECRETS": "1"}
    result = run_deploy(env, "--dry-run")
    assert result.returncode == 0, result.stderr
    (chat,) = [c for c in dry_run_commands(result.stdout) if c[1:4] == ["functions", "deploy", "chat"]]
    expected = ",".join(f"{s}={s}:latest" for s in SECRETS)
    assert f"--set-secrets={expected}" in chat
    (usage,) = [c for c in dry_run_commands(result.stdout) if c[1:4] == ["functions", "deploy", "usage"]]
    assert f"--set-secrets={','.join(f'{s}={s}:latest' for s in LAGO_SECRETS)}" in usage
    assert "SECRETS:" not in result.stdout


def test_dry_run_passes_app_check_and_sign_in_settings_and_grants_their_roles(
    tmp_path: Path, tripwire_gcloud: tuple[str, Path]
) -> None:
    gcloud, _ = tripwire_gcloud
    guards = {
        "CHAT_APP_CHECK": "enforce",
        "CHAT_APP_CHECK_CONSUME_MODELS": "openai/gpt-4o-mini",
        "CHAT_SIGN_IN_PROVIDERS": "password,google.com",
        "CHAT_NEW_ACCOUNT_BUDGET_CENTS": "50",
    }
    result = run_deploy(base_env(tmp_path) | SETTINGS | guards | {"GCLOUD": gcloud}, "--dry-run")
    assert result.returncode == 0, result.stderr
    for name, value in guards.items():
        assert f"{name}: '{value}'" in result.stdout
    granted = {
        (member, role)
        for c in dry_run_commands(result.stdout)
        for member in c
        if member.startswith("--member=")
        for role in c
        if role.startswith("--role=roles/firebase")
    }
    # Only chat consumes App Check tokens; chat (the reservation) and usage (the budget shown)
    # read new accounts' creation times.
    assert granted == {
        (f"--member={MEMBER['chat']}", "--role=roles/firebaseappcheck.tokenVerifier"),
        (f"--member={MEMBER['chat']}", "--role=roles/firebaseauth.viewer"),
        (f"--member={MEMBER['usage']}", "--role=roles/firebaseauth.viewer"),
    }
    plain = run_deploy(base_env(tmp_path) | SETTINGS | {"GCLOUD": gcloud}, "--dry-run")
    assert "firebaseappcheck" not in plain.stdout and "firebaseauth" not in plain.stdout


def test_dry_run_with_vertex_ai_models_grants_chat_its_role_and_stores_no_key(
    tmp_path: Path, tripwire_gcloud: tuple[str, Path]
) -> None:
    gcloud, _ = tripwire_gcloud
    vertex = {"CHAT_MODELS": "vertex_ai/gemini-2.5-flash,openai/gpt-4o-mini", "VERTEXAI_LOCATION": "europe-west4"}
    result = run_deploy(base_env(tmp_path) | SETTINGS | vertex | {"GCLOUD": gcloud}, "--dry-run")
    assert result.returncode == 0, result.stderr
    commands = dry_run_commands(result.stdout)
    granted = [c for c in commands if "--role=roles/aiplatform.user" in c]
    # chat calls Vertex AI as its own account (OAuth tokens, no key); the others never do.
    assert [c[1:4] + [a for a in c if a.startswith("--member=")] for c in granted] == [
        ["projects", "add-iam-policy-binding", PROJECT, f"--member={MEMBER['chat']}"]
    ]
    env_files = result.stdout.split("# --env-vars-file of ")[1:]
    chat_env = next(part for part in env_files if part.startswith("chat "))
    assert f"VERTEXAI_PROJECT: '{PROJECT}'" in chat_env and "VERTEXAI_LOCATION: 'europe-west4'" in chat_env
    assert all("VERTEXAI" not in part for part in env_files if not part.startswith("chat "))
    # No secret for Vertex AI: only Lago's and the OpenAI key the settings name.
    secrets = {c[3] for c in commands if c[1:3] == ["secrets", "add-iam-policy-binding"]}
    assert secrets == set(SECRETS)
    plain = run_deploy(base_env(tmp_path) | SETTINGS | {"GCLOUD": gcloud}, "--dry-run")
    assert "aiplatform" not in plain.stdout and "VERTEXAI" not in plain.stdout


def test_help_describes_the_settings(tmp_path: Path) -> None:
    result = run_deploy(base_env(tmp_path), "--help")
    assert result.returncode == 0
    for word in ("PROJECT_ID", "CHAT_MODELS", "deploy.env", "--dry-run", "DEPLOY_PROVIDER_SECRETS"):
        assert word in result.stdout


def test_deploy_script_is_executable_and_passes_shellcheck() -> None:
    assert os.access(DEPLOY, os.X_OK)
    subprocess.run(["bash", "-n", str(DEPLOY)], check=True, timeout=30)
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run([shellcheck, str(DEPLOY)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


# ---- functions.yaml, as firebase-tools reads it ------------------------------------------------------

DISCOVERY = """
const fs = require("fs");
const yaml = require("yaml");
const discovery = require("firebase-tools/lib/deploy/functions/runtimes/discovery/v1alpha1");
const spec = yaml.parse(fs.readFileSync(process.argv[1], "utf8"));
const build = discovery.buildFromV1Alpha1(spec, "demo-project", "us-central1", "python311");
const triggers = Object.entries(build.endpoints).map(([name, endpoint]) => [name, endpoint.httpsTrigger]);
console.log(JSON.stringify(Object.fromEntries(triggers)));
"""


def test_firebase_deploy_keeps_replay_billing_private(tmp_path: Path) -> None:
    # firebase-tools makes an HTTPS function with no invoker public; "private" grants no one.
    staged = tmp_path / "functions"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "stage.py"), str(staged)], check=True, timeout=60)
    spec = str(staged / "functions.yaml")
    result = subprocess.run(
        ["node", "-e", DISCOVERY, spec], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout) == {"chat": {}, "usage": {}, "replay_billing": {"invoker": ["private"]}}
