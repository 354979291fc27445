"""Writing files safely: outputs checked before any compute, atomic replaces, the umask, one writer.

Every file modelzip writes goes through :func:`write_atomic` (temporary file in the same
folder, fsync, rename), so a kill mid-write never leaves a partial file under the real name;
the temporary files such a kill leaves behind are removed by the next run into that folder
(:func:`remove_stale_temps`, called with the folder's lock held).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from compress.errors import InputError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_file(path: Path, what: str, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse an output path that cannot or must not be written — before anything is computed.

    Refused: a directory, a device/FIFO/socket, a symlink (it would be replaced by a file), one
    of the run's ``inputs`` (checkpoint, recipe), and a folder that cannot be created or written.
    """
    if path.is_symlink():
        raise InputError(f"{what} {path} is a symbolic link; modelzip replaces files, it does not write "
                         "through links", "give the link's target, or another path")
    if path.exists():
        if path.is_dir():
            raise InputError(f"{what} {path} is a directory, not a file", "give a file path")
        if not path.is_file():
            raise InputError(f"{what} {path} is not a regular file (a device, FIFO or socket)",
                             "give a regular file path")
        for source in inputs:
            if source.exists() and path.resolve() == source.resolve():
                raise InputError(f"{what} {path} is an input of this run; modelzip never overwrites its inputs",
                                 "choose another path")
    check_folder(path.parent, what)


def check_folder(folder: Path, what: str) -> None:
    """The folder exists (or can be created) and a file can be created in it (tried, then removed)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = f"{folder} is not a folder" if probe == folder else f"{probe} is not a folder, so {folder} cannot be made"
        raise InputError(f"{what}: {where}", "choose another path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".modelzip-probe.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise InputError(f"{what}: cannot write in {probe} ({exc.strerror or exc})",
                         "choose another path") from None


def write_atomic(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` (bytes, or pieces written in turn) to ``path`` through a temporary file and a rename;
    permissions follow the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for piece in [data] if isinstance(data, bytes | bytearray) else data:
                fh.write(piece)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a normal file follows the umask
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}", "check free space and permissions") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temps(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the ``.<name>.*.tmp`` files an interrupted write of ``names`` left in ``folder`` (lock held)."""
    removed = []
    if folder.is_dir():
        for tmp in (t for name in names for t in folder.glob(f".{name}.*.tmp")):
            try:
                if stat.S_ISREG(tmp.lstat().st_mode):
                    tmp.unlink()
                    removed.append(tmp)
            except OSError:
                continue
    return removed


@dataclass
class FolderLock:
    """An exclusive lock on an output folder for one run (``fcntl.flock``: released if the process dies).

    The lock file lives in the system's temporary folder, named after the output folder's path,
    so a run that fails before writing leaves nothing behind in the output folder.
    """

    folder: Path
    outputs: tuple[str, ...] = ()  # file names this run writes there (their stale temporaries are removed)
    fd: int | None = None

    def lock_path(self) -> Path:
        digest = hashlib.sha256(str(self.folder.resolve()).encode()).hexdigest()[:32]
        return Path(tempfile.gettempdir()) / "modelzip-locks" / f"{digest}.lock"

    def acquire(self) -> FolderLock:
        import fcntl

        path = self.lock_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            with contextlib.suppress(OSError):  # any user may lock the same folder
                os.fchmod(fd, 0o666)
        except OSError as exc:
            raise InputError(f"cannot lock output folder {self.folder} ({exc.strerror})",
                             f"check the permissions of {path.parent}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.read(fd, 200).decode(errors="replace").strip() or "another modelzip run"
            os.close(fd)
            raise InputError(f"output folder {self.folder} is in use by {other}",
                             "wait for it to finish, or choose another output folder (--output)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"modelzip run pid {os.getpid()} (since {time.strftime('%H:%M:%S')})".encode())
        self.fd = fd
        # a flock belongs to the open file, which forked children (DataLoader workers) share: were they to
        # outlive an interrupted run by the seconds they take to notice, the folder would stay "in use"
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (lock := ref()) is not None and lock.forget())
        remove_stale_temps(self.folder, self.outputs)
        return self

    def forget(self) -> None:
        """In a forked child: drop this process's copy of the descriptor (the parent keeps the lock)."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock; the file stays (removing it would race)
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
