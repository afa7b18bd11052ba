"""Helpers for run.sh: merge a workload report with the stored time, and print the table.

    report.py merge REPORT_JSON STORED_JSON   -> one JSON line with stored_seconds, spans_per_second
    report.py table PYTHON_JSON RUST_JSON     -> a Markdown table and the ratio
"""

from __future__ import annotations

import json
import sys


def merge(report_json: str, stored_json: str) -> None:
    report, stored = json.loads(report_json), json.loads(stored_json)
    report["stored_seconds"] = stored["stored_unix"] - report["start_unix"]
    report["spans_per_second"] = report["spans"] / report["stored_seconds"]
    print(json.dumps(report))


def table(python_json: str, rust_json: str) -> None:
    python, rust = json.loads(python_json), json.loads(rust_json)
    print("| SDK | spans | concurrency | until closed (s) | until stored (s) | spans/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in (rust, python):
        print(
            f"| {r['sdk']} | {r['spans']} | {r['concurrency']} | {r['seconds']:.3f} "
            f"| {r['stored_seconds']:.3f} | {r['spans_per_second']:.0f} |"
        )
    ratio = rust["spans_per_second"] / python["spans_per_second"]
    print()
    print(f"ratio (Rust spans/s / Python spans/s): {ratio:.1f}x")


if __name__ == "__main__":
    command, first, second = sys.argv[1:4]
    {"merge": merge, "table": table}[command](first, second)
