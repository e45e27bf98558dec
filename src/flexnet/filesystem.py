"""How flexnet touches the file system: it reads only regular files, and writes
every file whole or not at all.

**Reading.** A model, checkpoint or data path that names a named pipe, a device,
a socket, a folder or a file of a kernel pseudo file system (``/proc``, ``/sys``)
is refused before it is opened: opening a pipe blocks until someone writes to it,
a device can stream forever (``/dev/zero``), and a ``/proc`` file claims a size of
0 whatever it holds. :func:`open_regular` looks with ``os.stat`` first, opens
without waiting (``O_NONBLOCK``) and looks again at what it opened with
``os.fstat``, so a path swapped for a pipe between the two is refused as well.

**Writing.** :func:`atomic_write` writes to a temporary file in the target's
folder, flushes and fsyncs it, then renames it over the target
(``os.replace``). A full disk, an error or Ctrl-C leaves the previous file as
it was and removes the temporary file. What is replaced:

- nothing, or a regular file: the new file takes its place (and its permissions);
- a symbolic link: the link itself is replaced by the new file and the file it
  pointed to is left untouched, as ``os.replace`` does (a link to a folder, a
  device or a pipe is refused, and so is a link into ``/proc``: ``/dev/stdout``
  is one, and root must not turn it into a file);
- a folder, a device, a named pipe, a socket or a ``/proc`` or ``/sys`` file:
  refused, nothing is changed (``flexnet.save(net, "/dev/null")`` run as root
  must not turn the device into a file).

Temporary names are short and of fixed length,
``.<hash of the target's name>.<pid>.<random>.flexnet-tmp``, so a target whose
name is as long as the file system allows still saves. A writer killed mid-write
(SIGKILL, power loss) leaves its temporary file behind; the next write to the
same target removes it once its writer is gone: its process no longer runs and
nothing holds the lock a writer keeps on its temporary file. A live writer's file
is never touched.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

try:  # advisory locks mark a temporary file whose writer is alive (POSIX only)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

#: Kernel pseudo file systems: their "files" are views of the kernel's state, not stored data.
PSEUDO_FILE_SYSTEMS = frozenset({
    "proc", "sysfs", "debugfs", "tracefs", "securityfs", "cgroup", "cgroup2", "configfs",
    "efivarfs", "bpf", "pstore", "fusectl", "binfmt_misc", "selinuxfs", "devpts", "mqueue",
})
TEMP_SUFFIX = ".flexnet-tmp"


class NotARegularFileError(OSError, ValueError):
    """A path that names something other than a regular file where flexnet needs one.

    Both an ``OSError`` (the file cannot be used) and a ``ValueError`` (what was
    given is wrong: the command line exits with code 2). ``path`` is the path,
    ``kind`` what it is (``"a named pipe (FIFO)"``) and ``problem`` the message
    without the path.
    """

    def __init__(self, path, kind: str, action: str = "read"):
        self.path, self.kind, self.action = str(path), kind, action
        verb = {"read": "reads models and data only from", "write": "replaces only"}[action]
        self.problem = f"is {kind}, not a regular file; flexnet {verb} regular files"
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self):  # keep the exception copyable (multiprocessing)
        return type(self), (self.path, self.kind, self.action)


def kind_of(mode: int) -> str | None:
    """What a ``st_mode`` describes, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return words
    return "a special file"


def pseudo_file_system(st: os.stat_result) -> str | None:
    """The type of the kernel pseudo file system (``"proc"``) that holds a file, or None.

    Read from ``/proc/self/mountinfo`` by the file's device number; None where
    that table cannot be read (not Linux).
    """
    if not hasattr(os, "major") or os.major(st.st_dev) != 0:  # pseudo file systems have anonymous
        return None                                           # device numbers (0:N), disks do not
    dev = f"0:{os.minor(st.st_dev)}"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == dev and " - " in line:
                    fs_type = line.split(" - ", 1)[1].split()[0]
                    if fs_type in PSEUDO_FILE_SYSTEMS:
                        return fs_type
    except (OSError, IndexError):
        return None
    return None


def _refuse_unless_regular(path, st: os.stat_result) -> None:
    kind = kind_of(st.st_mode)
    if kind is None:
        fs_type = pseudo_file_system(st)
        if fs_type is not None:
            kind = f"a {fs_type} pseudo-file (the kernel's state, not stored data)"
    if kind is not None:
        raise NotARegularFileError(path, kind)


def check_regular(path) -> os.stat_result:
    """``os.stat(path)`` after checking that it names a regular file with stored data.

    Raises:
        FileNotFoundError: nothing is there (as ``os.stat`` raises it).
        NotARegularFileError: a folder, named pipe, device, socket or a
            ``/proc`` or ``/sys`` file.
    """
    st = os.stat(path)
    _refuse_unless_regular(path, st)
    return st


