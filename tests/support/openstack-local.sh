#!/usr/bin/env bash
# A private Glance (and optionally Keystone) on loopback, for imgpipe's tests and the quickstart.
# Everything lives under one directory: configs, sqlite databases, the file store, logs, pids.
# Nothing under /etc or /var is touched, so several instances can run side by side.
#
#   openstack-local.sh start DIR GLANCE_PORT [--keystone KEYSTONE_PORT] [--token-expiration S]
#       prepare + start in the background, wait until healthy; prints the endpoints
#   openstack-local.sh stop DIR [--keep]
#       stop what `start` started and remove DIR (unless --keep)
#   openstack-local.sh free-port FIRST
#       prints the first TCP port >= FIRST that nothing listens on
#
# Building blocks (the C++ test fixture uses these to own the server processes itself):
#   glance-prepare DIR PORT [--keystone URL]    config, paste pipeline, db_sync
#   glance-run DIR                              exec glance-api in the foreground
#   keystone-prepare DIR PORT [--token-expiration S] [--image-url URL]
#                                               config, fernet keys, db_sync, bootstrap
#   keystone-run DIR                            exec uwsgi serving Keystone in the foreground
#   keystone-seed DIR                           (Keystone running) users, projects, image endpoint
#   wait-http URL [SECONDS]                     wait until URL answers 2xx/3xx
#
# Identities: without Keystone, Glance runs the "fakeauth" pipeline: a request is trusted when
# it carries X-Identity-Status: Confirmed, X-Roles and X-Project-Id (see
# ../shared/notes/glance-on-debian.md). With Keystone (fernet tokens, sqlite in WAL mode):
#   admin / $ADMIN_PASSWORD   project admin (Default domain), role admin; Glance's service user
#   imgpipe / imgpipe-secret  project imgpipe (Default), role member
#   uploader / uploader-secret in domain site1, project images (site1), role member
# The seed writes DIR/keystone/ids.env with the ids (IMGPIPE_USER_ID, IMGPIPE_PROJECT_ID, ...).
set -euo pipefail

ADMIN_PASSWORD=admin-secret

die() { echo "openstack-local: $*" >&2; exit 1; }

port_in_use() {
  # ss lists listening sockets; a port in use by anyone (any address) counts as taken.
  ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

cmd_free_port() {
  local p=${1:?first port}
  while port_in_use "$p"; do p=$((p + 1)); done
  echo "$p"
}

cmd_wait_http() {
  local url=${1:?url} secs=${2:-60} i
  for ((i = 0; i < secs * 10; i++)); do
    if curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$url" 2>/dev/null | grep -q '^[23]'; then
      return 0
    fi
    sleep 0.1
  done
  die "$url did not answer within ${secs}s"
}

cmd_glance_prepare() {
  local dir=${1:?dir} port=${2:?port} keystone_url=""
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --keystone) keystone_url=$2; shift 2 ;;
      *) die "glance-prepare: unknown option $1" ;;
    esac
  done
  local g="$dir/glance"
  mkdir -p "$g"/{images,staging,tasks,locks,log}
  local flavor=fakeauth
  [ -n "$keystone_url" ] && flavor=keystone
  cat >"$g/glance-api-paste.ini" <<'EOF'
# Trusted-headers pipeline: the context middleware builds the request context from the
# X-Identity-Status / X-Roles / X-Project-Id headers a Keystone auth_token filter would set.
[pipeline:glance-api-fakeauth]
pipeline = healthcheck versionnegotiation context rootapp

[pipeline:glance-api-keystone]
pipeline = healthcheck versionnegotiation authtoken context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[filter:healthcheck]
paste.filter_factory = oslo_middleware:Healthcheck.factory

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true
EOF
  cat >"$g/glance-api.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $port
# One process: the pid that was started is the server, so killing it stops Glance.
workers = 0
enabled_backends = fs:file
log_file = $g/log/glance-api.log
use_stderr = false

[database]
connection = sqlite:///$g/glance.sqlite

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = $g/images/

[os_glance_staging_store]
filesystem_store_datadir = $g/staging/

[os_glance_tasks_store]
filesystem_store_datadir = $g/tasks/

[oslo_concurrency]
lock_path = $g/locks

[paste_deploy]
flavor = $flavor
config_file = $g/glance-api-paste.ini
EOF
  if [ -n "$keystone_url" ]; then
    cat >>"$g/glance-api.conf" <<EOF

