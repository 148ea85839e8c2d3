#!/usr/bin/env bash
# The fence under load: repeat the scheduler-restart, agent-restart and lost-site tests
# (tests/integration/test_job_lifecycle.py) ROUNDS times (default 20) while stress-ng
# hogs the CPU, inside a private network namespace, and count double starts: runs of
# one job alive at the same time (each test asserts none, from Ray's own start and end
# times) and jobs started again after a restart. Bounded: stops by itself.
#
#   scripts/stress_fencing.sh [ROUNDS] [HOGS]     # HOGS: stress-ng CPU workers (default 1)
#
# Installs stress-ng with apt where it is missing (as root); writes the pytest log to
# stress-fencing.log and prints one JSON line with the counts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-20}
hogs=${2:-1}
bash scripts/setup.sh >/dev/null
if ! command -v stress-ng >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -qq stress-ng >/dev/null || { apt-get update -qq && apt-get install -y -qq stress-ng >/dev/null; }
    else
        echo "error: stress-ng not found (apt-get install stress-ng)" >&2
        exit 1
    fi
fi
tests="test_scheduler_killed_mid_run_loses_nothing_and_starts_nothing_twice or test_agent_killed_mid_run_loses_nothing_and_starts_nothing_twice or test_a_site_lost_past_the_timeout_requeues_its_run_and_stops_the_stale_one"
log=stress-fencing.log
started=$(date +%s)
set +e
unshare -n sh -c "ip link set lo up
    stress-ng --cpu $hogs --timeout $((rounds * 240))s --quiet & hog=\$!
    .venv/bin/python -m pytest -p no:cacheprovider tests/integration/test_job_lifecycle.py -k '$tests' \
        --count $rounds -o addopts='' -q --timeout 600 -rf
    status=\$?
    kill \$hog 2>/dev/null; wait \$hog 2>/dev/null
    exit \$status" >"$log" 2>&1
status=$?
set -e
count() { grep -Eo "[0-9]+ $1" "$log" | tail -1 | cut -d' ' -f1 || true; }
passed=$(count passed)
failed=$(count failed)
double=$(grep -c 'double start:\|assert done.attempt == 1\|Ray jobs for one job' "$log" || true)
printf '{"rounds": %d, "tests": %d, "passed": %d, "failed": %d, "double_starts": %d, "cpu_hogs": %d, "wall_s": %d}\n' \
    "$rounds" "$((rounds * 3))" "${passed:-0}" "${failed:-0}" "$double" "$hogs" "$(( $(date +%s) - started ))"
exit $status
