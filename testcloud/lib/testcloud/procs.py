"""Start, find and stop the processes of the test cloud, by recorded pid only.

Every process is started in a new session (setsid), so its pid is also the id of
its process group, which holds all the workers it forks. The pid file records the
pid and the process start time (field 22 of /proc/PID/stat): a pid that the kernel
has since given to some other program does not match and is never signalled.
Nothing here looks processes up by name.
"""

import os
import signal
import subprocess
import time

from . import settings as S


def _pidfile(name):
    return os.path.join(S.PIDS, name + ".pid")


def _starttime(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces: split after its ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # zombie: as good as gone
        return None
    return fields[19]


def _pgid_members(pgid):
    """Pids of live processes whose process group is pgid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(d))
    return out


def record(name):
    """(pid, starttime) from the pid file, or None."""
    try:
        with open(_pidfile(name)) as f:
            pid, start = f.read().split()[:2]
        return int(pid), start
    except (OSError, ValueError):
        return None


def pid_of(name):
    """The pid of a running process we started under this name, else None."""
    rec = record(name)
    if rec and _starttime(rec[0]) == rec[1]:
        return rec[0]
    return None


def start(name, argv, env, log_name=None, cwd=None):
    """Start argv in its own session, output appended to logs/NAME.out."""
    os.makedirs(S.PIDS, exist_ok=True)
    os.makedirs(S.LOGS, exist_ok=True)
    stop(name, quiet=True)  # leftovers of an earlier, crashed instance
    out = open(os.path.join(S.LOGS, (log_name or name) + ".out"), "ab")
    try:
        p = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd or S.STATE,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        out.close()
    start_time = None
    for _ in range(50):
        start_time = _starttime(p.pid)
        if start_time:
            break
        time.sleep(0.01)
    with open(_pidfile(name), "w") as f:
        f.write("%d %s\n" % (p.pid, start_time or "0"))
    return p.pid


def _group_alive(pgid):
    return bool(_pgid_members(pgid))


def signal_group(name, sig):
    """Send sig to the process group we recorded for name. True if anything got it."""
    rec = record(name)
    if not rec:
        return False
    pid, start = rec
    now = _starttime(pid)
    if now is not None and now != start:
        return False  # that pid belongs to someone else now
    if now is None and not _group_alive(pid):
        return False
    # The leader is ours, or it died and its group still exists: a group id is not
    # given to a new process while any member of the old group is alive.
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False


def stop(name, timeout=15.0, quiet=False):
    """Stop one recorded process group (TERM, then KILL after timeout)."""
    return stop_many([name], timeout, quiet)


def stop_many(names, timeout=15.0, quiet=False, log=print):
    """TERM all the recorded groups at once, KILL what is left after timeout."""
    sent = []
    for n in names:
        if signal_group(n, signal.SIGTERM):
            sent.append(n)
        else:
            _forget(n)
    deadline = time.time() + timeout
    left = list(sent)
    while left and time.time() < deadline:
        time.sleep(0.2)
        left = [n for n in left if _group_alive(record(n)[0])]
    for n in sent:
        pgid = record(n)[0]
        if n in left:
            signal_group(n, signal.SIGKILL)
            for _ in range(50):
                if not _group_alive(pgid):
                    break
                time.sleep(0.1)
            if not quiet:
                log("killed %s (pgid %d) after %.0fs" % (n, pgid, timeout))
        elif not quiet:
            log("stopped %s (pgid %d)" % (n, pgid))
        _forget(n)
    return sent


def _forget(name):
    try:
        os.unlink(_pidfile(name))
    except FileNotFoundError:
        pass


def recorded_names():
    try:
        return sorted(f[:-4] for f in os.listdir(S.PIDS) if f.endswith(".pid"))
    except FileNotFoundError:
        return []


def group_pss_kb(pgid):
    """Proportional set size of a process group (shared pages split among sharers)."""
    total = 0
    for pid in _pgid_members(pgid):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total
