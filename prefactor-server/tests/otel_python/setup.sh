#!/usr/bin/env bash
# Makes the Python venv of tests/otlp_python.rs: the official OpenTelemetry Python SDK and its
# OTLP/HTTP (protobuf) exporter, pinned, from PyPI. A venv that already has the pinned versions
# is reused as it is (no network). Usage: setup.sh VENV_DIR
set -euo pipefail
VENV="${1:?usage: setup.sh VENV_DIR}"
OTEL_VERSION="1.45.2"
make_venv() { python3 -m venv "$VENV"; }
if [ ! -x "$VENV/bin/python" ] && ! make_venv; then
    rm -rf "$VENV"
    # Debian ships venv's ensurepip separately (python3-venv); CI runs as root.
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
        make_venv
    else
        echo "setup.sh: 'python3 -m venv' failed; install python3 and python3-venv" >&2
        exit 1
    fi
fi
installed="$("$VENV/bin/python" -m pip show opentelemetry-exporter-otlp-proto-http 2>/dev/null || true)"
if ! grep -qx "Version: $OTEL_VERSION" <<<"$installed"; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "opentelemetry-sdk==$OTEL_VERSION" "opentelemetry-exporter-otlp-proto-http==$OTEL_VERSION"
fi