def open_regular(path, mode: str = "rb", **kwargs) -> IO:
    """Open a file for reading, refusing at once anything but a regular file.

    Nothing is opened before ``os.stat`` has shown a regular file (opening a
    device can have effects of its own); the open itself never waits (a path
    swapped for a pipe meanwhile opens at once and is then refused by
    ``os.fstat``). Use it as ``open``: ``with open_regular(path) as f: ...``.

    Args:
        path: the file.
        mode: a reading mode, ``"rb"`` or ``"r"``.
        kwargs: passed to ``open`` (``encoding``, ``newline``, ``errors``).

    Raises:
        FileNotFoundError, PermissionError...: as ``open`` raises them.
        NotARegularFileError: the path names something other than a regular file.
    """
    if any(c in mode for c in "wax+"):
        raise ValueError(f"open_regular({path!r}): mode {mode!r} is not a reading mode")
    check_regular(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        _refuse_unless_regular(path, os.fstat(fd))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


# -- writing -----------------------------------------------------------------------


def _pseudo_on_the_way(path) -> str | None:
    """The kernel pseudo file system that ``path`` or a link it leads through lies on
    (``/dev/stdout`` is a link to ``/proc/self/fd/1``), or None."""
    p = os.fspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        try:
            st = os.lstat(p)
        except OSError:
            return None
        fs_type = pseudo_file_system(st)
        if fs_type is not None or not stat.S_ISLNK(st.st_mode):
            return fs_type
        p = os.path.join(os.path.dirname(p), os.readlink(p))
    return None


def _target_problem(path: Path) -> OSError | None:
    """Why ``path`` must not be replaced by a new file, or None when it may be."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}")
    link = stat.S_ISLNK(st.st_mode)
    fs_type = _pseudo_on_the_way(path)
    if fs_type is not None:  # /proc/..., /sys/..., or /dev/stdout: never replaced, even by root
        if link:
            kind = f"a link into the kernel's {fs_type} file system (an open file of a process, like /dev/stdout)"
        else:
            kind = f"a {fs_type} pseudo-file"
        return NotARegularFileError(path, kind, "write")
    if link:  # the link is replaced; what it points to must be a file or nothing
        try:
            st = os.stat(path)
        except OSError:
            return None  # a dangling link: replaced like a file
        kind = kind_of(st.st_mode)
        if kind is None:
            return None
        if stat.S_ISDIR(st.st_mode):
            return IsADirectoryError(errno.EISDIR, f"cannot write {path}: it is a link to a folder; give a "
                                                   f"file name such as {path / 'model.npz'}")
        return NotARegularFileError(path, f"a link to {kind}", "write")
    if stat.S_ISDIR(st.st_mode):
        return IsADirectoryError(errno.EISDIR, f"cannot write {path}: it is a folder; give a file name "
                                               f"such as {path / 'model.npz'}")
    kind = kind_of(st.st_mode)
    return None if kind is None else NotARegularFileError(path, kind, "write")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _tag(name: str) -> str:
    """The short hash of a target's name that its temporary files start with."""
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:12]


def temporary_name(target_name: str, pid: int | None = None) -> str:
    """A fresh temporary file name for writing ``target_name``: 41 characters at most."""
    pid = os.getpid() if pid is None else pid
    return f".{_tag(target_name)}.{pid}.{os.urandom(3).hex()}{TEMP_SUFFIX}"


def _writer_pid(entry_name: str, tag: str) -> int | None:
    """The pid in a temporary name of this target, or None for any other name."""
    if not (entry_name.startswith(f".{tag}.") and entry_name.endswith(TEMP_SUFFIX)):
        return None
    parts = entry_name[len(tag) + 2:-len(TEMP_SUFFIX)].split(".")
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    return int(parts[0])