[keystone_authtoken]
www_authenticate_uri = $keystone_url
auth_url = $keystone_url
auth_type = password
username = admin
password = $ADMIN_PASSWORD
project_name = admin
user_domain_name = Default
project_domain_name = Default
# No validation cache: a revoked or expired token is refused on its next use, which the
# token-expiry tests rely on.
token_cache_time = -1
EOF
  fi
  echo "$port" >"$g/port"
  glance-manage --config-file "$g/glance-api.conf" db_sync >"$g/log/db_sync.log" 2>&1 ||
    { tail -20 "$g/log/db_sync.log" >&2; die "glance-manage db_sync failed"; }
}

cmd_glance_run() {
  local g="${1:?dir}/glance"
  [ -f "$g/glance-api.conf" ] || die "$g/glance-api.conf missing; run glance-prepare first"
  exec glance-api --config-file "$g/glance-api.conf" >>"$g/log/stdout.log" 2>&1
}

cmd_keystone_prepare() {
  local dir=${1:?dir} port=${2:?port} expiration=3600 image_url=""
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --token-expiration) expiration=$2; shift 2 ;;
      --image-url) image_url=$2; shift 2 ;;
      *) die "keystone-prepare: unknown option $1" ;;
    esac
  done
  local k="$dir/keystone"
  mkdir -p "$k"/{fernet-keys,credential-keys,log}
  cat >"$k/keystone.conf" <<EOF
[DEFAULT]
log_file = $k/log/keystone.log
use_stderr = false

[database]
connection = sqlite:///$k/keystone.sqlite

[identity]
# bcrypt's minimum: Glance validates every request against Keystone and its service user
# re-authenticates often with short-lived test tokens; default rounds make each take ~0.5 s.
password_hash_rounds = 4

[token]
provider = fernet
expiration = $expiration

[fernet_tokens]
key_repository = $k/fernet-keys/

