"""WAL checkpoints off the event loop.

SQLite checkpoints a WAL database inside the ``COMMIT`` that takes the log past
``wal_autocheckpoint`` pages: on the event loop, about 7 ms each under an
admission flood, nearly all of it the two fsyncs ``synchronous=NORMAL`` asks of
a checkpoint. Every request in flight waits for it, several times a second
(docs/design/performance.md, ``background_checkpoint``).

:class:`WalCheckpointer` moves the bulk of that work to a thread with a
connection of its own (sqlite3 releases the GIL while a statement runs): once
the log holds ``threshold_frames`` pages not yet copied, the thread copies them
into the database file. That alone would let the log grow without bound under
load: the log starts over only when a writer begins a transaction with every
frame already copied, and a writer that commits every few milliseconds never
leaves the thread that window. So the loop finishes the job (:meth:`finish`):
right after a commit, with no transaction open, it copies the few frames
committed since, and its next write starts the log from the beginning. The
loop pays one small checkpoint per ``threshold_frames`` pages of log instead
of a large one per ``wal_autocheckpoint`` pages.

The thread learns how much is waiting from the wal-index header in the
``-shm`` file (``mxFrame`` and the checkpoint's ``nBackfill``, at the offsets
https://www.sqlite.org/walformat.html fixes), which costs one ``pread`` and
sees every writer's frames, whichever statement wrote them.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time

log = logging.getLogger("orchestrator.store")

DEFAULT_THRESHOLD_FRAMES = 2000
"""Pages waiting in the log that start a background copy (SQLite's own default: 1000)."""

_MX_FRAME = slice(16, 20)
"""``mxFrame`` in the first copy of the wal-index header: the log's last valid frame."""
_N_BACKFILL = slice(96, 100)
"""``nBackfill`` in the checkpoint information after the two header copies."""

RETRY_AFTER_S = 1.0
"""How long a copied log may stay unfinished before the thread copies it again."""


class WalCheckpointer:
    """Copies a WAL database's log back into its file from a daemon thread."""

    def __init__(
        self,
        path: str,
        *,
        threshold_frames: int = DEFAULT_THRESHOLD_FRAMES,
        poll_s: float = 0.05,
    ) -> None:
        self._shm_path = f"{path}-shm"
        self._shm: int | None = None
        self._threshold = threshold_frames
        self._poll_s = poll_s
        self._copied = threading.Event()
        self._stopping = threading.Event()
        self.copies = 0
        """Background copies made so far (read by tests and diagnostics)."""
        self.finishes = 0
        """Copies completed on the loop so far."""
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._thread = threading.Thread(
            target=self._run, name="orchq-wal-checkpointer", daemon=True
        )
        self._thread.start()

    def waiting_frames(self) -> int:
        """Pages committed to the log and not yet copied into the database file."""
        if self._shm is None:
            try:
                self._shm = os.open(self._shm_path, os.O_RDONLY)
            except FileNotFoundError:
                return 0
        header = os.pread(self._shm, 100, 0)
        if len(header) < 100:
            return 0
        mx_frame = int.from_bytes(header[_MX_FRAME], sys.byteorder)
        backfilled = int.from_bytes(header[_N_BACKFILL], sys.byteorder)
        return max(0, mx_frame - backfilled)

    def _run(self) -> None:
        copied_at = 0.0
        try:
            while not self._stopping.wait(self._poll_s):
                try:
                    if self.waiting_frames() < self._threshold:
                        continue
                    if self._copied.is_set() and time.monotonic() - copied_at < RETRY_AFTER_S:
                        continue  # the loop has not finished the last copy yet
                    self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except Exception:  # the log would grow without bound if the thread died
                    log.exception("background WAL checkpoint failed; retrying")
                    continue
                self.copies += 1
                copied_at = time.monotonic()
                self._copied.set()
        finally:
            if self._shm is not None:
                os.close(self._shm)
            self._connection.close()

    def finish(self, connection: sqlite3.Connection) -> None:
        """Complete a background copy on ``connection``, which must have no transaction open.

        Called by the store right after it commits; does nothing unless the
        thread has copied the log since the last call.
        """
        if not self._copied.is_set() or connection.in_transaction:
            return
        self._copied.clear()
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            log.exception("WAL checkpoint failed; the log is copied again later")
            return
        self.finishes += 1

    def close(self) -> None:
        """Stop the thread and close its connection."""
        self._stopping.set()
        self._thread.join()
