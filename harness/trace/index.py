"""The requirements index's model: ID schemes, requirements, the index, the text hash.

This module is what the pytest plugin imports to resolve ``@pytest.mark.req``
IDs, so it stays cheap to import: the standard library only. A requirement's
hash is of its normalised text (:func:`normalise_text`), so re-wrapping a
sentence does not make it suspect. Files are :mod:`harness.trace.index_file`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

INDEX_VERSION = 1
"""Bumped on any incompatible change of the index layout; readers refuse other versions."""

LEVELS: tuple[str, ...] = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY")
"""RFC 2119 levels a requirement can have, strongest first."""

STATUSES: tuple[str, ...] = ("active", "deleted")

DEFAULT_PREFIX = "ORCH"
_PREFIX = re.compile(r"[A-Z][A-Z0-9]{0,15}")


@dataclass(frozen=True)
class IdScheme:
    """How a project spells its requirement IDs: ``PREFIX-`` and a number.

    ``PREFIX-`` and four digits (``ORCH-0001`` .. ``ORCH-9999``), then more digits
    without zero padding (``ORCH-10000``): one spelling per number, so an ID is
    never ambiguous and sorts the same numerically everywhere. The prefix is
    project configuration (``prefix`` in ``[tool.orchq]``, default ``ORCH``).
    """

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise ValueError(
                f"requirement ID prefix {self.prefix!r}: expected an uppercase letter, then up "
                "to 15 uppercase letters or digits (e.g. ORCH)"
            )
        letters = "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in self.prefix)
        object.__setattr__(
            self, "_valid", re.compile(re.escape(self.prefix) + r"-(?:(?!0000)\d{4}|[1-9]\d{4,})")
        )
        object.__setattr__(self, "like", re.compile(letters + r"[-_]?\d+(?![A-Za-z0-9_])"))
        object.__setattr__(self, "like_full", re.compile(r"\s*(" + letters + r"[-_]?\d+)\s*"))

    like: re.Pattern[str] = field(init=False, repr=False, compare=False)
    """Anything that looks like an ID of this scheme, well-formed or not (any case, ``_``)."""
    like_full: re.Pattern[str] = field(init=False, repr=False, compare=False)
    """:attr:`like` as a whole string, blanks around it allowed; group 1 is the token."""
    _valid: re.Pattern[str] = field(init=False, repr=False, compare=False)

    @property
    def example(self) -> str:
        return f"{self.prefix}-0012"

    def is_valid(self, value: str) -> bool:
        """True for a well-formed ID of this scheme such as ``ORCH-0012``."""
        return self._valid.fullmatch(value) is not None

    def number(self, value: str) -> int:
        """The number of a well-formed ID (``ORCH-0012`` -> 12)."""
        if not self.is_valid(value):
            raise ValueError(f"malformed requirement ID {value!r}")
        return int(value[len(self.prefix) + 1 :])

    def format(self, number: int) -> str:
        """The one canonical spelling of requirement number ``number``."""
        if number < 1:
            raise ValueError("requirement numbers start at 1")
        return f"{self.prefix}-{number:04d}"

    def malformed(self, token: str) -> str:
        """The message for a token that looks like an ID but is not well-formed."""
        return (
            f"malformed ID '{token}': expected {self.prefix}- and four digits, e.g. {self.example}"
        )


ORCH = IdScheme()
"""The default scheme, OrchQueue's ``ORCH-NNNN``."""

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


_ANY_SCHEME = re.compile(r"[A-Z][A-Z0-9]{0,15}-(?:(?!0000)\d{4}|[1-9]\d{4,})")


def is_any_id(value: str) -> bool:
    """A well-formed ID of any prefix (``LEDGER-0001``): for files that only refer to the
    IDs of an index (lock, ``x-req-id``), which decides whether each exists."""
    return _ANY_SCHEME.fullmatch(value) is not None


def is_valid_id(value: str, scheme: IdScheme = ORCH) -> bool:
    """True for a well-formed requirement ID such as ``ORCH-0012``."""
    return scheme.is_valid(value)


def id_number(value: str, scheme: IdScheme = ORCH) -> int:
    """The number of a well-formed ID (``ORCH-0012`` -> 12)."""
    return scheme.number(value)


def format_id(number: int, scheme: IdScheme = ORCH) -> str:
    """The one canonical spelling of requirement number ``number``."""
    return scheme.format(number)


def normalise_text(text: str) -> str:
    """NFC and single spaces: the form whose hash decides whether a requirement changed.

    Re-wrapping a paragraph or re-encoding an accent must not make a
    requirement *suspect*; changing a word must.
    """
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def text_sha256(text: str) -> str:
    """SHA-256 (hex) of the normalised ``text``."""
    return sha256_hex(normalise_text(text))


def sha256_hex(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


class TraceFileError(Exception):
    """A problem with one file, phrased as one line: ``path[:line]: message``.

    The CLI prints ``str(error)`` and exits with ``SPEC_ERROR``; the plugin turns
    it into a usage error. Never a traceback for a broken input file.
    """

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        self.path = path
        self.message = message
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Requirement:
    """One requirement of the spec, or the tombstone of a deleted one."""

    id: str
    level: str
    section: str
    """Heading the sentence is under, e.g. ``"4.2 Admission"``."""
    text: str
    """The sentence with its ID marker removed, normalised (see :func:`normalise_text`)."""
    sha256: str
    line: int
    """1-based line of the sentence in the spec (last known line for a tombstone)."""
    deleted: bool = False
    """A tombstone: the ID left the spec and may never be used again."""

    @property
    def number(self) -> int:
        """The ID's number; only meaningful for a well-formed ID (all IDs of a loaded index are)."""
        digits = self.id.rpartition("-")[2]
        return int(digits) if digits.isascii() and digits.isdigit() else 0

    @property
    def status(self) -> str:
        return "deleted" if self.deleted else "active"


def requirement_order(req: Requirement) -> tuple[int, str]:
    """Numeric order of well-formed IDs without parsing them: a longer ID is a
    bigger number (no zero padding beyond four digits), equal lengths compare
    as text."""
    return (len(req.id), req.id)


@dataclass(frozen=True)
class Index:
    """A loaded ``requirements/index.yaml``.

    ``requirements`` maps every ID ever used (tombstones included) to its entry,
    ordered by ID number.
    """

    spec: str
    """Repo-relative POSIX path of the spec the index was extracted from."""
    requirements: dict[str, Requirement] = field(default_factory=dict)
    version: int = INDEX_VERSION

    def __contains__(self, req_id: object) -> bool:
        return req_id in self.requirements

    def get(self, req_id: str) -> Requirement | None:
        return self.requirements.get(req_id)

    def active(self) -> list[Requirement]:
        """Requirements present in the spec, by ID."""
        return [r for r in self.requirements.values() if not r.deleted]

    def tombstones(self) -> list[Requirement]:
        """Deleted requirements, by ID."""
        return [r for r in self.requirements.values() if r.deleted]

    def is_tombstone(self, req_id: str) -> bool:
        req = self.requirements.get(req_id)
        return req is not None and req.deleted

    def highest_number(self) -> int:
        """Highest ID number ever used (0 if none): the next free ID is one above it."""
        return max((r.number for r in self.requirements.values()), default=0)

    @classmethod
    def from_requirements(
        cls, spec: str, requirements: Iterable[Requirement], version: int = INDEX_VERSION
    ) -> Index:
        ordered = sorted(requirements, key=requirement_order)
        return cls(spec=spec, requirements={r.id: r for r in ordered}, version=version)
