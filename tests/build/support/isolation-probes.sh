#!/bin/bash
# The probes issue 23 runs from every place a definition's code runs (an image script, a package's
# maintainer script, the Ansible controller and what it runs on localhost): each tries to reach
# the build host and prints one line, "PROBE <place>:<name>: ESCAPED|refused: <what it said>".
# The test that ships it checks that every line says refused, and for the expected reason.
#
#   isolation-probes.sh PLACE
#
# Environment (host paths and addresses the test laid out; none may be reachable): KEY (the
# agent's secret key), STATE (its state dir), OTHER_JOB (a file in another job's work dir),
# APT_STORE (the shared package store), HOST_PORT (a TCP service on the host's 127.0.0.1),
# HOST_ABSTRACT (an abstract unix socket of the host), HOST_KEY (a key in root's user keyring).
place=${1:?place}
probe() {
  local name=$1; shift
  local out rc
  out=$("$@" 2>&1 </dev/null); rc=$?
  out=$(printf '%s' "$out" | head -c 300 | tr '\n' ' ')
  if [ "$rc" = 0 ]; then echo "PROBE $place:$name: ESCAPED: $out"; else echo "PROBE $place:$name: refused: $out"; fi
}
# The kernel's: sysctls (the core_pattern attack, with the value it has), a fresh proc, devices,
# modules.
probe write_core_pattern sh -c 'cat /proc/sys/kernel/core_pattern > /proc/sys/kernel/core_pattern'
probe write_proc_sys sh -c 'cat /proc/sys/kernel/hostname > /proc/sys/kernel/hostname'
mkdir -p /tmp/imgpipe-probe-mnt
probe mount_proc mount -t proc proc /tmp/imgpipe-probe-mnt
probe mknod mknod /tmp/imgpipe-probe-sda b 8 0
probe finit_module perl -e 'open(F, "<", "/proc/self/status") or die "open: $!\n"; my $args = ""; syscall(313, fileno(F), $args, 0) == 0 or die "finit_module: $!\n"'
# Root's kernel keyring: read the id of the user keyring, search it for the host's key, add one.
probe keyring_read perl -e 'my $id = syscall(250, 0, -4, 0); $id >= 0 or die "keyctl: $!\n"; print "user keyring $id\n"'
# (perl's syscall wants its string arguments in variables.)
probe keyring_search perl -e 'my ($t, $d) = ("user", $ENV{HOST_KEY}); my $k = syscall(250, 10, -4, $t, $d, 0); $k >= 0 or die "keyctl search: $!\n"; print "found $k\n"'
probe keyring_add perl -e 'my ($t, $d, $p) = ("user", "imgpipe-probe", "x"); syscall(248, $t, $d, $p, 1, -4) >= 0 or die "add_key: $!\n"'
# A user namespace of its own (a full capability set there is most escapes' first step).
probe userns unshare -U true
probe userns_map unshare -Ur true
# The host's files: the agent's key and state, another job's work dir, the shared apt store.
probe agent_key cat "$KEY"
probe agent_state ls "$STATE"
probe other_job cat "$OTHER_JOB"
probe apt_store_write sh -c 'echo planted > "$APT_STORE/planted.deb"'
# The host's network: a service on its 127.0.0.1 (and QEMU's alias for it), an abstract socket.
probe host_loopback timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$HOST_PORT'
probe host_gateway timeout 5 bash -c 'exec 3<>/dev/tcp/10.0.2.2/$HOST_PORT'
probe host_abstract python3 -c 'import os, socket; s = socket.socket(socket.AF_UNIX); s.connect("\0" + os.environ["HOST_ABSTRACT"]); print("connected")'
exit 0
