"""One writer per output folder: a lock file that two ``predict`` runs cannot both hold.

Two runs into one OUTPUT would overwrite each other's label maps and reports and both exit
0. Every run therefore holds ``fcntl.flock`` locks in its OUTPUT (and its report folder):

- a plain run holds ``.brats-goat.lock`` exclusively;
- a ``--shard K/N`` run holds ``.brats-goat.lock`` shared (the shards of one run write
  disjoint cases into one OUTPUT, by design) and ``.brats-goat.shard-K-of-N.lock``
  exclusively (the same shard twice is refused).

A lock that cannot be taken is a refusal naming the folder and the holder (PID and host,
written into the lock file by whoever holds it exclusively). flock locks die with their
process, so a run that was SIGKILLed never blocks the next one; its lock file stays behind
and is simply taken over. At the end of a run the lock files are removed (the organisers'
tools expect label maps only in OUTPUT), each while it is still held: a run that opened
the file just before sees that its lock is on a removed file and opens the new one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import platform
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from brats_goat.run.interrupt import signals_deferred
from brats_goat.run.shard import Shard

LOCK_NAME = ".brats-goat.lock"
_SHARD_LOCK = re.compile(r"^\.brats-goat\.shard-(\d+)-of-(\d+)\.lock$")
#: Seconds a busy lock is tried again before refusing: long enough to ride over another
#: run's release (the file is removed and recreated), short enough for a usage error.
RETRY_S = 1.0
#: errno values of file systems without flock (some FUSE and network mounts).
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class FolderBusy(Exception):
    """Another run holds the folder's lock; the message names the folder and the holder."""


class _Busy(Exception):
    """The lock is held (internal: ``FolderBusy`` adds who holds it)."""


def shard_lock_name(shard: Shard) -> str:
    return f".brats-goat.shard-{shard.index}-of-{shard.count}.lock"


@dataclass
class _Held:
    path: Path
    fd: int
    exclusive: bool


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (a finishing run may have removed it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def _open(path: Path) -> int:
    """The lock file, created if need be; read-only when it belongs to another user (a
    killed run as root left it): flock works on a read-only file all the same."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _try_lock(path: Path, exclusive: bool) -> _Held | None:
    """The lock on the file now at ``path``; ``None`` where the file system has no locks;
    ``_Busy`` while another process holds it."""
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    while True:
        fd = _open(path)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            raise _Busy from None
        except OSError as exc:
            os.close(fd)
            if exc.errno in _NO_LOCKS:
                return None
            raise
        if _same_file(fd, path):
            return _Held(path, fd, exclusive)
        os.close(fd)  # locked a file that its last holder removed: take the new one


def _lock(path: Path, exclusive: bool) -> _Held | None:
    """``_try_lock``, tried again for ``RETRY_S`` while busy."""
    deadline = time.monotonic() + RETRY_S
    while True:
        try:
            held = _try_lock(path, exclusive)
        except _Busy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
            continue
        if held is not None and exclusive:
            _write_holder(held.fd)
        return held


def _write_holder(fd: int) -> None:
    """Who holds the lock, for the refusal of the next run (not possible read-only)."""
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()} on host {platform.node()}\n".encode())
    except OSError:
        pass


def _release(held: _Held) -> None:
    """Remove the lock file while it is still held, then let go (shared: only the last
    holder removes it; the others leave it to that one)."""
    with signals_deferred():
        _remove_and_close(held)


def _remove_and_close(held: _Held) -> None:
    try:
        if not held.exclusive:
            try:
                fcntl.flock(held.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.exclusive = True
            except OSError:
                return
        if _same_file(held.fd, held.path):
            held.path.unlink(missing_ok=True)
    except OSError:
        pass  # a lock file that cannot be removed is harmless: the next run takes it over
    finally:
        os.close(held.fd)


def _holder_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _held_by_someone(path: Path) -> bool:
    """Whether another process holds any lock on ``path`` (tested by taking it briefly)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _shard_holders(folder: Path) -> list[str]:
    """``shard K/N: PID ... on host ...`` for every shard lock in ``folder`` held now."""
    holders = []
    for path in sorted(folder.glob(".brats-goat.shard-*.lock")):
        match = _SHARD_LOCK.match(path.name)
        if match and _held_by_someone(path):
            text = _holder_text(path) or "PID unknown"
            holders.append(f"shard {match.group(1)}/{match.group(2)}: {text}")
    return holders


def describe_holders(folder: Path) -> str:
    """Who holds ``folder``'s lock: the exclusive holder's PID and host, or the shards'."""
    main = folder / LOCK_NAME
    try:  # never created here: a refused run must not leave a lock file behind
        fd = os.open(main, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return "PID unknown"
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # held exclusively: by a plain run, which wrote its PID into the file
        return _holder_text(main) or "PID unknown"
    finally:
        os.close(fd)
    return "; ".join(_shard_holders(folder)) or "PID unknown"  # shared: by shards


def _acquire(stack: ExitStack, path: Path, exclusive: bool, what: str, folder: Path) -> bool:
    """Take the lock and register its release in ``stack``, with no signal in between (a
    lock taken but never registered would leave its file in OUTPUT)."""
    try:
        with signals_deferred():
            held = _lock(path, exclusive)
            if held is not None:
                stack.callback(_release, held)
    except _Busy:
        raise FolderBusy(
            f"{what} {folder} is in use by another brats-goat run ({describe_holders(folder)}; "
            f"lock file {path}): two runs writing one folder overwrite each other's files "
            "and reports. Wait for that run to end, or choose another folder."
        ) from None
    return held is not None


@contextmanager
def lock_folders(folders: Sequence[tuple[str, Path]], shard: Shard | None) -> Iterator[bool]:
    """Hold the locks of ``folders`` (``(what, folder)``, e.g. ``("OUTPUT", path)``) for
    the ``with`` block; yields whether every folder could be locked (``False`` on a file
    system without locks, where the run goes on unprotected). ``FolderBusy`` if any is held.
    """
    locked = True
    with ExitStack() as stack:
        seen: set[Path] = set()
        for what, folder in folders:
            folder = Path(folder)
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            locked &= _acquire(stack, folder / LOCK_NAME, shard is None, what, folder)
            if shard is not None:
                locked &= _acquire(stack, folder / shard_lock_name(shard), True, what, folder)
        yield locked


def stale_shard_locks(folder: Path) -> list[Path]:
    """Shard lock files that no process holds: left by shard runs that were killed. Only a
    run holding the folder's lock exclusively may remove them (no shard can be running)."""
    return [
        path
        for path in sorted(Path(folder).glob(".brats-goat.shard-*.lock"))
        if _SHARD_LOCK.match(path.name) and not _held_by_someone(path)
    ]
