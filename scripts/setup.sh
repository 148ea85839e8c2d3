#!/usr/bin/env bash
# Set up everything the demo and the tests need, idempotently:
#   .venv/ with Python >= 3.11 and powerplane installed editable with its dev extras,
#   a helm 3 binary in .tools/ (for the chart tests; skipped with POWERPLANE_SKIP_HELM=1),
#   and, where apt is available and we are root, the real servers some tests run against:
#   Debian's prometheus (with promtool), chromium + chromium-driver (the dashboard's
#   browser test) and postgresql (the PostgreSQL store's tests run its binaries in a
#   temporary folder). Without them those tests skip and say why. POWERPLANE_SKIP_APT=1 skips.
# Re-runs are no-ops until pyproject.toml changes. PYTHON=/path/to/python3.11 to choose.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

install_debian_packages() {
    local wanted=() missing=()
    command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || wanted+=(prometheus)
    command -v chromium >/dev/null 2>&1 || wanted+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || wanted+=(chromium-driver)
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || wanted+=(postgresql)
    [[ ${#wanted[@]} -gt 0 ]] || return 0
    if [[ -n "${POWERPLANE_SKIP_APT:-}" ]] || ! command -v apt-get >/dev/null 2>&1 || [[ $(id -u) -ne 0 ]]; then
        echo "not installing ${wanted[*]} (no apt-get, not root, or POWERPLANE_SKIP_APT set): the tests that need them skip"
        return 0
    fi
    echo "installing Debian packages: ${wanted[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${wanted[@]}" >/tmp/powerplane-apt.log 2>&1; then
        # The package lists may be stale or missing on a fresh machine: refresh once and retry.
        DEBIAN_FRONTEND=noninteractive apt-get update -q >>/tmp/powerplane-apt.log 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${wanted[@]}" >>/tmp/powerplane-apt.log 2>&1 ||
            { missing=("${wanted[@]}"); echo "warning: apt-get could not install ${missing[*]} (see /tmp/powerplane-apt.log): the tests that need them skip"; }
    fi
    # Debian starts a prometheus service on install; the tests run their own, on loopback only.
    if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus prometheus-node-exporter >/dev/null 2>&1 || true; fi
    # So may postgresql (a cluster on port 5432): stop the one it just created; the tests start their own.
    if [[ " ${wanted[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null 2>&1; then
        for cluster in /etc/postgresql/*/main; do
            [[ -d "$cluster" ]] && pg_ctlcluster "$(basename "$(dirname "$cluster")")" main stop >/dev/null 2>&1 || true
        done
    fi
    return 0
}

pick_python() {
    for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [[ -n "$candidate" ]] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    echo "error: Python >= 3.11 not found; set PYTHON=/path/to/python3.11" >&2
    return 1
}

if [[ ! -x .venv/bin/python ]]; then
    python=$(pick_python)
    echo "creating .venv with $($python --version)"
    "$python" -m venv .venv
fi

stamp=.venv/.powerplane-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    echo "installing powerplane and its pinned dependencies into .venv (first time: a few minutes)"
    .venv/bin/python -m pip install --disable-pip-version-check -q -e ".[dev]"
    echo "$want" > "$stamp"
fi

# The chart tests need helm; the demo does not (scripts/demo.sh sets POWERPLANE_SKIP_HELM=1).
if [[ -z "${POWERPLANE_HELM:-}" && -z "${POWERPLANE_SKIP_HELM:-}" ]]; then
    bash scripts/install_helm.sh >/dev/null || {
        command -v helm >/dev/null 2>&1 || { echo "error: no helm: install helm 3 or set POWERPLANE_HELM" >&2; exit 1; }
        echo "using helm from PATH: $(command -v helm)"
    }
fi

install_debian_packages
