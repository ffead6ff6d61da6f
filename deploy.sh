#!/usr/bin/env bash
# Deploys the Cloud Functions (2nd gen) in functions/main.py to a Google Cloud project with gcloud.
# Run ./deploy.sh --help for the settings; re-running it updates everything in place.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Who may call what: public functions check Firebase ID tokens in code; private ones only take
# callers that IAM lets in (replay_billing: Cloud Scheduler with an OIDC token of replay_billing's
# own service account), and replay_billing checks that token in code too.
PUBLIC_FUNCTIONS=(chat usage)
PRIVATE_FUNCTIONS=(replay_billing)
LAGO_SECRETS="LAGO_API_BASE LAGO_API_KEY LAGO_API_EVENT_CODE"
# Settings of the code that are passed on to the functions when they are set here.
OPTIONAL_FUNCTION_ENV=(
  LAGO_PLAN_CODE CHAT_MAX_TOKENS CHAT_BUDGET_CENTS LAGO_TEAM_CLAIM CHAT_CHECK_REVOKED
  CHAT_MAX_BODY_BYTES CHAT_MAX_MESSAGES CHAT_LLM_TIMEOUT_S CHAT_USAGE_CACHE_S
  BILLING_OUTBOX BILLING_REPLAY_BATCH BILLING_REPLAY_BUDGET_S CHAT_MODEL_PRICES LAGO_BILLS_COST
  CHAT_APP_CHECK CHAT_APP_CHECK_CONSUME_MODELS CHAT_REQUIRE_VERIFIED_EMAIL CHAT_SIGN_IN_PROVIDERS
  CHAT_NEW_ACCOUNT_BUDGET_CENTS CHAT_NEW_ACCOUNT_DAYS
)
# What each function touches: Firestore (the billing outbox) and its secrets. usage reads Lago
# only; replay_billing calls no model provider. Each function runs as its own service account.
FIRESTORE_FUNCTIONS=(chat replay_billing)
# Every variable this script reads; a value already in the environment beats deploy.env's.
SETTING_NAMES=(
  PROJECT_ID GOOGLE_CLOUD_PROJECT REGION CHAT_MODELS CORS_ORIGINS LAGO_API_CHARGE_BY
  LAGO_FLUSH_TIMEOUT_S SECRETS DEPLOY_PROVIDER_SECRETS USE_SET_SECRETS CHAT_REQUIRE_BILLING
  MIN_INSTANCES MAX_INSTANCES CONCURRENCY MEMORY CPU TIMEOUT SCHEDULER_JOB SCHEDULER_REGION
  SCHEDULE TIME_ZONE GCLOUD RETRIES RETRY_SLEEP_S VERTEXAI_PROJECT VERTEXAI_LOCATION
  "${OPTIONAL_FUNCTION_ENV[@]}"
)

