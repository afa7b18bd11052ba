"""Waits (bounded) until the local server's SQLite file holds a number of finished spans.

Usage: wait_stored.py DB_PATH EXPECTED_FINISHED [TIMEOUT_SECONDS]

Prints one JSON line: {"finished": n, "total": m, "stored_unix": t} where `stored_unix` is the
wall-clock time at which the count first reached EXPECTED_FINISHED (polled every 10 ms).
Exits with status 1 (and prints the counts reached) when the timeout passes first.
Opens the database read-only, so the server's writes are never blocked for long.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time

FINISHED = "('complete', 'failed', 'cancelled')"
POLL_SECONDS = 0.01


def counts(db_path: str) -> tuple[int, int]:
    """(finished spans, all spans) as the server has committed them so far."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5.0)
    try:
        finished = conn.execute(
            f"SELECT count(*) FROM agent_spans WHERE status IN {FINISHED}"
        ).fetchone()[0]
        total = conn.execute("SELECT count(*) FROM agent_spans").fetchone()[0]
        return finished, total
    finally:
        conn.close()


def main() -> int:
    db_path, expected = sys.argv[1], int(sys.argv[2])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 600.0
    deadline = time.time() + timeout
    finished, total = 0, 0
    while time.time() < deadline:
        try:
            finished, total = counts(db_path)
        except sqlite3.OperationalError as err:  # database busy or not created yet: poll again
            print(f"wait_stored: {err}", file=sys.stderr)
        if finished >= expected:
            print(json.dumps({"finished": finished, "total": total, "stored_unix": time.time()}))
            return 0
        time.sleep(POLL_SECONDS)
    print(json.dumps({"finished": finished, "total": total, "timeout": timeout}))
    return 1


if __name__ == "__main__":
    sys.exit(main())
