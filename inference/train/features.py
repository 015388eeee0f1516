"""Feature extraction shared by the simulator and the real-log evaluation.

Mirrors `inference/src/features/vector.rs` (FEATURE_VERSION 1) name for name and in order;
`docs/DETECTION.md` ("Features") defines each one. Input: the normalized events of one
(org, source ip) window, each a dict with
  ts (float seconds), kind (connect | login_failed | login_success | command |
  file_download | closed | other), session (str), and optionally username, password,
  text (command line, download URL/destination, or HTTP request), dst_port.
"""

import math
import re

FEATURE_VERSION = 1
FEATURE_NAMES = [
    "events",
    "events_per_min",
    "connects",
    "connects_per_min",
    "failed_logins",
    "failed_logins_per_min",
    "successful_logins",
    "distinct_usernames",
    "distinct_passwords",
    "default_credential_hits",
    "commands",
    "download_commands",
    "chmod_exec_commands",
    "persistence_commands",
    "discovery_commands",
    "distinct_dst_ports",
    "sessions",
    "mean_inter_event_s",
    "std_inter_event_s",
    "mean_session_duration_s",
    "window_span_s",
]
CLASSES = ["normal", "ddos", "recon", "brute_force", "web_attack", "malware_botnet", "apt"]

# The public Mirai source's credential table (scanner.c), the usual IoT defaults.
MIRAI_CREDENTIALS = {
    ("root", "xc3511"), ("root", "vizxv"), ("root", "admin"), ("admin", "admin"),
    ("root", "888888"), ("root", "xmhdipc"), ("root", "default"), ("root", "juantech"),
    ("root", "123456"), ("root", "54321"), ("support", "support"), ("root", ""),
    ("admin", "password"), ("root", "root"), ("root", "12345"), ("user", "user"),
    ("admin", ""), ("root", "pass"), ("admin", "admin1234"), ("root", "1111"),
    ("admin", "smcadmin"), ("admin", "1111"), ("root", "666666"), ("root", "password"),
    ("root", "1234"), ("root", "klv123"), ("Administrator", "admin"), ("service", "service"),
    ("supervisor", "supervisor"), ("guest", "guest"), ("guest", "12345"), ("admin1", "password"),
    ("administrator", "1234"), ("666666", "666666"), ("888888", "888888"), ("ubnt", "ubnt"),
    ("root", "klv1234"), ("root", "Zte521"), ("root", "hi3518"), ("root", "jvbzd"),
    ("root", "anko"), ("root", "zlxx."), ("root", "7ujMko0vizxv"), ("root", "7ujMko0admin"),
    ("root", "system"), ("root", "ikwb"), ("root", "dreambox"), ("root", "user"),
    ("root", "realtek"), ("root", "00000000"), ("admin", "1111111"), ("admin", "1234"),
    ("admin", "12345"), ("admin", "54321"), ("admin", "123456"), ("admin", "7ujMko0admin"),
    ("admin", "pass"), ("admin", "meinsm"), ("tech", "tech"), ("mother", "fucker"),
}

DOWNLOAD = re.compile(r"\b(wget|curl|tftp|ftpget)\b")
CHMOD_EXEC = re.compile(r"chmod\s+(\+x|[0-7]?[0-7]*7[0-7]*\b)|(^|[;&|]\s*)\./\S+")
PERSISTENCE = re.compile(r"authorized_keys|crontab|/etc/cron")
DISCOVERY = re.compile(
    r"\buname\b|/proc/cpuinfo|/proc/meminfo|/proc/mounts|\bnproc\b|\blscpu\b|/etc/passwd|\bwhoami\b"
)


def rate_per_min(count, span_s):
    return 60.0 * count / max(span_s, 60.0)


def extract(events):
    """One feature vector (list of floats, FEATURE_NAMES order) for one window's events."""
    evs = sorted(events, key=lambda e: e["ts"])
    n = len(evs)
    if n == 0:
        return [0.0] * len(FEATURE_NAMES)
    ts = [e["ts"] for e in evs]
    span = ts[-1] - ts[0]
    kinds = [e["kind"] for e in evs]
    connects = kinds.count("connect")
    failed = kinds.count("login_failed")
    success = kinds.count("login_success")
    logins = [e for e in evs if e["kind"] in ("login_failed", "login_success")]
    users = {e.get("username") for e in logins if e.get("username") is not None}
    passwords = {e.get("password") for e in logins if e.get("password") is not None}
    default_hits = sum(1 for e in logins if (e.get("username"), e.get("password")) in MIRAI_CREDENTIALS)
    commands = kinds.count("command")
    # Pattern features look at commands, downloads and HTTP requests: any event with text.
    texts = [e.get("text") or "" for e in evs if e["kind"] in ("command", "file_download", "other")]
    download = sum(1 for t in texts if DOWNLOAD.search(t))
    chmod_exec = sum(1 for t in texts if CHMOD_EXEC.search(t))
    persistence = sum(1 for t in texts if PERSISTENCE.search(t))
    discovery = sum(1 for t in texts if DISCOVERY.search(t))
    ports = {e["dst_port"] for e in evs if e.get("dst_port") is not None}
    sessions = {}
    for e in evs:
        s = e.get("session")
        if s is not None:
            lo, hi = sessions.get(s, (e["ts"], e["ts"]))
            sessions[s] = (min(lo, e["ts"]), max(hi, e["ts"]))
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    if gaps:
        mean_gap = sum(gaps) / len(gaps)
        std_gap = math.sqrt(sum((g - mean_gap) ** 2 for g in gaps) / len(gaps))
    else:
        mean_gap = std_gap = 0.0
    mean_dur = sum(hi - lo for lo, hi in sessions.values()) / len(sessions) if sessions else 0.0
    return [
        float(n),
        rate_per_min(n, span),
        float(connects),
        rate_per_min(connects, span),
        float(failed),
        rate_per_min(failed, span),
        float(success),
        float(len(users)),
        float(len(passwords)),
        float(default_hits),
        float(commands),
        float(download),
        float(chmod_exec),
        float(persistence),
        float(discovery),
        float(len(ports)),
        float(len(sessions)),
        mean_gap,
        std_gap,
        mean_dur,
        span,
    ]