usage() {
  cat <<'EOF'
Usage: ./deploy.sh [--dry-run] [--help]

Deploys the HTTP functions of functions/main.py to Cloud Functions (2nd gen), python311:
  chat, usage      public (allUsers may invoke; the code checks Firebase ID tokens)
  replay_billing   private; a Cloud Scheduler job POSTs to it with an OIDC token of
                   replay_billing's service account, the only account allowed to invoke it
and sets up what they need, each function with a service account of its own
(FUNCTION-fn@PROJECT_ID.iam.gserviceaccount.com, "_" as "-") holding only what it uses:
  chat             the Lago and provider secrets, roles/datastore.user (the billing outbox);
                   with vertex_ai/ models, roles/aiplatform.user instead of a provider key
  usage            the Lago secrets
  replay_billing   the Lago secrets, roles/datastore.user; run.invoker on itself
The account running this script needs iam.serviceAccounts.actAs on replay_billing's account
(roles/iam.serviceAccountUser) to give its identity to the scheduler job.

Gemini on Vertex AI (CHAT_MODELS with vertex_ai/ models, e.g. vertex_ai/gemini-2.5-flash) needs
no provider key: chat calls Vertex AI as its own service account, which this script grants
roles/aiplatform.user on VERTEXAI_PROJECT; LiteLLM gets that account's OAuth access tokens from
the metadata server through google-auth (Application Default Credentials). Nothing for Vertex AI
goes into Secret Manager or DEPLOY_PROVIDER_SECRETS. The Vertex AI API must be enabled there
(gcloud services enable aiplatform.googleapis.com).
Safe to re-run: functions, grants and the scheduler job are updated in place.

Options:
  --dry-run   print every gcloud command (shell-quoted, one a line) and run none; it assumes
              a first deploy (nothing exists yet)
  --help      this text

Settings come from the environment and from ./deploy.env (or the file named by DEPLOY_ENV_FILE),
which is sourced as bash when it exists; a variable set in the environment wins over the file.

Required:
  PROJECT_ID        Google Cloud project id (GOOGLE_CLOUD_PROJECT is accepted instead)
  CHAT_MODELS       comma-separated LiteLLM model names; the first is the default
Optional (default):
  REGION            us-central1
  CORS_ORIGINS      comma-separated browser origins allowed to call chat and usage ("")
  LAGO_API_CHARGE_BY (user_id)   LAGO_FLUSH_TIMEOUT_S (3)
  LAGO_PLAN_CODE, CHAT_MAX_TOKENS, CHAT_BUDGET_CENTS, LAGO_TEAM_CLAIM, CHAT_CHECK_REVOKED,
  CHAT_MAX_BODY_BYTES, CHAT_MAX_MESSAGES, CHAT_LLM_TIMEOUT_S, CHAT_USAGE_CACHE_S,
  BILLING_OUTBOX, BILLING_REPLAY_BATCH, BILLING_REPLAY_BUDGET_S (keep it under TIMEOUT),
  CHAT_MODEL_PRICES, LAGO_BILLS_COST,
  CHAT_APP_CHECK (enforce when deployed), CHAT_APP_CHECK_CONSUME_MODELS,
  CHAT_REQUIRE_VERIFIED_EMAIL, CHAT_SIGN_IN_PROVIDERS, CHAT_NEW_ACCOUNT_BUDGET_CENTS,
  CHAT_NEW_ACCOUNT_DAYS: passed to the functions when set. With CHAT_APP_CHECK_CONSUME_MODELS
                    chat's account also gets roles/firebaseappcheck.tokenVerifier (it consumes
                    the tokens), with CHAT_NEW_ACCOUNT_BUDGET_CENTS chat's and usage's
                    roles/firebaseauth.viewer (account creation times, for the budget both show)
  CHAT_REQUIRE_BILLING (true)  always passed: false lets chat serve unbilled when Lago is off
  DEPLOY_PROVIDER_SECRETS  provider key secrets, space-separated, e.g. "OPENAI_API_KEY" ("");
                    none for vertex_ai/ models (see above)
  VERTEXAI_PROJECT (PROJECT_ID)  VERTEXAI_LOCATION (us-central1): with vertex_ai/ models, the
                    project billed for Vertex AI and the location its calls go to (a region such
                    as europe-west1, or global), passed to chat
  SECRETS           every secret chat reads ("LAGO_API_BASE LAGO_API_KEY
                    LAGO_API_EVENT_CODE" + DEPLOY_PROVIDER_SECRETS); usage and replay_billing get
                    only the LAGO_* ones. A secret's id is the name of the variable it fills. The code reads them from Secret Manager at cold start
                    (the list reaches it as the SECRETS variable); they must exist beforehand:
                      printf %s "$VALUE" | gcloud secrets create NAME --data-file=-
  USE_SET_SECRETS=1 let Cloud Functions inject them instead (--set-secrets NAME=NAME:latest)
  MIN_INSTANCES (0)  MAX_INSTANCES (20)  CONCURRENCY (8)  MEMORY (1Gi)  CPU (1)  TIMEOUT (300s)
                    (gen2 needs CPU >= 1 when CONCURRENCY > 1)
  SCHEDULER_JOB (replay-billing)  SCHEDULER_REGION (REGION)  SCHEDULE ("*/5 * * * *")
  TIME_ZONE (Etc/UTC)
  GCLOUD (gcloud)   the gcloud command to run
  RETRIES (5), RETRY_SLEEP_S (10): tries of an IAM grant while a new service account propagates

Example deploy.env:
  PROJECT_ID=my-project
  REGION=europe-west1
  CHAT_MODELS=openai/gpt-4o-mini,anthropic/claude-3-5-haiku-latest
  CORS_ORIGINS=https://my-project.web.app
  DEPLOY_PROVIDER_SECRETS="OPENAI_API_KEY ANTHROPIC_API_KEY"
Or Gemini on Vertex AI, with no provider secret at all:
  CHAT_MODELS=vertex_ai/gemini-2.5-flash
  VERTEXAI_LOCATION=europe-west1

Exit status: 0 done; 1 a gcloud step failed or a secret is missing; 2 bad usage or settings.
EOF
}

