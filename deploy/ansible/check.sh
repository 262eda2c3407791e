#!/usr/bin/env bash
# What CI checks of the playbook: syntax, and a dry run (check mode) against this machine in
# every role.
set -euo pipefail
cd "$(dirname "$0")"
inv=$(mktemp)
trap 'rm -f "$inv"' EXIT
cat > "$inv" <<INV
[all:vars]
ansible_connection=local
ansible_python_interpreter=/usr/bin/python3
[coordinator]
coord imgpipe_address=127.0.0.1
[build]
build-host imgpipe_agent_name=build-1 imgpipe_address=127.0.0.2
[relay]
relay-host imgpipe_agent_name=relay-1 imgpipe_address=127.0.0.3
[glance]
ctrl-host imgpipe_agent_name=ctrl-a imgpipe_address=127.0.0.4 imgpipe_site=site-a imgpipe_site_outputs='["qcow2", "raw"]'
INV
ansible-playbook -i "$inv" site.yml --syntax-check
ansible-playbook -i "$inv" site.yml --check -e imgpipe_manage_services=false -e imgpipe_deb=