[credential]
key_repository = $k/credential-keys/
EOF
  echo "$port" >"$k/port"
  echo "$image_url" >"$k/image-url"
  local km=(keystone-manage --config-file "$k/keystone.conf")
  {
    "${km[@]}" db_sync
    # A 404 leaves a read transaction open that locks later writes in rollback-journal mode.
    sqlite3 "$k/keystone.sqlite" 'PRAGMA journal_mode=WAL;'
    "${km[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    "${km[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    "${km[@]}" bootstrap --bootstrap-password "$ADMIN_PASSWORD" \
      --bootstrap-admin-url "http://127.0.0.1:$port/v3/" \
      --bootstrap-public-url "http://127.0.0.1:$port/v3/" \
      --bootstrap-internal-url "http://127.0.0.1:$port/v3/" \
      --bootstrap-region-id RegionOne
  } >"$k/log/prepare.log" 2>&1 || { tail -20 "$k/log/prepare.log" >&2; die "keystone setup failed"; }
}

cmd_keystone_run() {
  local k="${1:?dir}/keystone"
  [ -f "$k/keystone.conf" ] || die "$k/keystone.conf missing; run keystone-prepare first"
  local port
  port=$(cat "$k/port")
  # One process without threads, and no keep-alive: reused connections got resets.
  OS_KEYSTONE_CONFIG_FILES="$k/keystone.conf" exec uwsgi --plugin python3 \
    --http-socket "127.0.0.1:$port" --wsgi-file /usr/bin/keystone-wsgi-public \
    --processes 1 --threads 1 --master --die-on-term --add-header 'Connection: close' \
    --logto "$k/log/uwsgi.log"
}

# Identities and the image endpoint, through Keystone's API (python3 is there with Keystone).
cmd_keystone_seed() {
  local k="${1:?dir}/keystone"
  local port image_url
  port=$(cat "$k/port")
  image_url=$(cat "$k/image-url")
  KS="http://127.0.0.1:$port/v3" ADMIN_PASSWORD="$ADMIN_PASSWORD" IMAGE_URL="$image_url" \
    IDS="$k/ids.env" python3 - <<'EOF'
import json, os, urllib.request, urllib.error

ks = os.environ["KS"]

def request(method, path, body=None, token=None):
    req = urllib.request.Request(ks + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req) as r:
        data = r.read()
        return r.headers, (json.loads(data) if data else None)

def admin_token():
    h, _ = request("POST", "/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": os.environ["ADMIN_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
    return h["X-Subject-Token"]

tok = admin_token()

def call(method, path, body=None):
    # Test Keystones issue tokens that live a few seconds: on 401, authenticate again once.
    global tok
    for again in (True, False):
        try:
            return request(method, path, body, tok)
        except urllib.error.HTTPError as e:
            if e.code == 401 and again:
                tok = admin_token()
                continue
            raise SystemExit(f"{method} {path}: {e.code} {e.read().decode()}")

def find(kind, key, name, extra=""):
    _, r = call("GET", f"/{kind}?name={name}{extra}")
    return r[key][0]["id"] if r[key] else None

def ensure(kind, key, body, extra=""):
    found = find(kind, key, body["name"], extra)
    if found:
        return found
    _, r = call("POST", f"/{kind}", {key[:-1]: body})
    return r[key[:-1]]["id"]

roles = {n: find("roles", "roles", n) for n in ("member", "reader", "admin")}
site1 = ensure("domains", "domains", {"name": "site1"})
p_imgpipe = ensure("projects", "projects", {"name": "imgpipe", "domain_id": "default"}, "&domain_id=default")
p_images = ensure("projects", "projects", {"name": "images", "domain_id": site1}, f"&domain_id={site1}")
u_imgpipe = ensure("users", "users", {"name": "imgpipe", "domain_id": "default",
                                      "password": "imgpipe-secret"}, "&domain_id=default")
u_uploader = ensure("users", "users", {"name": "uploader", "domain_id": site1,
                                       "password": "uploader-secret"}, f"&domain_id={site1}")
for proj, user in ((p_imgpipe, u_imgpipe), (p_images, u_uploader)):
    for role in ("member", "reader"):
        call("PUT", f"/projects/{proj}/users/{user}/roles/{roles[role]}")

if os.environ["IMAGE_URL"]:
    svc = ensure("services", "services", {"name": "glance", "type": "image"})
    _, eps = call("GET", f"/endpoints?service_id={svc}")
    if not eps["endpoints"]:
        for iface in ("public", "internal", "admin"):
            call("POST", "/endpoints", {"endpoint": {"service_id": svc, "interface": iface,
                 "region_id": "RegionOne", "url": os.environ["IMAGE_URL"]}})

_, me = call("GET", "/projects?name=admin")
with open(os.environ["IDS"], "w") as f:
    f.write(f"ADMIN_PROJECT_ID={me['projects'][0]['id']}\n")
    f.write(f"IMGPIPE_USER_ID={u_imgpipe}\nIMGPIPE_PROJECT_ID={p_imgpipe}\n")
    f.write(f"UPLOADER_USER_ID={u_uploader}\nIMAGES_PROJECT_ID={p_images}\nSITE1_DOMAIN_ID={site1}\n")
EOF
}

cmd_start() {
  local dir=${1:?dir} gport=${2:?glance port} kport="" expiration=3600
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --keystone) kport=$2; shift 2 ;;
      --token-expiration) expiration=$2; shift 2 ;;
      *) die "start: unknown option $1" ;;
    esac
  done
  port_in_use "$gport" && die "port $gport is in use"
  mkdir -p "$dir"
  local self
  self=$(readlink -f "$0")
  if [ -n "$kport" ]; then
    port_in_use "$kport" && die "port $kport is in use"
    cmd_keystone_prepare "$dir" "$kport" --token-expiration "$expiration" \
      --image-url "http://127.0.0.1:$gport"
    setsid "$self" keystone-run "$dir" </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/keystone.pid"
    cmd_wait_http "http://127.0.0.1:$kport/v3" 60
    cmd_keystone_seed "$dir"
    cmd_glance_prepare "$dir" "$gport" --keystone "http://127.0.0.1:$kport/v3"
  else
    cmd_glance_prepare "$dir" "$gport"
  fi
  setsid "$self" glance-run "$dir" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/glance.pid"
  cmd_wait_http "http://127.0.0.1:$gport/healthcheck" 60
  echo "glance: http://127.0.0.1:$gport (pid $(cat "$dir/glance.pid"))"
  [ -n "$kport" ] && echo "keystone: http://127.0.0.1:$kport/v3 (pid $(cat "$dir/keystone.pid"))"
  return 0
}

cmd_stop() {
  local dir=${1:?dir} keep=0
  [ "${2:-}" = "--keep" ] && keep=1
  local f pid
  for f in "$dir/glance.pid" "$dir/keystone.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    # Started with setsid: the pid leads its own process group (uwsgi has workers).
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$f"
  done
  [ "$keep" = 1 ] || rm -rf "$dir"
}

command=${1:-}
[ -n "$command" ] || { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
shift
case "$command" in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  free-port) cmd_free_port "$@" ;;
  wait-http) cmd_wait_http "$@" ;;
  glance-prepare) cmd_glance_prepare "$@" ;;
  glance-run) cmd_glance_run "$@" ;;
  keystone-prepare) cmd_keystone_prepare "$@" ;;
  keystone-run) cmd_keystone_run "$@" ;;
  keystone-seed) cmd_keystone_seed "$@" ;;
  *) die "unknown command '$command' (start, stop, free-port, glance-prepare, glance-run, keystone-prepare, keystone-run, keystone-seed, wait-http)" ;;
esac
