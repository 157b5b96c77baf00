"""One `kit run` owns a run folder at a time: an exclusive flock on <run>/.lock, taken before the run's
manifest is read or written and held until the run ends. The OS releases it when the process dies (even
by SIGKILL), so a lock is never stale and nothing has to clean it up; the file itself stays (readers and
bundles leave it out). flock works across hosts on NFS (Linux emulates it with fcntl locks there).
"""
import fcntl
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from kit.errors import NotReady
from kit.layout import LOCK


def busy(run_path, owner):
    return NotReady(f"run {Path(run_path).name} is being run by another kit run ({owner})",
                    "wait for it to end, or stop it (Ctrl-C in its terminal), then resume")


def describe(fd):
    """'pid N on host H' of the owner, as it wrote itself into the lock file."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096) or b"{}")
        return f"pid {int(info['pid'])} on host {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "owner unknown"


@contextmanager
def hold(run_path):
    """Own the run folder for the block; NotReady (one line, exit 2) when another process owns it."""
    fd = os.open(Path(run_path) / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(run_path, describe(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
        yield
    finally:
        os.close(fd)        # releases the lock


def owner(run_path):
    """'pid N on host H' while another process owns the run folder, else None. Creates nothing."""
    try:
        fd = os.open(Path(run_path) / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return describe(fd)
    finally:
        os.close(fd)
