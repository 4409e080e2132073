#!/usr/bin/env bash
# Installs what the tests need on a fresh machine, and nothing that is already there:
#   - VictoriaLogs, the real Loki-protocol receiver (go install)
#   - Debian packages: logrotate (real rotation tests), MariaDB (slow-log multiline test)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin:$(go env GOPATH)/bin"

need=()
command -v logrotate >/dev/null 2>&1 || need+=(logrotate)
command -v mariadbd >/dev/null 2>&1 || need+=(mariadb-server mariadb-client)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing ${need[*]}; run as root or: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "== apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null
fi

if ! command -v victoria-logs >/dev/null 2>&1; then
  echo "== go install victoria-logs ${VL_VERSION:-v1.52.1}"
  go install "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@${VL_VERSION:-v1.52.1}"
fi
