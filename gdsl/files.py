"""Files gdsl writes: atomically (the old file or the whole new one), and the per-user cache
directory of emitted modules."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes | str, durable: bool = True) -> None:
    """Write a file so that it is either the old one or the whole new one, never half of it;
    durable: on disk (fsync) before it replaces the old one (a cache need not wait for that)."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if path.exists() and not path.is_file():    # /dev/null, /dev/stdout, a pipe: written to,
        with open(path, "wb") as f:             # never replaced by a file of the same name
            f.write(data)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:        # the mode a new file would get (mkstemp makes it 0600), or the old file's
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def cache_dir() -> Path:
    """The directory of emitted modules (and the parser): $GDSL_CACHE or /tmp/gdsl-UID, made
    0700. Its files are imported, so it must be the user's own and writable by no one else
    (another user may have made /tmp/gdsl-UID first, or a symlink there); if it is not, a
    private directory of this process's own is used instead."""
    base = Path(os.environ.get("GDSL_CACHE") or
                os.path.join(tempfile.gettempdir(), f"gdsl-{os.getuid()}"))
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = base.lstat()
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022:
            return base
    except OSError:
        pass
    if not _private:
        _private.append(Path(tempfile.mkdtemp(prefix="gdsl-")))
    return _private[0]


_private: list[Path] = []     # the fallback of cache_dir, made once per process


def check_output(path: str | os.PathLike, what: str, inputs=()) -> None:
    """Before any work is done: an output file can be written where it is asked for, and it is
    none of the command's input files. Inputs are compared as files, not as strings, so
    `./m.gdsl`, `m.gdsl`, a link to it and a hard link are all the model. Raises GdslError."""
    from .errors import GdslError
    p = Path(path)
    for given in inputs:
        if given and _same_file(p, given):
            raise GdslError(f"{what}: this is the input file {given}; writing it would destroy it",
                            filename=str(path), help="write to another file")
    if p.is_dir():
        raise GdslError(f"{what}: this is a directory, not a file", filename=str(path))
    parent = p.parent
    if not parent.is_dir():
        raise GdslError(f"{what}: the directory {parent} does not exist", filename=str(path),
                        help=f"create it first (mkdir -p {parent}) or write elsewhere")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GdslError(f"{what}: cannot write in the directory {parent} (permission denied)",
                        filename=str(path))


def _same_file(a: Path, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:         # one of them does not exist yet: the same file only by its path
        return os.path.realpath(a) == os.path.realpath(b)


def read_model(path: str) -> str:
    """The model text; at most MAX_SOURCE_BYTES are read, so /dev/zero or a huge file is a
    clear error, not a MemoryError. Newlines are read as text mode reads them (\\r\\n, \\r -> \\n),
    and a UTF-8 byte-order mark at the start is dropped."""
    from .errors import GdslError, GdslLimitError, GdslUsageError
    from .limits import MAX_SOURCE_BYTES
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
        if len(data) > MAX_SOURCE_BYTES:
            raise GdslLimitError(f"the model file is larger than the limit of {MAX_SOURCE_BYTES} "
                                 "bytes", filename=path, help="gdsl.limits.MAX_SOURCE_BYTES")
        # utf-8-sig: a byte-order mark (Notepad writes one) is not part of the model
        return data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise GdslUsageError(f"no such model file: {path}", filename=path) from None
    except IsADirectoryError:
        raise GdslUsageError("this is a directory, not a model file", filename=path) from None
    except UnicodeDecodeError as e:
        raise GdslError(f"the model file is not UTF-8 text ({e.reason} at byte {e.start})",
                        filename=path) from None
    except OSError as e:
        raise GdslUsageError(f"cannot read the model file: {e.strerror}", filename=path) from None
