# shellcheck shell=bash
# Shared setup for the scripts (test, demo, bench, chaos, validate-deploy), which source this file:
# it moves to the repository root and provides the helpers below.

EF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$EF_ROOT" || exit

# Prints a header for a step, so that long build logs are easy to scan.
step() {
  printf '\n==> %s\n' "$*" >&2
}

# Exports DATABASE_URL. A URL already in the environment (e.g. a database that
# CI provides) is used as is; otherwise this checkout's own cluster is started.
use_database() {
  if [[ -n ${DATABASE_URL:-} ]]; then
    step "Using DATABASE_URL from the environment"
  else
    step "Starting PostgreSQL (scripts/postgres start)"
    DATABASE_URL="$(scripts/postgres start | sed -n 's/^DATABASE_URL=//p')"
    if [[ -z $DATABASE_URL ]]; then
      echo "scripts/postgres start printed no DATABASE_URL" >&2
      exit 1
    fi
    echo "DATABASE_URL=$DATABASE_URL" >&2
    # This checkout owns the server, so tests may restart it (see DatabaseRestartTests).
    export EVENTFLEET_TEST_RESTART_DATABASE="$EF_ROOT/scripts/postgres restart-immediate"
  fi
  export DATABASE_URL
}

# Exports CHROMIUM, the headless browser of the dashboard's browser test (DashboardBrowserTests),
# installing Debian's chromium with scripts/chromium when there is none. CI (CI=true) must run that
# test, so there a failed install fails (the explicit return: a caller may run this where `set -e`
# does not apply); elsewhere the test is skipped, and this says why.
use_chromium() {
  step "Finding chromium for the dashboard's browser test (scripts/chromium)"
  local path
  if [[ ${CI:-} == true ]]; then
    path="$(scripts/chromium)" || return 1
  elif ((EUID != 0)) && ! scripts/chromium --check >/dev/null 2>&1 && ! sudo -n true 2>/dev/null; then
    echo "no chromium, and installing it needs a password: the dashboard's browser test is skipped (run scripts/chromium to install it)" >&2
    return 0
  elif ! path="$(scripts/chromium)"; then
    echo "no chromium found or installed (see above): the dashboard's browser test is skipped" >&2
    return 0
  fi
  echo "CHROMIUM=$path" >&2
  export CHROMIUM="$path"
}
