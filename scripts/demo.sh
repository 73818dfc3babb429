#!/usr/bin/env bash
# ./scripts/demo.sh — from a fresh clone to a loaded DuckDB file, in one command.
#
# 1. creates .venv (the tap and the sandbox) and .meltano-venv (Meltano), then `meltano install`;
# 2. starts the Voluum sandbox on a free loopback port, with DEMO_DAYS (default 30) days of data;
# 3. runs `meltano run tap-voluum target-duckdb` against it (environment `sandbox`);
# 4. prints a summary: rows per DuckDB table next to the records the tap wrote, and report
#    totals next to the sandbox's own numbers; exits non-zero if any table lost or gained rows.
# The sandbox is stopped at the end, also on failure or Ctrl-C.  Everything it writes goes to
# demo-out/ (git-ignored): voluum.duckdb, meltano-run.jsonl, the sandbox's log, Meltano's state.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

DAYS="${DEMO_DAYS:-30}"
SEED="${DEMO_SEED:-1}"
OUT="$ROOT/demo-out"

ensure_venv
ensure_meltano

say "meltano install (plugin environments under .meltano/)"
t0=$SECONDS
"$MELTANO" install
say "meltano install took $((SECONDS - t0)) s"

rm -rf "$OUT"
mkdir -p "$OUT"
START="$("$ROOT/.venv/bin/python" -c 'import datetime as d, sys
print(d.datetime.now(d.timezone.utc).date() - d.timedelta(days=int(sys.argv[1])))' "$DAYS")"

say "starting the Voluum sandbox ($DAYS days of data from $START, seed $SEED)"
# In a session of its own (when setsid exists), so that Ctrl-C reaches Meltano and the tap but the
# sandbox keeps answering while they shut down; the EXIT trap below stops it.
SETSID=()
command -v setsid >/dev/null 2>&1 && SETSID=(setsid)
"${SETSID[@]}" "$ROOT/.venv/bin/voluum-sandbox" --port 0 --seed "$SEED" --start "$START" \
  --days "$DAYS" >"$OUT/sandbox.out" 2>"$OUT/sandbox.log" &
SANDBOX_PID=$!
stop_sandbox() {
  if kill -0 "$SANDBOX_PID" 2>/dev/null; then
    kill "$SANDBOX_PID" 2>/dev/null || true
    wait "$SANDBOX_PID" 2>/dev/null || true
    say "sandbox stopped"
  fi
}
trap stop_sandbox EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 240); do
  grep -q '^url=' "$OUT/sandbox.out" && break
  if ! kill -0 "$SANDBOX_PID" 2>/dev/null; then
    echo "error: the sandbox did not start:" >&2
    cat "$OUT/sandbox.log" >&2
    exit 1
  fi
  sleep 0.25
done
URL="$(sed -n 's/^url=//p' "$OUT/sandbox.out")"
[ -n "$URL" ] || { echo "error: the sandbox printed no url= line in 60 s" >&2; exit 1; }
say "sandbox listening on $URL"

export MELTANO_ENVIRONMENT=sandbox
export MELTANO_DATABASE_URI="sqlite:///$OUT/meltano.db"   # fresh state: a full sync each demo
export TAP_VOLUUM_API_URL="$URL"
export TAP_VOLUUM_ACCESS_ID="$(sed -n 's/^access_id=//p' "$OUT/sandbox.out")"
export TAP_VOLUUM_ACCESS_KEY="$(sed -n 's/^access_key=//p' "$OUT/sandbox.out")"
export TAP_VOLUUM_START_DATE="${START}T00:00:00Z"
export TARGET_DUCKDB_FILEPATH="$OUT/voluum.duckdb"

say "meltano run tap-voluum target-duckdb (full JSON log: demo-out/meltano-run.jsonl)"
t0=$SECONDS
if ! "$MELTANO" --log-format=json run tap-voluum target-duckdb 2>&1 \
  | tee "$OUT/meltano-run.jsonl" | "$ROOT/.venv/bin/python" "$ROOT/scripts/demo_summary.py" progress
then
  echo "error: meltano run failed (errors above; full log: demo-out/meltano-run.jsonl)" >&2
  exit 1
fi
RUN_SECONDS=$((SECONDS - t0))

"$ROOT/.venv/bin/python" "$ROOT/scripts/demo_summary.py" summary \
  --duckdb "$OUT/voluum.duckdb" \
  --duckdb-python "$ROOT/.meltano/loaders/target-duckdb/venv/bin/python" \
  --log "$OUT/meltano-run.jsonl" \
  --seed "$SEED" --start "$START" --days "$DAYS" \
  --seconds "$RUN_SECONDS"
