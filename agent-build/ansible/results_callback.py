# imgpipe's Ansible callback (aggregate, enabled by the build agent): one JSON object per line
# in $IMGPIPE_ANSIBLE_RESULTS for every task result (ok, failed, unreachable) and the play's
# totals, so the build can say which task failed, where it is written and what to do, instead of
# a trace; and can refuse a task that "succeeded" at what cannot happen in an image being built
# (systemd offline ignores a start). Which tasks those are is decided by the agent
# (ansible/results.cpp), not here. The human log is the playbook's output.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: imgpipe_results
type: aggregate
short_description: failed tasks and totals, for imgpipe's build log
description: Writes one JSON object per line to $IMGPIPE_ANSIBLE_RESULTS.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "imgpipe_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._out = open(os.environ["IMGPIPE_ANSIBLE_RESULTS"], "a", encoding="utf-8")

    def _emit(self, record):
        self._out.write(json.dumps(record, default=str) + "\n")
        self._out.flush()

    def _task(self, kind, result, ignored=False):
        task = result._task
        r = result._result or {}
        # Arguments as text, shortened: a copy's content or a template's data is not needed.
        args = {
            str(k): str(v)[:200] for k, v in (task.args or {}).items() if not str(k).startswith("_")
        }
        self._emit(
            {
                "kind": kind,
                "task": task.get_name(),
                "action": getattr(task, "resolved_action", None) or task.action,
                "args": args,
                "path": task.get_path() or "",
                "ignored": bool(ignored),
                "msg": str(r.get("msg", "")),
                "stderr": str(r.get("stderr") or r.get("module_stderr") or "")[-2000:],
                "rc": r.get("rc"),
            }
        )

    def v2_runner_on_ok(self, result):
        self._task("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._task("failed", result, ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._task("unreachable", result)

    def v2_playbook_on_stats(self, stats):
        for host in sorted(stats.processed.keys()):
            self._emit(dict(kind="stats", host=host, **stats.summarize(host)))
