"""Files of queued operations as JSON lines, which say themselves whether they are whole.

The first line is a header (a JSON object with ``format``, ``kind`` and ``ops``, the number of
operations); each further line is one operation (a JSON array, the tuple the writer queued); the
last line is the trailer ``{"end": kind, "ops": N, "sha256": ...}``, the SHA-256 of every byte
before it (header and operations). A file is written under a temporary name and renamed once
complete, so a crash mid-write leaves nothing that looks whole; a reader refuses a file without
its trailer, or whose count or checksum disagree, as a whole.

Spill files use it (:mod:`runhistory_sql.write.spill`); so can any other file of operations.
Every refusal is a :class:`~runhistory_sql.errors.SpillFileError` of one line.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from .batch import Op
from ..errors import SpillFileError


def encode(op: Op) -> str:
    """One operation as its JSON line (with the newline). Floats keep NaN, infinities, -0.0."""
    return json.dumps(list(op), ensure_ascii=True) + "\n"  # ASCII: a lone surrogate cannot cut a file short


def decode(line: str | bytes) -> Op:
    """The operation of one line written by :func:`encode`."""
    return tuple(json.loads(line))


def write(path: Path, header: dict[str, Any], ops: Iterable[Op]) -> Path:
    """Write ``header`` (``format`` and ``kind`` in it), ``ops`` and the trailer to ``path``.

    The file appears under its name only once it is complete and on disk.
    """
    digest = hashlib.sha256()
    lines = [line.encode("utf-8") for line in map(encode, ops)]
    head = (json.dumps({**header, "ops": len(lines)}, ensure_ascii=True) + "\n").encode("utf-8")
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as f:
            for chunk in (head, *lines):
                digest.update(chunk)
                f.write(chunk)
            trailer = {"end": header["kind"], "ops": len(lines), "sha256": digest.hexdigest()}
            f.write((json.dumps(trailer) + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)  # a disk full, say: leave no half-written file behind
        raise
    _sync_folder(path.parent)
    return path


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a filesystem that cannot fsync a folder is left as is."""
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


def _lines(path: Path, kind: str, *, first_only: bool = False) -> list[bytes]:
    """The file's lines (newlines kept), or only its first; a missing or empty file refused."""
    try:
        with path.open("rb") as f:
            data = f.readline() if first_only else f.read()
    except FileNotFoundError:
        raise SpillFileError(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise SpillFileError(f"{path} is a directory, not a {kind} file.") from None
    except OSError as e:
        raise SpillFileError(f"{path} cannot be read: {e.strerror or e}.") from None
    if not data:
        raise SpillFileError(f"{path} is empty: it is not a {kind} file.")
    return data.splitlines(keepends=True)


def _object(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:  # also bytes that are not UTF-8
        return None
    return value if isinstance(value, dict) else None


def read_header(path: str | Path, kind: str) -> dict[str, Any]:
    """The header of a file of ``kind`` (its first line), without checking the rest."""
    path = Path(path)
    header = _object(_lines(path, kind, first_only=True)[0])
    if header is None or "format" not in header or header.get("kind", kind) != kind:
        raise SpillFileError(f"{path} is not a {kind} file: its first line is not the header of one.")
    return header


def read(path: str | Path, kind: str, format: int) -> tuple[dict[str, Any], list[Op]]:
    """Return the header and the operations of a complete file of ``kind`` and ``format``.

    :raises SpillFileError: the file is missing, unreadable, not of ``kind`` or ``format``, cut
        short or damaged (one line naming which)
    """
    path = Path(path)
    lines = _lines(path, kind)
    header = _object(lines[0])
    if header is None or header.get("kind") != kind or header.get("format") != format:
        raise SpillFileError(f"{path} is not a {kind} file of format {format}.")
    expected = header.get("ops")
    trailer = _object(lines[-1]) if len(lines) > 1 else None
    if trailer is None or trailer.get("end") != kind:
        found = max(0, len(lines) - 1 - (not lines[-1].endswith(b"\n")))
        raise SpillFileError(
            f"{path} is incomplete: {found} of {expected} operations and no end line; it was cut short, "
            "nothing was imported."
        )
    body = lines[1:-1]
    digest = hashlib.sha256()
    for chunk in lines[:-1]:
        digest.update(chunk)
    if trailer.get("ops") != expected or len(body) != expected or digest.hexdigest() != trailer.get("sha256"):
        raise SpillFileError(
            f"{path} is incomplete or damaged: {len(body)} of {expected} operations, checksum "
            f"{digest.hexdigest()[:12]} instead of {str(trailer.get('sha256'))[:12]}; nothing was imported."
        )
    ops = []
    for number, line in enumerate(body, start=2):
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, list) or not value or type(value[0]) is not int:
            raise SpillFileError(f"{path} line {number} is not an operation; nothing was imported.")
        ops.append(tuple(value))
    return header, ops
