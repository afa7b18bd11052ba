"""Helpers for run.sh: merge a workload report with the stored time, and print the table.

    report.py merge REPORT_JSON STORED_JSON SERVER_CPU_BEFORE SERVER_CPU_AFTER [REQUESTS_JSON]
        -> one JSON line with stored_seconds, spans_per_second, server_cpu_seconds (and requests)
    report.py table PYTHON_JSON RUST_JSON     -> a Markdown table and the ratio
    report.py clear API_URL TOKEN             -> empties the server's request log
    report.py requests API_URL TOKEN          -> {"requests": POSTs, "bulk_items": n, "capped": bool}
        from the server's request log (it keeps the last 10,000 requests: `capped` = it is full,
        so the counts are lower bounds)
"""

from __future__ import annotations

import json
import sys
import urllib.request

LOG_CAPACITY = 10_000


def _admin(api_url: str, token: str, method: str) -> bytes:
    request = urllib.request.Request(
        f"{api_url}/__admin/requests", method=method, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def clear(api_url: str, token: str) -> None:
    _admin(api_url, token, "DELETE")


def requests(api_url: str, token: str) -> None:
    rows = json.loads(_admin(api_url, token, "GET"))["details"]
    posts = [r for r in rows if r["method"] == "POST" and r["path"].startswith("/api/v1/")]
    items = sum(len((r.get("body") or {}).get("items") or []) for r in posts if r["path"] == "/api/v1/bulk")
    print(json.dumps({"requests": len(posts), "bulk_items": items, "capped": len(rows) >= LOG_CAPACITY}))


def merge(report_json: str, stored_json: str, cpu_before: str, cpu_after: str, requests_json: str = "") -> None:
    report, stored = json.loads(report_json), json.loads(stored_json)
    if requests_json:
        report["requests"] = json.loads(requests_json)
    report["server_cpu_seconds"] = float(cpu_after) - float(cpu_before)
    report["stored_seconds"] = stored["stored_unix"] - report["start_unix"]
    report["spans_per_second"] = report["spans"] / report["stored_seconds"]
    print(json.dumps(report))


def table(python_json: str, rust_json: str) -> None:
    python, rust = json.loads(python_json), json.loads(rust_json)
    print(
        "| SDK | spans | runs in flight | until closed (s) | until stored (s) | spans/s "
        "| SDK CPU per span (µs) | server CPU per span (µs) | requests per span |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in (rust, python):
        print(
            f"| {r['sdk']}{' (' + r['delivery'] + ')' if 'delivery' in r else ''} | {r['spans']} | {r['concurrency']} | {r['seconds']:.3f} "
            f"| {r['stored_seconds']:.3f} | {r['spans_per_second']:.0f} "
            f"| {1e6 * r['cpu_seconds'] / r['spans']:.1f} "
            f"| {1e6 * r['server_cpu_seconds'] / r['spans']:.1f} | {_requests_per_span(r)} |"
        )
    ratio = rust["spans_per_second"] / python["spans_per_second"]
    cpu_ratio = (python["cpu_seconds"] / python["spans"]) / (rust["cpu_seconds"] / rust["spans"])
    print()
    print(f"throughput ratio (Rust spans/s / Python spans/s): {ratio:.1f}x")
    print(f"SDK CPU ratio (Python CPU per span / Rust CPU per span): {cpu_ratio:.1f}x")


def _requests_per_span(report: dict) -> str:
    counted = report.get("requests")
    if not counted:
        return "n/a"
    per_span = f"{counted['requests'] / report['spans']:.4g}"
    return f"≥ {per_span}" if counted["capped"] else per_span


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    {"merge": merge, "table": table, "clear": clear, "requests": requests}[command](*arguments)
