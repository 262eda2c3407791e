#!/usr/bin/env python3
# The acceptance boot's checks, run INSIDE the booted guest (a VM or an nspawn container) by a
# transient systemd unit that cloud-init's bootcmd queues after cloud-final.service. The NoCloud
# seed carries this script and its config (config.json: what to expect); each check's result is
# one JSON line {"check", "ok", "detail"} on the results channel (a virtio-serial port, or a
# file bound into the container), then {"done": true}. Also printed to the console, so that the
# console log a failed build shows has them too. Python 3's standard library only: cloud-init
# needs python3, so every image this can check has it.
import glob
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time

CONFIG = json.load(open(sys.argv[1]))


def open_results():
    if CONFIG.get("results_file"):
        return open(CONFIG["results_file"], "w")
    # The port by its name in sysfs: /dev/virtio-ports/<name> is made by udev, which need not
    # have run yet.
    for port in glob.glob("/sys/class/virtio-ports/*"):
        try:
            if open(os.path.join(port, "name")).read().strip() == CONFIG["results_port"]:
                return open("/dev/" + os.path.basename(port), "w")
        except OSError:
            pass
    raise SystemExit("no virtio port named " + CONFIG["results_port"])


OUT = open_results()


def emit(obj):
    OUT.write(json.dumps(obj, sort_keys=True) + "\n")
    OUT.flush()


def report(check, ok, detail=""):
    if check in CONFIG.get("skip", {}):
        return
    emit({"check": check, "ok": bool(ok), "detail": detail})
    print("imgpipe-acceptance: %s %s%s" % ("ok    " if ok else "FAILED", check,
                                           "" if ok else ": " + detail), flush=True)


def sh(argv, timeout=60):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, universal_newlines=True)
        return p.returncode, p.stdout
    except FileNotFoundError:
        return 127, argv[0] + ": not found"
    except subprocess.TimeoutExpired as e:
        out = e.output.decode(errors="replace") if isinstance(e.output, bytes) else (e.output or "")
        return 124, out + "\n(timed out after %d s)" % timeout


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""


def check_cloud_init():
    # result.json is written when the last stage ends: waiting for it here instead of
    # `cloud-init status --wait` saves a Python start-up per poll (seconds each under TCG).
    deadline = time.time() + CONFIG["settle_timeout"]
    while not os.path.exists("/run/cloud-init/result.json") and time.time() < deadline:
        time.sleep(1)
    code, out = sh(["cloud-init", "status"])
    m = re.search(r"^status: *(\S+)", out, re.M)
    status = m.group(1) if m else "unknown (%s)" % last_line(out)
    detail = "status: " + status
    try:
        result = json.load(open("/run/cloud-init/result.json"))["v1"]
        errors = result.get("errors") or []
        recoverable = result.get("recoverable_errors") or {}
        if errors:
            detail += "; errors: " + " | ".join(str(e) for e in errors)
        for level, msgs in recoverable.items():
            detail += "; %s: %s" % (level, " | ".join(str(x) for x in msgs))
    except (OSError, ValueError, KeyError):
        detail += "; no /run/cloud-init/result.json"
    report("cloud-init done", status == "done" and "errors:" not in detail, detail)


def check_failed_units():
    # Wait until systemd has no more jobs (this unit is Type=simple: its own job is done).
    code, state = sh(["systemctl", "is-system-running", "--wait"],
                     timeout=CONFIG["settle_timeout"])
    code, out = sh(["systemctl", "list-units", "--state=failed", "--plain", "--no-legend",
                    "--full", "--all"])
    failed = [l.split()[0] for l in out.splitlines() if l.strip()]
    failed = [u for u in failed if u not in CONFIG.get("ignore_failed_units", [])]
    details = []
    for unit in failed:
        _, res = sh(["systemctl", "show", "-p", "Result", "--value", unit])
        details.append("%s (%s)" % (unit, res.strip()))
    report("no failed units", not failed,
           ", ".join(details) + "; system " + state.strip())


def merged_cfg():
    # The default user as cloud-init's config files define it, in cloud-init's order, later
    # system_info.default_user keys replacing earlier ones (PyYAML comes with cloud-init; the
    # seed's user-data does not touch it). `cloud-init query merged_cfg` would cost a Python
    # start-up and has no merged config on every version.
    import yaml
    default = {}
    for f in ["/etc/cloud/cloud.cfg"] + sorted(glob.glob("/etc/cloud/cloud.cfg.d/*.cfg")):
        try:
            doc = yaml.safe_load(open(f)) or {}
            default.update(((doc.get("system_info") or {}).get("default_user")) or {})
        except Exception:
            pass
    return {"system_info": {"default_user": default}}


def as_list(v):
    if v is None:
        return []
    if isinstance(v, str):
        return [g.strip() for g in v.split(",") if g.strip()]
    return [str(g) for g in v]


def check_default_user():
    cfg = merged_cfg()
    default = (cfg.get("system_info") or {}).get("default_user") or {}
    name = CONFIG.get("user") or default.get("name") or ""
    want = []
    for g in as_list(CONFIG.get("groups")) + as_list(default.get("groups")):
        if g not in want:
            want.append(g)
    if not name:
        report("default user groups", False, "no default user in cloud-init's merged config")
        return
    code, out = sh(["id", "-nG", name])
    if code != 0:
        report("default user groups", False, "user %s does not exist: %s" % (name, last_line(out)))
        return
    have = out.split()
    missing = [g for g in want if g not in have]
    report("default user groups", not missing,
           "%s: missing %s (has %s)" % (name, ",".join(missing), ",".join(have))
           if missing else "%s: %s" % (name, ",".join(have)))


