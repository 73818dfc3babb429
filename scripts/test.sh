#!/usr/bin/env bash
# ./scripts/test.sh [pytest args] — creates .venv, installs -e '.[test,dev]', runs pytest.
# Also installs the pinned Meltano into .meltano-venv for the end-to-end tests
# (tests/test_meltano.py, which need PostgreSQL's initdb/pg_ctl; .ci/run installs them).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ensure_venv
ensure_meltano
say "pytest $*"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
