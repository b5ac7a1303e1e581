#!/usr/bin/env bash
# Installs what Flotilla's tests need on Debian/Ubuntu: PostgreSQL, MariaDB and InfluxDB servers
# (the test kit starts throwaway instances from their binaries), their command-line clients,
# Prometheus (a test has it scrape a node's metrics), Chromium (a test drives the web console
# headless), and Python 3 (used by scripts/check-deps.py). Idempotent: does nothing when
# everything is there.
set -euo pipefail

packages=(postgresql postgresql-client mariadb-server mariadb-client influxdb curl python3 python3-venv openssl iproute2 prometheus chromium)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  # Packages install their own services; the test kit runs its own instances instead, so keep
  # the package scripts from starting (and failing to start) system-wide servers.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    created_policy=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created_policy" = 1 ] && $sudo rm -f "$policy"
fi

# The Rust tools the test command uses.
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done
# The Python clients (Flight SQL: ADBC and pyarrow; PostgreSQL protocol: psycopg; Chromium's
# DevTools protocol: websocket-client) and kubernetes-validate (the deployment's manifests
# against Kubernetes' schemas), in a virtual environment the test kit finds at the same path
# (crates/testkit/src/clients.rs). Versions are pinned: ADBC checks result schemas exactly.
venv="${FLOTILLA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/flotilla/venv}"
python_packages=(adbc-driver-manager==1.13.0 adbc-driver-flightsql==1.13.0 pyarrow==26.0.1 "psycopg[binary]==3.3.9" kubernetes-validate==1.34.1 websocket-client==1.8.0)
if ! "$venv/bin/python" -c 'import adbc_driver_flightsql.dbapi, pyarrow.flight, psycopg, kubernetes_validate, websocket' 2>/dev/null; then
  echo "setup: creating $venv with ${python_packages[*]}"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${python_packages[@]}"
fi

echo "setup: PostgreSQL $(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1), $(mariadbd --version 2>/dev/null | awk '{print $3}' || echo 'no MariaDB'), $(cargo --version)"