def read_int(path):
    return int(open(path).read().strip())


def check_root_grown():
    st = os.statvfs("/")
    fs_bytes = st.f_blocks * st.f_frsize
    dev = os.stat("/").st_dev
    sys_dev = "/sys/dev/block/%d:%d" % (os.major(dev), os.minor(dev))
    try:
        part = os.path.realpath(sys_dev)
        part_bytes = read_int(part + "/size") * 512
        start = read_int(part + "/start") * 512
        disk_bytes = read_int(os.path.dirname(part) + "/size") * 512
    except OSError as e:
        report("root filesystem grown", False, "cannot find the root partition: %s" % e)
        return
    slack = disk_bytes - (start + part_bytes)
    gib = lambda b: "%.1f GiB" % (b / float(1 << 30))
    detail = "filesystem %s in a %s partition on a %s disk (image: %s)" % (
        gib(fs_bytes), gib(part_bytes), gib(disk_bytes), gib(CONFIG["image_virtual_size"]))
    # growpart leaves at most the alignment and GPT's backup; ext4's own metadata is a few %.
    ok = slack <= (1 << 20) + 34 * 512 and fs_bytes >= 0.9 * part_bytes and \
        part_bytes > CONFIG["image_virtual_size"] - start
    report("root filesystem grown", ok, detail)


def check_machine_id():
    try:
        mid = open("/etc/machine-id").read().strip()
    except OSError:
        mid = ""
    if not re.fullmatch(r"[0-9a-f]{32}", mid):
        report("machine-id generated", False, "/etc/machine-id is %r" % mid)
    elif mid == CONFIG.get("image_machine_id"):
        report("machine-id generated", False,
               "%s is the image's own machine-id (baked in: every instance shares it)" % mid)
    else:
        report("machine-id generated", True, mid)


def check_ssh_host_keys():
    keys = sorted(glob.glob("/etc/ssh/ssh_host_*_key.pub"))
    if not keys:
        report("ssh host keys generated", False, "no /etc/ssh/ssh_host_*_key.pub")
        return
    baked = []
    for k in keys:
        digest = hashlib.sha256(open(k, "rb").read()).hexdigest()
        if digest in CONFIG.get("image_ssh_host_keys", []):
            baked.append(os.path.basename(k))
    report("ssh host keys generated", not baked,
           "the image's own keys (every instance shares them): " + ", ".join(baked) if baked
           else ", ".join(os.path.basename(k) for k in keys))


def check_services():
    for unit in CONFIG.get("services", []):
        code, out = sh(["systemctl", "is-active", unit])
        state = out.strip()
        detail = state
        if state != "active":
            _, res = sh(["systemctl", "show", "-p", "Result,ActiveState,SubState", "--value", unit])
            detail = state + " (" + " ".join(res.split()) + ")"
        report("service %s active" % unit, state == "active", detail)


def check_dns():
    name = CONFIG.get("resolve", "")
    try:
        resolv = " ".join(l.strip() for l in open("/etc/resolv.conf")
                          if l.startswith("nameserver"))
    except OSError as e:
        resolv = "/etc/resolv.conf: %s" % e.strerror
    try:
        addrs = sorted({a[4][0] for a in socket.getaddrinfo(name, None)})
        report("dns resolves", bool(addrs), "%s -> %s (%s)" % (name, ", ".join(addrs), resolv))
    except OSError as e:
        report("dns resolves", False, "%s: %s (%s)" % (name, e, resolv or "no nameserver"))


def check_hostname():
    got = socket.gethostname()
    report("hostname from metadata", got.split(".")[0] == CONFIG["hostname"],
           "%s (metadata: %s)" % (got, CONFIG["hostname"]))


def check_custom():
    for c in CONFIG.get("checks", []):
        code, out = sh(["/bin/sh", "-c", c["run"]], timeout=c.get("timeout", 60))
        ok = code == c.get("exit_code", 0)
        detail = "exit code %d" % code
        if ok and c.get("output"):
            ok = re.search(c["output"], out, re.M) is not None
            if not ok:
                detail += ", output does not match /%s/" % c["output"]
        if out.strip():
            detail += ": " + last_line(out)[:200]
        report("check " + c["name"], ok, detail)


def main():
    emit({"started": True, "uptime_s": float(open("/proc/uptime").read().split()[0])})
    for name, f in (("cloud-init done", check_cloud_init),
                    ("no failed units", check_failed_units),
                    ("default user groups", check_default_user),
                    ("root filesystem grown", check_root_grown),
                    ("machine-id generated", check_machine_id),
                    ("ssh host keys generated", check_ssh_host_keys),
                    ("services", check_services),
                    ("dns resolves", check_dns),
                    ("hostname from metadata", check_hostname),
                    ("custom checks", check_custom)):
        if name in CONFIG.get("skip", {}):
            continue
        try:
            f()
        except Exception as e:  # a broken check is reported, the others still run
            report(name, False, "check crashed: %r" % e)
    emit({"done": True, "uptime_s": float(open("/proc/uptime").read().split()[0])})


main()