def _process_gone(pid: int) -> bool:
    """True when no process ``pid`` runs (a zombie, killed and not yet reaped, counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, owned by someone else
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def remove_leftovers(path) -> list[str]:
    """Remove the temporary files that killed writers of ``path`` left in its folder.

    A file is removed only when its writer's process is gone *and* no one holds
    its lock: never a write in progress, in this process or another.

    Returns:
        The names removed.
    """
    path = Path(os.fspath(path))
    folder, tag = path.parent, _tag(path.name)
    removed = []
    try:
        entries = [e.name for e in os.scandir(folder)]
    except OSError:
        return removed
    for name in entries:
        pid = _writer_pid(name, tag)
        if pid is None or pid == os.getpid() or not _process_gone(pid):
            continue
        leftover = folder / name
        try:
            fd = os.open(leftover, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # held: a writer is at work after all
                    continue
            os.unlink(leftover)
            removed.append(name)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create and lock a new temporary file beside ``path``: ``(fd, its path)``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / temporary_name(path.name)
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileExistsError:
            continue
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a file system without locks: the pid alone marks it
                pass
        return fd, tmp
    raise FileExistsError(errno.EEXIST, f"cannot write {path}: no free temporary name in {path.parent}")


def new_file_mode(path: Path) -> int:
    """Keep the permissions of the file being replaced, else those a new file gets."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def fsync_folder(folder: Path) -> None:
    """Make a rename itself durable (best effort: not every system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _naming_target(path: Path, exc: OSError) -> OSError:
    """``exc`` again, with a message that names the file asked for, not the temporary one."""
    if isinstance(exc, FileNotFoundError) and not path.parent.is_dir():
        reason = "the folder does not exist"
    else:
        reason = f"{exc.strerror or exc}; any previous file is left as it was"
    return OSError(exc.errno, f"cannot write {path}: {reason}")


def _discard(fd: int, f: IO | None, tmp: Path) -> None:
    """Close and remove a temporary file that will not become the target."""
    try:
        if f is None:
            os.close(fd)
        else:
            f.close()
    except OSError:  # a full disk again, flushing what is left: the file goes anyway
        pass
    try:
        os.unlink(tmp)
    except OSError:
        pass


@contextmanager
def atomic_write(path, mode: str = "wb", *, encoding: str | None = None,
                 newline: str | None = None) -> Iterator[IO]:
    """Write ``path`` whole or not at all: ``with atomic_write(path) as f: f.write(...)``.

    ``f`` is a file open on a temporary file in the same folder. When the
    ``with`` block ends normally the file is flushed, fsynced and renamed over
    ``path``; when anything goes wrong (an exception in the block, a full disk
    on flush, Ctrl-C) the temporary file is removed and ``path`` is left as it
    was. Libraries that write to a file object (``zipfile``, ``savefig``,
    ``torch.save``) write to ``f``.

    Args:
        path: the file to write; its folder must exist. A symbolic link is
            replaced by the file (its target is untouched); see the module's
            docstring for what is refused.
        mode: ``"wb"`` (default) or ``"w"`` for text.
        encoding, newline: as for ``open`` in text mode.

    Raises:
        NotARegularFileError: ``path`` is a device, a named pipe or a socket.
        IsADirectoryError: ``path`` is a folder.
        OSError: the file cannot be written (naming ``path``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write({path!r}): mode must be 'w' or 'wb', got {mode!r}")
    path = Path(os.fspath(path))
    problem = _target_problem(path)
    if problem is not None:
        raise problem
    remove_leftovers(path)
    try:
        fd, tmp = _create_temporary(path)
    except OSError as exc:
        raise _naming_target(path, exc) from None
    f = None
    try:
        f = os.fdopen(fd, mode, encoding=encoding, newline=newline)
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.chmod(tmp, new_file_mode(path))
    except BaseException as exc:
        _discard(fd, f, tmp)
        if isinstance(exc, OSError) and exc.errno is not None and not isinstance(exc, NotARegularFileError):
            raise _naming_target(path, exc) from exc
        raise
    problem = _target_problem(path)  # the target may have changed while we wrote
    try:
        if problem is not None:
            raise problem
        os.replace(tmp, path)
    except BaseException as exc:
        _discard(fd, f, tmp)
        if exc is not problem and isinstance(exc, OSError) and exc.errno is not None:
            raise _naming_target(path, exc) from exc
        raise
    fsync_folder(path.parent)


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as f:
        f.write(data)


def write_text(path, text: str, *, encoding: str = "utf-8", newline: str | None = "") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w", encoding=encoding, newline=newline) as f:
        f.write(text)


def check_writable(path) -> None:
    """Check, before any long work, that :func:`atomic_write` can write ``path``.

    The target must not be a folder, device, pipe or socket; its name must fit
    the file system; its folder must exist, and a file must be creatable there
    (tried: a temporary file is created and removed), which a read-only file
    system, a full inode table or missing permissions refuse.

    Raises:
        NotARegularFileError, IsADirectoryError, FileNotFoundError, OSError
        (``EROFS``, ``EACCES``, ``ENAMETOOLONG``...): each naming ``path``.
    """
    path = Path(os.fspath(path))
    folder = path.parent
    limit = _name_max(folder) if folder.is_dir() else 255
    if len(os.fsencode(path.name)) > limit:
        raise OSError(errno.ENAMETOOLONG, f"cannot write {path}: the file name is "
                                          f"{len(os.fsencode(path.name))} bytes long, the file system "
                                          f"allows {limit}")
    problem = _target_problem(path)
    if problem is not None:
        raise problem
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"cannot write {path}: the folder {folder} does not exist")
    try:
        fd, tmp = _create_temporary(path)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass
