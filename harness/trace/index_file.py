"""The requirements index on disk (``requirements/index.yaml``): rendering, reading, atomic writes.

Why a hand-written renderer and a fast reader instead of ``yaml.safe_dump`` and
``yaml.safe_load``? PyYAML needs about 1 s to dump and 1.7 s to load a
10,000-requirement index even with libyaml, which alone would blow the 1 s
budget of ``orchq spec extract``. The canonical form written here is plain YAML
(any YAML reader loads it to the same data), and the reader below parses exactly
that form line by line; anything else (a hand-edited file, another emitter's
style) falls back to PyYAML, so correctness never depends on the fast path.
PyYAML is imported lazily, only for such files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from json.encoder import encode_basestring  # the C encoder behind json.dumps
from pathlib import Path
from typing import Any

from harness.trace.index import (
    INDEX_VERSION,
    LEVELS,
    ORCH,
    SHA256_PATTERN,
    STATUSES,
    IdScheme,
    Index,
    Requirement,
    TraceFileError,
    requirement_order,
    sha256_hex,
)

# ---------------------------------------------------------------- files


def read_text_file(path: Path, display: str | None = None, what: str = "file") -> str:
    """Read a UTF-8 file, or raise :class:`TraceFileError` naming it in one line."""
    shown = display if display is not None else str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TraceFileError(shown, f"{what} not found") from None
    except IsADirectoryError:
        raise TraceFileError(shown, f"cannot read {what}: it is a directory") from None
    except OSError as exc:
        raise TraceFileError(shown, f"cannot read {what}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TraceFileError(
            shown, f"cannot read {what}: not valid UTF-8 (byte 0x{data[exc.start]:02x})", line
        ) from None


def _umask() -> int:
    """The process umask (reading it means setting it: put it straight back)."""
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_text_atomic(path: Path, text: str, display: str | None = None) -> None:
    """Replace ``path`` with ``text`` all at once (temp file in the same directory + rename).

    A reader, a crash or a full disk can never observe a half-written index or
    spec; an existing file keeps its permission bits, a new one gets those of any new
    file (``0o666`` less the umask), not the private bits of a temporary file.
    """
    shown = display if display is not None else str(path)
    tmp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()  # what open() would have given a new file
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise TraceFileError(shown, f"cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def load_index(path: str | Path, display: str | None = None, scheme: IdScheme = ORCH) -> Index:
    """Load and validate an index file; raise :class:`TraceFileError` if missing or malformed."""
    file = Path(path)
    shown = display if display is not None else str(file)
    return parse_index(read_text_file(file, shown, "requirements index"), shown, scheme)


def load_index_if_exists(
    path: str | Path, display: str | None = None, scheme: IdScheme = ORCH
) -> Index | None:
    """Like :func:`load_index`, but ``None`` when the file does not exist (first extract)."""
    file = Path(path)
    if not file.exists() and not file.is_symlink():
        return None
    return load_index(file, display, scheme)


# ---------------------------------------------------------------- rendering

_YAML_SPECIAL_PLAIN = frozenset(
    {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", ""}
)
_PLAIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9-]*(?: [A-Za-z][A-Za-z0-9-]*)*")
_NEEDS_ESCAPE = re.compile(
    "[^\x09\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]"
)


def _quote(value: str) -> str:
    """A YAML double-quoted scalar that is also a JSON string.

    ``json.dumps`` escapes quotes, backslashes and C0 controls; YAML additionally
    refuses other non-printable characters and folds U+0085/U+2028/U+2029 as line
    breaks, so those are escaped as ``\\uXXXX`` too. Any YAML reader and
    ``json.loads`` then agree on the value.
    """
    quoted = encode_basestring(value)
    if value.isascii() and value.isprintable():
        return quoted
    return _NEEDS_ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _plain_or_quoted(value: str) -> str:
    """Plain scalar for simple words (IDs, levels, statuses), quoted otherwise."""
    if _PLAIN_WORD.fullmatch(value) and value.lower() not in _YAML_SPECIAL_PLAIN:
        return value
    return _quote(value)


def _sha_scalar(value: str) -> str:
    # An all-digit hash would read back as an integer (or octal) in YAML: quote it.
    if SHA256_PATTERN.fullmatch(value) and any(c in "abcdef" for c in value):
        return value
    return _quote(value)


def render_index(index: Index) -> str:
    """The canonical text of ``index``: deterministic, byte-identical for equal input.

    ``version`` comes first so a reader can refuse an unknown layout before
    reading on; each requirement's keys are sorted; entries are sorted by ID
    number (``ORCH-9999`` before ``ORCH-10000``). No timestamps.
    """
    out = [
        "# Generated by `orchq spec extract` from the spec below; do not edit by hand.\n",
        "# Deleted requirements stay as tombstones (status: deleted); IDs are never reused.\n",
        f"version: {index.version}\n",
        f"spec: {_quote(index.spec)}\n",
    ]
    reqs = sorted(index.requirements.values(), key=requirement_order)
    if not reqs:
        out.append("requirements: []\n")
        return "".join(out)
    out.append("requirements:\n")
    append = out.append
    for r in reqs:
        append(
            f"  - id: {_plain_or_quoted(r.id)}\n"
            f"    level: {_plain_or_quoted(r.level)}\n"
            f"    line: {r.line}\n"
            f"    section: {_quote(r.section)}\n"
            f"    sha256: {_sha_scalar(r.sha256)}\n"
            f"    status: {r.status}\n"
            f"    text: {_quote(r.text)}\n"
        )
    return "".join(out)


# ---------------------------------------------------------------- parsing

_HEADER = re.compile(
    r"(?:#[^\n]*\n)*version: (?P<version>[1-9][0-9]{0,8})\nspec: (?P<spec>\"[^\n]*)\n"
    r"requirements:(?P<empty> \[\])?\n"
)
_RECORD = re.compile(
    r"  - id: ([A-Z][A-Z0-9]*-[0-9]+)\n"
    r"    level: (MUST|MUST NOT|SHOULD|SHOULD NOT|MAY)\n"
    r"    line: ([1-9][0-9]{0,9})\n"
    r"    section: (\"[^\n]*)\n"
    r"    sha256: ([0-9a-f]{64})\n"
    r"    status: (active|deleted)\n"
    r"    text: (\"[^\n]*)\n"
)


class _NotCanonical(Exception):
    """The fast reader met something outside the canonical form: use PyYAML instead."""


def _fast_string(raw: str) -> str:
    """Decode a double-quoted scalar exactly as YAML would, or give up."""
    body = raw[1:-1]
    simple = len(raw) >= 2 and raw[-1] == '"' and "\\" not in body and '"' not in body
    if simple and body.isprintable():
        return body
    if _NEEDS_ESCAPE.search(raw):
        raise _NotCanonical  # raw line breaks or non-printables: YAML's rules apply
    try:
        value = json.loads(raw)
    except ValueError:
        raise _NotCanonical from None
    if not isinstance(value, str):
        raise _NotCanonical
    return value


def _fast_index(text: str, scheme: IdScheme = ORCH) -> Index:
    """Read and validate the canonical form written by :func:`render_index`.

    One regex match per requirement and plain string checks: this is the hot
    path of every ``spec extract`` and of the plugin's start-up. Anything
    unusual, valid or not, raises :class:`_NotCanonical`, and the generic
    path (PyYAML plus full validation with precise messages) takes over.
    """
    head = _HEADER.match(text)
    if head is None:
        raise _NotCanonical
    version = int(head.group("version"))
    spec = _fast_string(head.group("spec"))
    if version != INDEX_VERSION or not spec:
        raise _NotCanonical
    pos = head.end()
    reqs: dict[str, Requirement] = {}
    if head.group("empty") is None:
        match = _RECORD.match
        sha256 = hashlib.sha256
        while pos < len(text):
            m = match(text, pos)
            if m is None:
                break
            pos = m.end()
            req_id, level, line, section, sha, status, body = m.groups()
            body = _fast_string(body)
            if (
                req_id in reqs
                or not scheme.is_valid(req_id)
                or sha.isdigit()
                or not body
                or sha256(body.encode("utf-8")).hexdigest() != sha
            ):
                raise _NotCanonical
            reqs[req_id] = Requirement(
                req_id, level, _fast_string(section), body, sha, int(line), status == "deleted"
            )
    if text[pos:].strip("\n"):
        raise _NotCanonical
    return Index.from_requirements(spec, reqs.values(), version)


def _yaml_load(text: str, display: str) -> Any:
    import yaml  # lazily: the canonical form never needs it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # a safe loader (C or pure Python)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        raise TraceFileError(display, f"malformed index: invalid YAML: {problem}", line) from None


def parse_index(
    text: str, display: str = "requirements/index.yaml", scheme: IdScheme = ORCH
) -> Index:
    """Validate index text into an :class:`Index`; raise :class:`TraceFileError` on any problem.

    Every ID must be a well-formed ID of ``scheme`` (the project's prefix).
    """
    try:
        return _fast_index(text, scheme)
    except _NotCanonical:
        pass
    return _index_from_data(_yaml_load(text, display), display, scheme)


def _index_from_data(data: Any, display: str, scheme: IdScheme = ORCH) -> Index:
    def bad(message: str) -> TraceFileError:
        return TraceFileError(display, f"malformed index: {message}")

    if not isinstance(data, Mapping):
        raise bad("the top level must be a mapping with version, spec and requirements")
    unknown = sorted(str(k) for k in data if k not in {"version", "spec", "requirements"})
    if unknown:
        raise bad(f"unknown key {unknown[0]!r}")
    for key in ("version", "spec", "requirements"):
        if key not in data:
            raise bad(f"missing key {key!r}")
    version = data["version"]
    if type(version) is not int:
        raise bad("version must be an integer")
    if version != INDEX_VERSION:
        raise bad(f"unsupported version {version} (this orchq reads version {INDEX_VERSION})")
    spec = data["spec"]
    if not isinstance(spec, str) or not spec:
        raise bad("spec must be a non-empty string")
    entries = data["requirements"]
    if not isinstance(entries, list):
        raise bad("requirements must be a list")
    reqs: dict[str, Requirement] = {}
    for pos, entry in enumerate(entries):
        req = _requirement_from_data(entry, f"requirements[{pos}]", bad, scheme)
        if req.id in reqs:
            raise bad(f"requirements[{pos}]: duplicate id {req.id}")
        reqs[req.id] = req
    return Index.from_requirements(spec, reqs.values(), version)


_ENTRY_KEYS = ("id", "level", "line", "section", "sha256", "status", "text")


def _requirement_from_data(entry: Any, where: str, bad: Any, scheme: IdScheme) -> Requirement:
    if not isinstance(entry, Mapping):
        raise bad(f"{where} must be a mapping")
    for key in entry:
        if key not in _ENTRY_KEYS:
            raise bad(f"{where}: unknown key {str(key)!r}")
    for key in _ENTRY_KEYS:
        if key not in entry:
            raise bad(f"{where}: missing key {key!r}")
    req_id, level, line = entry["id"], entry["level"], entry["line"]
    section, sha, status, text = entry["section"], entry["sha256"], entry["status"], entry["text"]
    if not isinstance(req_id, str) or not scheme.is_valid(req_id):
        raise bad(f"{where}: malformed id {req_id!r} (expected {scheme.prefix}-NNNN)")
    where = f"{where} ({req_id})"
    if level not in LEVELS:
        raise bad(f"{where}: level must be one of {', '.join(LEVELS)}")
    if type(line) is not int or line < 1:
        raise bad(f"{where}: line must be a positive integer")
    if not isinstance(section, str):
        raise bad(f"{where}: section must be a string")
    if not isinstance(text, str) or not text:
        raise bad(f"{where}: text must be a non-empty string")
    if status not in STATUSES:
        raise bad(f"{where}: status must be active or deleted")
    if not isinstance(sha, str) or not SHA256_PATTERN.fullmatch(sha):
        raise bad(f"{where}: sha256 must be 64 lowercase hex digits")
    if sha != sha256_hex(text):
        raise bad(f"{where}: sha256 does not match text (edited by hand?)")
    return Requirement(
        id=req_id,
        level=level,
        section=section,
        text=text,
        sha256=sha,
        line=line,
        deleted=status == "deleted",
    )
