#!/bin/bash
# Container health check of the apitap image: GET a health path on this container's admin
# port over loopback and succeed only on HTTP 200.
#
#   apitap-healthcheck [PATH]        PATH defaults to /health/live
#
# The port comes from APITAP_ADMIN_ADDR (the same variable the binaries read); a wildcard
# host (0.0.0.0, ::) is checked on 127.0.0.1. Without APITAP_ADMIN_ADDR the two defaults
# are tried: 127.0.0.1:7401 (coordinator), then 127.0.0.1:7402 (worker).
#
# Plain bash with /dev/tcp instead of curl: see the note in deploy/Dockerfile.
set -u

path="${1:-/health/live}"
if [[ -n "${APITAP_ADMIN_ADDR:-}" ]]; then
  addrs=("$APITAP_ADMIN_ADDR")
else
  addrs=(127.0.0.1:7401 127.0.0.1:7402)
fi

for addr in "${addrs[@]}"; do
  port="${addr##*:}"
  host="${addr%:*}"
  host="${host#[}"
  host="${host%]}"
  case "$host" in
    "" | 0.0.0.0 | :: | localhost) host=127.0.0.1 ;;
  esac
  # A refused connection is not fatal here: the next default may answer.
  if ! exec 3<>"/dev/tcp/$host/$port"; then
    continue
  fi 2>/dev/null
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
  status=""
  IFS= read -r -t 3 status <&3
  exec 3<&- 3>&-
  status="${status%$'\r'}"
  case "$status" in
    "HTTP/1."?" 200"*) exit 0 ;;
  esac
  echo "GET $path on $host:$port answered: ${status:-nothing}" >&2
  exit 1
done

echo "no admin endpoint answers on ${addrs[*]} (is APITAP_ADMIN_ADDR set?)" >&2
exit 1