die_usage() {
  printf 'deploy.sh: %s\n' "$@" >&2
  exit 2
}

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die_usage "unknown argument: $arg (see --help)" ;;
  esac
done

load_env_file() {
  local file=$1 name
  local -A from_env=()
  for name in "${SETTING_NAMES[@]}"; do
    if [[ -n "${!name+set}" ]]; then from_env[$name]=${!name}; fi
  done
  set -a
  # shellcheck source=/dev/null
  source "$file"
  set +a
  for name in "${!from_env[@]}"; do printf -v "$name" '%s' "${from_env[$name]}"; done
}

ENV_FILE=${DEPLOY_ENV_FILE:-$ROOT/deploy.env}
if [[ -f "$ENV_FILE" ]]; then load_env_file "$ENV_FILE"; fi

PROJECT_ID=${PROJECT_ID:-${GOOGLE_CLOUD_PROJECT:-}}
REGION=${REGION:-us-central1}
CHAT_MODELS=${CHAT_MODELS:-}
CORS_ORIGINS=${CORS_ORIGINS:-}
LAGO_API_CHARGE_BY=${LAGO_API_CHARGE_BY:-user_id}
LAGO_FLUSH_TIMEOUT_S=${LAGO_FLUSH_TIMEOUT_S:-3}
SECRETS=${SECRETS:-$LAGO_SECRETS ${DEPLOY_PROVIDER_SECRETS:-}}
CHAT_REQUIRE_BILLING=${CHAT_REQUIRE_BILLING:-true}
USE_SET_SECRETS=${USE_SET_SECRETS:-0}
MIN_INSTANCES=${MIN_INSTANCES:-0}
MAX_INSTANCES=${MAX_INSTANCES:-20}
CONCURRENCY=${CONCURRENCY:-8}
MEMORY=${MEMORY:-1Gi}
CPU=${CPU:-1}
TIMEOUT=${TIMEOUT:-300s}
SCHEDULER_JOB=${SCHEDULER_JOB:-replay-billing}
SCHEDULER_REGION=${SCHEDULER_REGION:-$REGION}
SCHEDULE=${SCHEDULE:-*/5 * * * *}
TIME_ZONE=${TIME_ZONE:-Etc/UTC}
RETRIES=${RETRIES:-5}
RETRY_SLEEP_S=${RETRY_SLEEP_S:-10}
VERTEXAI_PROJECT=${VERTEXAI_PROJECT:-$PROJECT_ID}
VERTEXAI_LOCATION=${VERTEXAI_LOCATION:-us-central1}
read -r -a GCLOUD_CMD <<<"${GCLOUD:-gcloud}"
read -r -a SECRET_NAMES <<<"$SECRETS"

# ---- checks that need no gcloud call ------------------------------------------------------------

