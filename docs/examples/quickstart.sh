#!/usr/bin/env bash
# Install the tools into .venv and run them once.
#  - With a proxy configured (LITELLM_MASTER_KEY in the environment or in .env): read only, it
#    lists your users and dry-runs docs/examples/user_addlist.csv against your proxy.
#  - Without: it starts the bundled LiteLLM stand-in and runs all four scripts against it.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== installing into .venv"
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
py=.venv/bin/python
examples=docs/examples
out=$(mktemp -d)

if [ -n "${LITELLM_MASTER_KEY:-}" ] || grep -qs '^LITELLM_MASTER_KEY=.' .env; then
  echo "== your proxy (from the environment or .env): reading only"
  $py list_user.py --format table --columns email,role,team_name,key_count
  $py add_user.py --csv-file "$examples/user_addlist.csv" --dry-run || true
  echo "== done. The manuals in docs/ show how to make changes."
  exit 0
fi

echo "== no proxy configured: starting the LiteLLM stand-in"
$py -m tests.support.standin --port 0 --teams engineering,research,support > "$out/standin.txt" &
standin=$!
trap 'kill $standin 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q '^LITELLM_MASTER_KEY=' "$out/standin.txt" 2>/dev/null && break; sleep 0.1; done
export $(grep '^LITELLM_' "$out/standin.txt")
echo "   $LITELLM_BASE_URL"

run() { echo; echo "\$ python $*"; $py "$@" || echo "(exit $?)"; }
run add_user.py --csv-file "$examples/user_addlist.csv" --output-dir "$out" --dry-run
run add_user.py --csv-file "$examples/user_addlist.csv" --output-dir "$out"
run list_user.py --format table --columns email,role,team_name,key_count
run del_user.py --csv-file "$examples/user_dellist.csv" --output-dir "$out" --dry-run
run sync_user.py --csv-file "$examples/user_list.csv" --output-dir "$out" --dry-run
run sync_user.py --csv-file "$examples/user_list.csv" --output-dir "$out"
run sync_user.py --csv-file "$examples/user_list.csv" --check
run list_user.py --format table --columns email,role,team_name,key_count
echo
echo "== done. Result files (API keys included) are in $out; the stand-in has stopped."
echo "   Next: copy .env.example to .env, point it at your proxy, and read docs/."
