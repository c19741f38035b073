"""Inter-process locks on an index folder (fcntl.flock): the commit lock, and one owner lock per journal job.

A lock is held by an open file, so the kernel releases it when its process dies, however it dies: a
crashed writer never leaves an index locked. flock locks taken through separate open() calls exclude each
other within one process too, so two engines in one process on one index also take turns.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

COMMIT_LOCK = ".lock"  # in the index folder: held while a writer re-opens the latest version, saves the next

Notify = Callable[[str], None]


class FileLock:
    """An exclusive flock on one file, which also records the holder's pid for whoever waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, blocking: bool = True, waiting: Callable[[int | None], None] | None = None) -> bool:
        """Take the lock; False when it is held elsewhere and blocking is False. waiting(pid of the holder)
        is called once before blocking."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not blocking:
                    os.close(fd)
                    return False
                if waiting is not None:
                    waiting(_pid_in(fd))
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the file releases the lock


@contextmanager
def commit_lock(root: Path, notify: Notify | None = None) -> Iterator[None]:
    """Hold the index's commit lock; says who it waits for when another writer is committing."""
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / COMMIT_LOCK)

    def waiting(pid: int | None) -> None:
        if notify is not None:
            notify(f"waiting for another build of {root}/ (pid {pid or '?'}) to commit…")

    lock.acquire(waiting=waiting)
    try:
        yield
    finally:
        lock.release()


def _pid_in(fd: int) -> int | None:
    """The pid the holder wrote into the lock file (None while it has not written it yet)."""
    try:
        return int(os.pread(fd, 32, 0).decode("ascii").strip() or 0) or None
    except (OSError, ValueError):
        return None