missing=()
[[ -n "$PROJECT_ID" ]] || missing+=("PROJECT_ID (or GOOGLE_CLOUD_PROJECT): the Google Cloud project id")
[[ -n "$REGION" ]] || missing+=("REGION: the functions' region, e.g. us-central1")
[[ -n "${CHAT_MODELS// /}" ]] || missing+=("CHAT_MODELS: comma-separated LiteLLM models, the first is the default")
if ((${#missing[@]})); then
  {
    echo "deploy.sh: missing required settings:"
    printf '  - %s\n' "${missing[@]}"
    echo "Set them in the environment or in ${ENV_FILE}, e.g.:"
    echo "  PROJECT_ID=my-project REGION=us-central1 CHAT_MODELS=openai/gpt-4o-mini,openai/gpt-4o ./deploy.sh"
    echo "See ./deploy.sh --help for every setting."
  } >&2
  exit 2
fi

problems=()
for name in MIN_INSTANCES MAX_INSTANCES CONCURRENCY RETRIES RETRY_SLEEP_S; do
  [[ "${!name}" =~ ^[0-9]+$ ]] || problems+=("$name must be a whole number (got '${!name}')")
done
[[ "$CPU" =~ ^[0-9]+(\.[0-9]+)?$ ]] || problems+=("CPU must be a number of vCPUs such as 1 or 0.5 (got '$CPU')")
if [[ "$CONCURRENCY" =~ ^[0-9]+$ && "$CPU" =~ ^[0-9]+(\.[0-9]+)?$ ]] && ((CONCURRENCY > 1)) &&
  awk -v cpu="$CPU" 'BEGIN { exit !(cpu < 1) }'; then
  problems+=("CONCURRENCY=$CONCURRENCY needs CPU >= 1 on Cloud Functions 2nd gen (got CPU=$CPU)")
fi
[[ "$USE_SET_SECRETS" =~ ^[01]$ ]] || problems+=("USE_SET_SECRETS must be 0 or 1 (got '$USE_SET_SECRETS')")
[[ "$CHAT_REQUIRE_BILLING" =~ ^(true|false)$ ]] ||
  problems+=("CHAT_REQUIRE_BILLING must be true or false (got '$CHAT_REQUIRE_BILLING')")
[[ -z "${SERVICE_ACCOUNT:-}" ]] ||
  problems+=("SERVICE_ACCOUNT is no longer used: each function gets its own account (see --help)")
for secret in "${SECRET_NAMES[@]}"; do
  [[ "$secret" =~ ^[A-Za-z0-9_-]+$ ]] || problems+=("SECRETS: '$secret' is not a valid secret id")
done
for fn in "${PUBLIC_FUNCTIONS[@]}" "${PRIVATE_FUNCTIONS[@]}"; do
  grep -Eq "^def ${fn}\(" "$ROOT/functions/main.py" || problems+=("functions/main.py defines no entry point '$fn'")
done
if ((${#problems[@]})); then
  printf 'deploy.sh: %s\n' "${problems[@]}" >&2
  exit 2
fi
while read -r fn; do
  [[ " ${PUBLIC_FUNCTIONS[*]} ${PRIVATE_FUNCTIONS[*]} " == *" $fn "* ]] ||
    echo "deploy.sh: warning: functions/main.py defines '$fn', which this script does not deploy" >&2
done < <(grep -A1 -E '^@functions_framework\.http' "$ROOT/functions/main.py" | sed -nE 's/^def ([A-Za-z0-9_]+)\(.*/\1/p')

if ((!DRY_RUN)) && ! command -v "${GCLOUD_CMD[0]}" >/dev/null; then
  die_usage "'${GCLOUD_CMD[0]}' not found: install the Google Cloud SDK or set GCLOUD"
fi

# One runtime service account per function.
sa_email() { printf '%s-fn@%s.iam.gserviceaccount.com' "${1//_/-}" "$PROJECT_ID"; }
# The secrets a function reads: chat all of them, the others only Lago's.
function_secrets() {
  local secret
  for secret in "${SECRET_NAMES[@]}"; do
    if [[ "$1" == chat || "$secret" == LAGO_* ]]; then printf '%s\n' "$secret"; fi
  done
}
uses_firestore() { [[ " ${FIRESTORE_FUNCTIONS[*]} " == *" $1 "* ]]; }
# Gemini on Vertex AI: chat's own service account is the credential (no key), see --help.
uses_vertex_ai() { [[ ",${CHAT_MODELS// /}" == *,vertex_ai/* ]]; }
# replay_billing's URL (Cloud Functions' own URL of a function) is known before it is deployed:
# it is both the scheduler's target and the OIDC audience the code checks.
REPLAY_URL="https://${REGION}-${PROJECT_ID}.cloudfunctions.net/replay_billing"
REPLAY_SA=$(sa_email replay_billing)

# ---- running gcloud ------------------------------------------------------------------------------

# Under --dry-run the commands go to fd 3, the script's stdout, even from inside $(...) or >/dev/null.
exec 3>&1

quoted() {
  printf '%q' "$1"
  shift
  if (($#)); then printf ' %q' "$@"; fi
  printf '\n'
}

# A gcloud command that changes something: printed, and run unless --dry-run.
gc() {
  local cmd=("${GCLOUD_CMD[@]}" "$@" "--project=$PROJECT_ID" --quiet)
  if ((DRY_RUN)); then
    quoted "${cmd[@]}" >&3
  else
    printf '+ %s' "$(quoted "${cmd[@]}")" >&2
    printf '\n' >&2
    "${cmd[@]}"
  fi
}

# A read-only gcloud call whose answer decides what to do next: its stdout is the answer, its
# status says whether the thing exists. Under --dry-run it is printed and reports "missing".
probe() {
  local cmd=("${GCLOUD_CMD[@]}" "$@" "--project=$PROJECT_ID" --quiet)
  if ((DRY_RUN)); then
    quoted "${cmd[@]}" >&3
    return 1
  fi
  "${cmd[@]}"
}

# An IAM grant to a new service account, retried while the account propagates.
grant() {
  local try
  for ((try = 1; ; try++)); do
    if gc "$@" --format=none; then return 0; fi
    if ((try >= RETRIES)); then return 1; fi
    echo "deploy.sh: grant failed (try $try of $RETRIES), retrying in ${RETRY_SLEEP_S}s" >&2
    sleep "$RETRY_SLEEP_S"
  done
}

# ---- the function source: staged as `firebase deploy` stages it (scripts/stage.py) --------------

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/deploy-functions.XXXXXX")
trap 'rm -rf "$WORK_DIR"' EXIT
SOURCE_DIR="$WORK_DIR/source"
python3 "$ROOT/scripts/stage.py" "$SOURCE_DIR"

# Env vars as YAML files, one per function: values stay whole whatever they hold (commas in
# CHAT_MODELS...), and each function's SECRETS lists only its own.
yaml_line() {
  local value=${2//\'/\'\'}
  printf "%s: '%s'\n" "$1" "$value"
}
write_env_file() {
  local fn=$1 name secrets
  secrets=$(function_secrets "$fn" | paste -sd' ' -)
  yaml_line GOOGLE_CLOUD_PROJECT "$PROJECT_ID"
  yaml_line CHAT_MODELS "$CHAT_MODELS"
  yaml_line CORS_ORIGINS "$CORS_ORIGINS"
  yaml_line LITELLM_LOCAL_MODEL_COST_MAP True
  yaml_line LAGO_API_CHARGE_BY "$LAGO_API_CHARGE_BY"
  yaml_line LAGO_FLUSH_TIMEOUT_S "$LAGO_FLUSH_TIMEOUT_S"
  yaml_line CHAT_REQUIRE_BILLING "$CHAT_REQUIRE_BILLING"
  if [[ "$USE_SET_SECRETS" == 0 ]]; then yaml_line SECRETS "$secrets"; fi
  for name in "${OPTIONAL_FUNCTION_ENV[@]}"; do
    if [[ -n "${!name:-}" ]]; then yaml_line "$name" "${!name}"; fi
  done
  if [[ "$fn" == chat ]] && uses_vertex_ai; then
    yaml_line VERTEXAI_PROJECT "$VERTEXAI_PROJECT"
    yaml_line VERTEXAI_LOCATION "$VERTEXAI_LOCATION"
  fi
  if [[ "$fn" == replay_billing ]]; then
    yaml_line REPLAY_AUDIENCE "$REPLAY_URL"
    yaml_line REPLAY_INVOKER_EMAIL "$REPLAY_SA"
  fi
}
for fn in "${PUBLIC_FUNCTIONS[@]}" "${PRIVATE_FUNCTIONS[@]}"; do
  write_env_file "$fn" >"$WORK_DIR/env-$fn.yaml"
done
if ((DRY_RUN)); then
  echo "# --source: $SOURCE_DIR (main.py, shared/, requirements.txt, functions.yaml; removed on exit)"
  for fn in "${PUBLIC_FUNCTIONS[@]}" "${PRIVATE_FUNCTIONS[@]}"; do
    echo "# --env-vars-file of $fn holds:"
    sed 's/^/#   /' "$WORK_DIR/env-$fn.yaml"
  done
fi

# ---- 1. every secret exists (read-only, before anything changes) ---------------------------------

if existing=$(probe secrets list --format='value(name.basename())'); then
  absent=()
  for secret in "${SECRET_NAMES[@]}"; do
    grep -qxF "$secret" <<<"$existing" || absent+=("$secret")
  done
  if ((${#absent[@]})); then
    {
      echo "deploy.sh: these secrets do not exist in project $PROJECT_ID: ${absent[*]}"
      echo "Create each one (the value as the variable holds it), e.g.:"
      for secret in "${absent[@]}"; do
        echo "  printf %s \"\$${secret}\" | gcloud secrets create $secret --data-file=- --project=$PROJECT_ID"
      done
    } >&2
    exit 1
  fi
elif ((!DRY_RUN)); then
  echo "deploy.sh: could not list the secrets of project $PROJECT_ID" >&2
  exit 1
fi

# ---- 2. one service account per function, each granted only what its function uses ---------------

for fn in "${PUBLIC_FUNCTIONS[@]}" "${PRIVATE_FUNCTIONS[@]}"; do
  email=$(sa_email "$fn")
  if ! probe iam service-accounts describe "$email" --format='value(email)' >/dev/null 2>&1; then
    gc iam service-accounts create "${email%%@*}" --format=none \
      --display-name="Runtime of the $fn function" \
      --description="Runs $fn only; holds only the grants $fn needs (deploy.sh)"
  fi
  while read -r secret; do
    grant secrets add-iam-policy-binding "$secret" \
      --member="serviceAccount:$email" --role=roles/secretmanager.secretAccessor --condition=None
  done < <(function_secrets "$fn")
  if uses_firestore "$fn"; then
    grant projects add-iam-policy-binding "$PROJECT_ID" \
      --member="serviceAccount:$email" --role=roles/datastore.user --condition=None
  fi
done
# App Check replay protection (chat only: it consumes the tokens of CHAT_APP_CHECK_CONSUME_MODELS)
# calls verifyAppCheckToken; the new-account budget reads users' creation times in chat (the
# reservation) and usage (the budget it shows). Plain App Check verification needs no role.
if [[ -n "${CHAT_APP_CHECK_CONSUME_MODELS:-}" ]]; then
  grant projects add-iam-policy-binding "$PROJECT_ID" \
    --member="serviceAccount:$(sa_email chat)" --role=roles/firebaseappcheck.tokenVerifier --condition=None
fi
# Vertex AI: chat calls it as its own account (OAuth tokens from the metadata server), so the
# account needs aiplatform.endpoints.predict in the project Vertex AI bills, and no key exists.
if uses_vertex_ai; then
  grant projects add-iam-policy-binding "$VERTEXAI_PROJECT" \
    --member="serviceAccount:$(sa_email chat)" --role=roles/aiplatform.user --condition=None
fi
if [[ -n "${CHAT_NEW_ACCOUNT_BUDGET_CENTS:-}" ]]; then
  for fn in chat usage; do
    grant projects add-iam-policy-binding "$PROJECT_ID" \
      --member="serviceAccount:$(sa_email "$fn")" --role=roles/firebaseauth.viewer --condition=None
  done
fi

# ---- 3. the functions ----------------------------------------------------------------------------

deploy_function() {
  local name=$1 access=$2
  local flags=(
    functions deploy "$name" --gen2 --runtime=python311 "--region=$REGION" "--entry-point=$name"
    --trigger-http "--source=$SOURCE_DIR" "--service-account=$(sa_email "$name")"
    "--env-vars-file=$WORK_DIR/env-$name.yaml"
    "--min-instances=$MIN_INSTANCES" "--max-instances=$MAX_INSTANCES" "--concurrency=$CONCURRENCY"
    "--memory=$MEMORY" "--cpu=$CPU" "--timeout=$TIMEOUT" "$access" --format='value(serviceConfig.uri)'
  )
  if [[ "$USE_SET_SECRETS" == 1 ]]; then
    local pairs=() secret
    while read -r secret; do pairs+=("$secret=$secret:latest"); done < <(function_secrets "$name")
    flags+=("--set-secrets=$(IFS=,; echo "${pairs[*]}")")
  fi
  gc "${flags[@]}"
}

# Each deploy prints the function's URL (none under --dry-run).
declare -A URLS=()
for fn in "${PUBLIC_FUNCTIONS[@]}"; do URLS[$fn]=$(deploy_function "$fn" --allow-unauthenticated); done
for fn in "${PRIVATE_FUNCTIONS[@]}"; do URLS[$fn]=$(deploy_function "$fn" --no-allow-unauthenticated); done

# replay_billing: Cloud Scheduler's OIDC token is replay_billing's own account's, the only invoker.
grant functions add-invoker-policy-binding replay_billing "--region=$REGION" "--member=serviceAccount:$REPLAY_SA"

# ---- 4. the Cloud Scheduler job that drains the billing outbox -----------------------------------

if ((!DRY_RUN)) && [[ "${URLS[replay_billing]}" != https://* ]]; then
  echo "deploy.sh: replay_billing was deployed but gcloud reported no URL for it (got '${URLS[replay_billing]}')" >&2
  exit 1
fi
job_flags=(
  "$SCHEDULER_JOB" "--location=$SCHEDULER_REGION" "--schedule=$SCHEDULE" "--time-zone=$TIME_ZONE"
  "--uri=$REPLAY_URL" --http-method=POST "--attempt-deadline=$TIMEOUT"
  "--oidc-service-account-email=$REPLAY_SA" "--oidc-token-audience=$REPLAY_URL"
  --description="Replays the billing outbox into Lago"
)
if probe scheduler jobs describe "$SCHEDULER_JOB" "--location=$SCHEDULER_REGION" --format='value(name)' >/dev/null 2>&1; then
  gc scheduler jobs update http "${job_flags[@]}" --format=none
else
  gc scheduler jobs create http "${job_flags[@]}" --format=none
fi

if ((!DRY_RUN)); then
  echo "Deployed to project $PROJECT_ID, region $REGION:"
  for fn in "${PUBLIC_FUNCTIONS[@]}" "${PRIVATE_FUNCTIONS[@]}"; do
    printf '  %-15s %s\n' "$fn" "${URLS[$fn]}"
  done
  echo "  scheduler job   $SCHEDULER_JOB ($SCHEDULE, $TIME_ZONE) -> replay_billing"
fi
