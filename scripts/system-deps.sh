#!/usr/bin/env bash
# Make sure the Debian packages GeoGrid needs are present, and PostgreSQL is running.
#   scripts/system-deps.sh spatialite         SpatiaLite for the embedded database (make demo)
#   scripts/system-deps.sh spatialite postgis  ...and PostGIS on a running PostgreSQL (make test)
#   scripts/system-deps.sh chromium            headless Chromium for the browser tests in tests/e2e (make test)
#   scripts/system-deps.sh wrk                 the HTTP load generator (make bench)
# Installs with apt-get when root (or through passwordless sudo); otherwise says what to install.
set -euo pipefail

want_spatialite=0 want_postgis=0 want_wrk=0 want_chromium=0
for arg in "$@"; do
  case "$arg" in
    spatialite) want_spatialite=1 ;;
    postgis) want_postgis=1 ;;
    wrk) want_wrk=1 ;;
    chromium) want_chromium=1 ;;
    *) echo "unknown component: $arg" >&2; exit 2 ;;
  esac
done

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

pg_major() {
  if [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    ls /etc/postgresql | sort -n | tail -n 1
  else
    echo 15
  fi
}

missing=()
if [ "$want_spatialite" = 1 ] && ! have libsqlite3-mod-spatialite; then missing+=(libsqlite3-mod-spatialite); fi
if [ "$want_wrk" = 1 ] && ! command -v wrk >/dev/null 2>&1; then missing+=(wrk); fi
# Debian's own build, at the path tests/e2e launches: Playwright's browser downloads are not used.
if [ "$want_chromium" = 1 ] && [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi
# A CJK font, so pages and screenshots show Chinese rather than empty boxes (the dashboard speaks Chinese)
if [ "$want_chromium" = 1 ] && ! have fonts-wqy-microhei; then missing+=(fonts-wqy-microhei); fi
if [ "$want_postgis" = 1 ]; then
  major=$(pg_major)
  have "postgresql-$major" || missing+=("postgresql-$major")
  have "postgresql-$major-postgis-3" || missing+=("postgresql-$major-postgis-3")
fi

if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "GeoGrid needs: ${missing[*]}; install them with your package manager." >&2
    exit 1
  fi
  if [ "$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "GeoGrid needs Debian packages: ${missing[*]}" >&2
    echo "Run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "Installing ${missing[*]} ..."
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$want_wrk" = 1 ] && ! command -v wrk >/dev/null 2>&1; then missing+=(wrk); fi
if [ "$want_postgis" = 1 ]; then
  major=$(pg_major)
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "Starting PostgreSQL $major ..."
    if [ "$(id -u)" = 0 ]; then
      pg_ctlcluster --skip-systemctl-redirect "$major" main start 2>/dev/null || service postgresql start
    else
      sudo -n pg_ctlcluster --skip-systemctl-redirect "$major" main start
    fi
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "PostgreSQL is not accepting connections on 127.0.0.1:5432" >&2; exit 1; }
fi
