#!/usr/bin/env bash
# dealerbot's one entry point for people and CI: sets everything up, then runs what you ask.
#   ./run.sh demo     set up, start the sandbox, run the scraping bots, write the review workbook
#   ./run.sh test     set up, run the test suite (real Chromium against the sandbox, a throwaway PostgreSQL)
#   ./run.sh typecheck  set up, type-check src/dealerbot with mypy (pyproject.toml's [tool.mypy])
#   ./run.sh soak     set up, run the slow soak tests
#   ./run.sh bench    set up, run the benchmarks in bench/ (./run.sh bench scrape|rekey|portal|deliveries|followups|desktop|group|print|canary|form|login|startup|hosts [args] for one)
#   ./run.sh mutants  set up, mutation-test the pure modules against their unit tests, print the survivors
#   ./run.sh setup    only set up (.venv, Python packages, a browser)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

need_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "run as root or install sudo to install: $*" >&2; return 1; fi; }

apt_install() {
  command -v apt-get >/dev/null || return 1
  if [ ! -f /tmp/.dealerbot-apt-updated ]; then need_root apt-get update -qq && touch /tmp/.dealerbot-apt-updated; fi
  need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

setup() {
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "dealerbot needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 2
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && "$PYTHON" -m venv "$VENV"; }
  fi
  local stamp="$VENV/.installed-$(cat pyproject.toml setup.py | cksum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    touch "$stamp"
  fi
  # A browser without downloading one from a browser vendor: Playwright's own when present,
  # else a system Chromium/Chrome/Edge; on Debian/Ubuntu install Chromium from the distribution.
  if ! "$VENV/bin/python" -m dealerbot.web.browser_check >/dev/null 2>&1; then
    echo "no browser found: installing Chromium from the distribution's packages" >&2
    apt_install chromium chromium-headless-shell || apt_install chromium || apt_install chromium-browser || {
      "$VENV/bin/python" -m dealerbot.web.browser_check; exit 2; }
  fi
  # The desktop DMS bot and its tests: a virtual display, window control, the clipboard.
  missing=""
  for tool in Xvfb:xvfb xdotool:xdotool xclip:xclip; do
    command -v "${tool%%:*}" >/dev/null || missing="$missing ${tool##*:}"
  done
  if [ -n "$missing" ]; then
    apt_install $missing || echo "note: without$missing the desktop (client/server) DMS tests are skipped" >&2
  fi
  # The review round-trip test: a real spreadsheet application (LibreOffice, headless) saves the workbook.
  if ! command -v soffice >/dev/null; then
    apt_install libreoffice-calc-nogui ||
      echo "note: without libreoffice-calc-nogui the review round-trip test fails (it needs LibreOffice)" >&2
  fi
  # Chinese glyphs in failure screenshots: a small CJK font when the system has none.
  if command -v fc-list >/dev/null && [ -z "$(fc-list :lang=zh 2>/dev/null | head -1)" ]; then
    apt_install fonts-wqy-microhei || echo "note: no Chinese font; screenshots will show boxes for Chinese text" >&2
  fi
}

