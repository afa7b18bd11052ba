"""Helpers for run.sh: merge a workload report with the stored time, and print the table.

    report.py merge REPORT_JSON STORED_JSON SERVER_CPU_BEFORE SERVER_CPU_AFTER
        -> one JSON line with stored_seconds, spans_per_second, server_cpu_seconds
    report.py table PYTHON_JSON RUST_JSON     -> a Markdown table and the ratio
"""

from __future__ import annotations

import json
import sys


def merge(report_json: str, stored_json: str, cpu_before: str, cpu_after: str) -> None:
    report, stored = json.loads(report_json), json.loads(stored_json)
    report["server_cpu_seconds"] = float(cpu_after) - float(cpu_before)
    report["stored_seconds"] = stored["stored_unix"] - report["start_unix"]
    report["spans_per_second"] = report["spans"] / report["stored_seconds"]
    print(json.dumps(report))


def table(python_json: str, rust_json: str) -> None:
    python, rust = json.loads(python_json), json.loads(rust_json)
    print(
        "| SDK | spans | runs in flight | until closed (s) | until stored (s) | spans/s "
        "| SDK CPU per span (µs) | server CPU per span (µs) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in (rust, python):
        print(
            f"| {r['sdk']} | {r['spans']} | {r['concurrency']} | {r['seconds']:.3f} "
            f"| {r['stored_seconds']:.3f} | {r['spans_per_second']:.0f} "
            f"| {1e6 * r['cpu_seconds'] / r['spans']:.1f} "
            f"| {1e6 * r['server_cpu_seconds'] / r['spans']:.1f} |"
        )
    ratio = rust["spans_per_second"] / python["spans_per_second"]
    cpu_ratio = (python["cpu_seconds"] / python["spans"]) / (rust["cpu_seconds"] / rust["spans"])
    print()
    print(f"throughput ratio (Rust spans/s / Python spans/s): {ratio:.1f}x")
    print(f"SDK CPU ratio (Python CPU per span / Rust CPU per span): {cpu_ratio:.1f}x")


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    {"merge": merge, "table": table}[command](*arguments)
