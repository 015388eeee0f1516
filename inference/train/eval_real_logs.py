"""Classify the real captures in shared/data/real-logs with the committed ONNX model.

    .venv/bin/python eval_real_logs.py [../../../shared/data/real-logs]

One window per source IP spanning that source's whole activity (the capture lasts ~3 minutes,
so this is what the detector's 5-minute and 1-hour windows see at the end). Approximations,
which the Rust extractor may do differently:
  * Cowrie: session.connect -> connect, login.failed/success -> logins (username, password),
    command.input -> command, session.file_download -> file_download (text = url or destfile),
    session.closed -> closed, anything else (client.version, kex, command.failed, ...) -> other.
  * sshd: no connect line is logged at the default LogLevel, so the first line of each sshd
    pid counts as the connect; "Failed password for [invalid user] U" -> login_failed with
    username U and no password; "Accepted ..." -> login_success; "Connection closed" /
    "Disconnected" -> closed; other lines naming the source -> other. Port = sshd's (2022).
"""

import datetime as dt
import json
import pathlib
import re
import sys
from collections import defaultdict

import numpy as np
import onnxruntime as ort

from features import CLASSES, extract

MODELS = pathlib.Path(__file__).resolve().parent.parent / "models"
DEFAULT_LOGS = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "real-logs"
# Ground truth from the README of the capture (source ip -> (id, label, what it did)).
TRUTH = {
    "127.0.0.2": ("A", "brute force (Cowrie, 40 failures)"),
    "127.0.0.3": ("B", "brute force then compromise, dropper + persistence"),
    "127.0.0.4": ("C", "benign user (1 typo, ls/pwd)"),
    "127.0.0.5": ("D", "recon: port/banner scanner"),
    "127.0.0.6": ("S1", "brute force (OpenSSH, 15 failures)"),
    "127.0.0.7": ("S2", "low-and-slow guessing (4 failures)"),
    "127.0.0.8": ("E", "Mirai-like telnet bot"),
}


def ts(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def cowrie(path):
    by_src = defaultdict(list)
    for line in path.read_text().splitlines():
        r = json.loads(line)
        src = r.get("src_ip")
        if not src:
            continue
        kind = {
            "cowrie.session.connect": "connect",
            "cowrie.login.failed": "login_failed",
            "cowrie.login.success": "login_success",
            "cowrie.command.input": "command",
            "cowrie.session.file_download": "file_download",
            "cowrie.session.closed": "closed",
        }.get(r["eventid"], "other")
        text = r.get("input") if kind == "command" else (r.get("url") or r.get("destfile")) if kind == "file_download" else None
        by_src[src].append(dict(ts=ts(r["timestamp"]), kind=kind, session=r.get("session"),
                                username=r.get("username"), password=r.get("password"),
                                text=text, dst_port=r.get("dst_port")))
    return by_src


SSHD = re.compile(r"^(\S+) \S+ sshd\[(\d+)\]: (.*)$")
IP = re.compile(r"(?:from |rhost=|by (?:invalid user |authenticating user )?\S+ |by )(\d+\.\d+\.\d+\.\d+)")


def sshd(path):
    by_src = defaultdict(list)
    seen_pid = set()
    pid_src = {}
    for line in path.read_text().splitlines():
        m = SSHD.match(line)
        if not m:
            continue
        t, pid, msg = ts(m.group(1)), m.group(2), m.group(3)
        ipm = IP.search(msg)
        src = ipm.group(1) if ipm else pid_src.get(pid)
        if not src:
            continue
        pid_src[pid] = src
        if pid not in seen_pid:
            seen_pid.add(pid)
            by_src[src].append(dict(ts=t, kind="connect", session=pid, dst_port=2022))
        fm = re.match(r"Failed password for (?:invalid user )?(\S+) from", msg)
        am = re.match(r"Accepted \S+ for (\S+) from", msg)
        if fm:
            ev = dict(kind="login_failed", username=fm.group(1))
        elif am:
            ev = dict(kind="login_success", username=am.group(1))
        elif msg.startswith(("Connection closed", "Disconnected")):
            ev = dict(kind="closed")
        else:
            ev = dict(kind="other")
        ev.update(ts=t, session=pid, dst_port=2022)
        by_src[src].append(ev)
    return by_src


def main():
    logs = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_LOGS
    sess = ort.InferenceSession(str(MODELS / "classifier.onnx"), providers=["CPUExecutionProvider"])
    rows = []
    for name, by_src in (("cowrie.json", cowrie(logs / "cowrie.json")),
                         ("sshd-auth-rfc3339.log", sshd(logs / "sshd-auth-rfc3339.log"))):
        for src in sorted(by_src):
            x = np.asarray([extract(by_src[src])], dtype=np.float32)
            p = sess.run(["probabilities"], {"features": x})[0][0]
            top = int(p.argmax())
            second = int(np.argsort(p)[-2])
            rows.append((name, src, TRUTH.get(src, ("?", "?")), CLASSES[top], float(p[top]), CLASSES[second],
                         float(p[second]), x[0]))
    print("| log | source | truth | predicted (p) | runner-up (p) |")
    print("|---|---|---|---|---|")
    for name, src, (tid, what), top, pt, second, ps, _ in rows:
        print(f"| {name} | `{src}` ({tid}) | {what} | **{top}** ({pt:.2f}) | {second} ({ps:.2f}) |")
    print()
    for name, src, _, _, _, _, _, x in rows:
        print(name, src, " ".join(f"{v:g}" for v in x))


if __name__ == "__main__":
    main()