# The dealership-group tests need a real PostgreSQL. DEALERBOT_TEST_POSTGRES_URL names one
# (an empty database the tests may wipe); otherwise a local throwaway cluster is started (Debian's
# postgresql package, installed when missing) with a role and database for the tests.
# DEALERBOT_TEST_POSTGRES=off runs without them: those tests then fail loudly instead of skipping.
setup_postgres() {
  [ -n "${DEALERBOT_TEST_POSTGRES_URL:-}" ] && return 0
  if [ "${DEALERBOT_TEST_POSTGRES:-}" = "off" ]; then
    echo "note: DEALERBOT_TEST_POSTGRES=off: the dealership-group tests will fail (no PostgreSQL)" >&2; return 0
  fi
  command -v pg_lsclusters >/dev/null || apt_install postgresql || {
    echo "the group tests need PostgreSQL: install it (Debian: apt-get install postgresql), or set" \
         "DEALERBOT_TEST_POSTGRES_URL to an empty test database, or DEALERBOT_TEST_POSTGRES=off to run without" >&2; exit 2; }
  if [ -z "$(pg_lsclusters -h 2>/dev/null | head -1)" ]; then
    local ver; ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
    need_root pg_createcluster "$ver" main >/dev/null || { echo "could not create a PostgreSQL cluster" >&2; exit 2; }
  fi
  local pg_ver pg_name pg_port _rest
  read -r pg_ver pg_name pg_port _rest < <(pg_lsclusters -h | head -1)
  need_root pg_ctlcluster "$pg_ver" "$pg_name" start >/dev/null 2>&1 || true
  as_pg() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }
  as_pg "psql -p $pg_port -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='dealerbot'\"" | grep -q 1 ||
    as_pg "psql -p $pg_port -qc \"CREATE ROLE dealerbot LOGIN PASSWORD 'dealerbot'\"" >/dev/null || {
      echo "PostgreSQL cluster $pg_ver/$pg_name (port $pg_port) is not reachable as user postgres;" \
           "set DEALERBOT_TEST_POSTGRES_URL or DEALERBOT_TEST_POSTGRES=off" >&2; exit 2; }
  as_pg "psql -p $pg_port -qtAc \"SELECT 1 FROM pg_database WHERE datname='dealerbot_test'\"" | grep -q 1 ||
    as_pg "createdb -p $pg_port -O dealerbot dealerbot_test"
  export DEALERBOT_TEST_POSTGRES_URL="postgresql+psycopg://dealerbot:dealerbot@127.0.0.1:$pg_port/dealerbot_test"
  : "${DEALERBOT_BENCH_POSTGRES_URL:=$DEALERBOT_TEST_POSTGRES_URL}"; export DEALERBOT_BENCH_POSTGRES_URL
}

