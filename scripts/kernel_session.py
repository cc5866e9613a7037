"""Small jupyter_client helpers shared by scripts/warm_kernel.py and scripts/measure_startup.py.

Run with the project's venv python (.venv/bin/python), which has jupyter_client.
"""

import os
import queue
import time

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager


def start(kernel_name, env=None, kernel_dirs=None, cwd=None):
    """Starts a kernel; returns (manager, client, t0) with t0 = time.monotonic() just before the start."""
    ksm = KernelSpecManager()
    if kernel_dirs:
        ksm.kernel_dirs = list(kernel_dirs) + list(ksm.kernel_dirs)
    km = KernelManager(kernel_name=kernel_name, kernel_spec_manager=ksm)
    full_env = dict(os.environ)
    full_env.update(env or {})
    t0 = time.monotonic()
    km.start_kernel(env=full_env, cwd=cwd or os.getcwd())
    kc = km.client()
    kc.start_channels()
    return km, kc, t0


def wait_kernel_info(km, kc, timeout):
    """Sends kernel_info requests until one is answered; returns the time of the reply.

    The first request is queued in the kernel's socket until the kernel serves its shell channel, so
    its reply arrives as soon as the kernel is ready. It is re-sent now and then in case the kernel
    replaced itself (kernel/launch.sh's error kernel binds the same ports anew)."""
    deadline = time.monotonic() + timeout
    sent = set()
    last_send = 0.0
    while True:
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"no kernel_info reply within {timeout} s")
        if not km.is_alive():
            raise RuntimeError("the kernel process died while starting")
        if now - last_send > 5.0:
            sent.add(kc.kernel_info())
            last_send = now
        try:
            msg = kc.get_shell_msg(timeout=0.05)
        except queue.Empty:
            continue
        if msg["msg_type"] == "kernel_info_reply" and msg["parent_header"].get("msg_id") in sent:
            return time.monotonic(), msg["content"]


def execute(kc, code, timeout):
    """Runs one cell; returns (seconds, status, stdout, stderr, other_outputs)."""
    t0 = time.monotonic()
    msg_id = kc.execute(code)
    stdout, stderr, other = [], [], []
    reply = None
    idle = False
    deadline = t0 + timeout
    while reply is None or not idle:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"cell did not finish within {timeout} s: {code!r}")
        if reply is None:
            try:
                m = kc.get_shell_msg(timeout=0.01)
                if m["parent_header"].get("msg_id") == msg_id:
                    reply = m
            except queue.Empty:
                pass
        try:
            m = kc.get_iopub_msg(timeout=0.01)
        except queue.Empty:
            continue
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        t = m["msg_type"]
        if t == "stream":
            (stdout if m["content"]["name"] == "stdout" else stderr).append(m["content"]["text"])
        elif t == "status" and m["content"]["execution_state"] == "idle":
            idle = True
        elif t in ("execute_result", "display_data", "error"):
            other.append(m["content"])
    return time.monotonic() - t0, reply["content"]["status"], "".join(stdout), "".join(stderr), other


def stop(km, kc):
    try:
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=False)