cmd=${1:-demo}
shift || true
case "$cmd" in
  setup) setup ;;
  demo) setup; exec "$VENV/bin/dealerbot" demo "$@" ;;
  test)
    setup
    setup_postgres
    set +e
    # Two workers (pytest-xdist), each given whole test files (their module fixtures set up once);
    # tests/conftest.py keeps the PostgreSQL and the timing tests from running at once.
    # DEALERBOT_TEST_WORKERS=0 runs everything in this one process.
    "$VENV/bin/python" -m pytest -n "${DEALERBOT_TEST_WORKERS:-2}" --dist loadfile "$@"
    rc=$?
    set -e
    # pytest's 5 means no test ran: that is a failure, not a pass.
    if [ "$rc" -eq 5 ]; then echo "no tests ran" >&2; exit 1; fi
    exit "$rc" ;;
  typecheck) setup; exec "$VENV/bin/python" -m mypy "$@" ;;  # files and options: pyproject.toml [tool.mypy]
  soak) setup; setup_postgres; exec "$VENV/bin/python" -m pytest -m slow -o addopts="" "$@" ;;
  bench)
    setup
    case "${1:-all}" in
      scrape) shift; exec "$VENV/bin/python" bench/scrape_orders.py "$@" ;;
      rekey) shift; exec "$VENV/bin/python" bench/rekey.py "$@" ;;
      portal) shift; exec "$VENV/bin/python" bench/own_portal.py "$@" ;;
      followups) shift; exec "$VENV/bin/python" bench/followups.py "$@" ;;
      deliveries) shift; exec "$VENV/bin/python" bench/deliveries.py "$@" ;;
      desktop) shift; exec "$VENV/bin/python" bench/desktop_rekey.py "$@" ;;
      group) shift; exec "$VENV/bin/python" bench/group.py "$@" ;;
      print) shift; exec "$VENV/bin/python" bench/workbook_print.py "$@" ;;
      canary) shift; exec "$VENV/bin/python" bench/canary.py "$@" ;;
      form) shift; exec "$VENV/bin/python" bench/moving_form.py "$@" ;;
      login) shift; exec "$VENV/bin/python" bench/login_handoff.py "$@" ;;
      startup) shift; exec "$VENV/bin/python" bench/startup.py "$@" ;;
      hosts) shift; exec "$VENV/bin/python" bench/allowed_hosts.py "$@" ;;
      all) rc=0
        "$VENV/bin/python" bench/scrape_orders.py || rc=1
        "$VENV/bin/python" bench/rekey.py || rc=1
        "$VENV/bin/python" bench/own_portal.py || rc=1
        "$VENV/bin/python" bench/deliveries.py || rc=1
        "$VENV/bin/python" bench/moving_form.py || rc=1
        "$VENV/bin/python" bench/desktop_rekey.py || rc=1
        "$VENV/bin/python" bench/canary.py || rc=1
        "$VENV/bin/python" bench/login_handoff.py || rc=1
        "$VENV/bin/python" bench/startup.py || rc=1
        "$VENV/bin/python" bench/allowed_hosts.py || rc=1
        if command -v soffice >/dev/null || command -v libreoffice >/dev/null; then
          "$VENV/bin/python" bench/workbook_print.py || rc=1
        else echo "bench print skipped: LibreOffice (soffice) is not installed" >&2; fi
        if [ -n "${DEALERBOT_BENCH_POSTGRES_URL:-${DEALERBOT_TEST_POSTGRES_URL:-}}" ]; then
          "$VENV/bin/python" bench/group.py || rc=1
        else echo "bench group skipped: set DEALERBOT_BENCH_POSTGRES_URL (a PostgreSQL database it may empty)" >&2; fi
        exit "$rc" ;;
      *) echo "usage: ./run.sh bench [scrape|rekey|portal|form|desktop|group|print|canary|login|startup|hosts] [args...]" >&2; exit 2 ;;
    esac ;;
  mutants)
    setup
    # mutmut mutates the files pyproject.toml's [tool.mutmut] names and runs their unit tests
    # against each mutant; only the pure functions below are mutated (the store loop, the log
    # sinks, the workbook export and the loading of timetable files are integration code).
    # docs/testing.md ("Mutation testing") lists the survivors known to be harmless.
    pure=(
      'dealerbot.data.validate.*'
      'dealerbot.data.mapping.*'
      'dealerbot.rekey.reconcile.x_classify__mutmut_*' 'dealerbot.rekey.reconcile.x__plan_*' 'dealerbot.rekey.reconcile.x_match_customer__mutmut_*'
      'dealerbot.rekey.reconcile.x_customer_note__mutmut_*' 'dealerbot.rekey.reconcile.x__norm__mutmut_*' 'dealerbot.rekey.reconcile.x*Indexes*'
      'dealerbot.rekey.reconcile.x__decide__mutmut_*'
      'dealerbot.review.sheets.x__read_row__mutmut_*' 'dealerbot.review.sheets.x__check_edit__mutmut_*' 'dealerbot.review.sheets.x__cell_text__mutmut_*'
      'dealerbot.logsetup.x*Masker*' 'dealerbot.logsetup.x_mask_personal_value__mutmut_*' 'dealerbot.logsetup.x_is_secret_name__mutmut_*'
      'dealerbot.schedule.timetable.x_is_workday__mutmut_*' 'dealerbot.schedule.timetable.x_parse_every__mutmut_*' 'dealerbot.schedule.timetable.x*Blackout*'
      'dealerbot.schedule.timetable.x*JobTrigger*' 'dealerbot.schedule.timetable.x*Job*trigger__mutmut_*' 'dealerbot.schedule.timetable.x_fire_times__mutmut_*'
    )
    rm -rf mutants  # a fresh copy: no result left over from an earlier run or an older source
    started=$(date +%s)
    # (mutmut lists every mutant it was given at the end: the killed ones are left out here)
    "$VENV/bin/mutmut" run "$@" "${pure[@]}" | { grep -av '^🎉 ' || true; }
    echo
    echo "Surviving mutants (one in full: $VENV/bin/mutmut show NAME; the harmless ones: docs/testing.md):"
    "$VENV/bin/mutmut" results --all true | awk '
      { line = $0; sub(/^ +/, "", line); i = index(line, ": "); name = substr(line, 1, i - 1); st = substr(line, i + 2)
        if (st == "not checked") next  # outside the functions above
        split(name, part, "."); mod = part[2]; total[mod]++
        if (st == "killed") killed[mod]++; else { print "  " st ": " name; left++ } }
      END { print ""; print "Mutation score (killed / mutants):"
            for (m in total) printf "  %-10s %4d / %4d\n", m, killed[m], total[m]
            printf "%d not killed\n", left }'
    echo "wall time: $(( $(date +%s) - started )) s" ;;
  *) echo "usage: ./run.sh [demo|test|typecheck|soak|bench|mutants|setup] [args...]" >&2; exit 2 ;;
esac
