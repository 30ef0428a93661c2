"""Render one or more ``run_all.py --json`` files as the Markdown tables of docs/benchmarks.md.

    .venv/bin/python bench/report_md.py results.json [more.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _cpu(row: dict[str, Any]) -> str:
    cpu = row.get("cpu") or {}
    if not cpu or not row["ok"]:
        return ""
    return (f"{1000 * cpu['server_cpu_s'] / row['ok']:.1f} / {1000 * cpu['client_cpu_s'] / row['ok']:.1f} / "
            f"{cpu['machine_busy_pct']:.0f} %")


def render(runs: list[dict[str, Any]]) -> str:
    out = []
    machine: dict[str, str] = {}
    for run in runs:  # merged: a --skip-postgres run knows no PostgreSQL version
        for k, v in run["machine"].items():
            if k != "load before start" and (k not in machine or machine[k] == "not measured"):
                machine[k] = v
    out.append("| machine | |\n|---|---|")
    out += [f"| {k} | {v} |" for k, v in machine.items()]
    for run in runs:
        if "load before start" in run["machine"]:
            out.append(f"| load before `{' '.join(run['argv'][1:])}` | {run['machine']['load before start']} |")
    out.append("")
    out.append("Ticket creation (`POST /api/v1/tickets`) and the HTTP floor:\n")
    out.append("| backend | measurement | requests | req/s | sustained/s | p50 ms | p95 ms | p99 ms "
               "| server / client CPU ms per req, machine busy |")
    out.append("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for run in runs:
        for res in run["results"]:
            for row in res["create"]:
                sustained = "" if row.get("sustained_per_s") is None else f"{row['sustained_per_s']:.1f}"
                out.append(f"| {res['backend']} | {row['name']} | {row['ok']:,} | {row['per_s']:.1f} | {sustained} | "
                           f"{row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['p99_ms']:.1f} | {_cpu(row)} |")
    out.append("")
    out.append("First page of `GET /api/v1/tickets?limit=50` (newest first):\n")
    out.append("| backend | tickets | filter | clients | req/s | p50 ms | p95 ms | p99 ms | items | "
               "server / client CPU ms per req, machine busy |")
    out.append("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|")
    for run in runs:
        for res in run["results"]:
            for row in res["list"]:
                what = "status + assignee" if "status+assignee" in row["name"] else "none"
                out.append(f"| {res['backend']} | {row['tickets']:,} | {what} | {row['concurrency']} | "
                           f"{row['per_s']:.0f} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['p99_ms']:.2f} | "
                           f"{row['items_per_page']} | {_cpu(row)} |")
    out.append("")
    out.append("`relaydesk seed-load` (3 messages per ticket; wall time of the command, start-up and ANALYZE "
               "included):\n")
    out.append("| backend | added | total | seconds | tickets/s |\n|---|--:|--:|--:|--:|")
    for run in runs:
        for res in run["results"]:
            for seed in res["seed"]:
                out.append(f"| {res['backend']} | {seed['added']:,} | {seed['total']:,} | {seed['seconds']:.1f} | "
                           f"{seed['tickets_per_s']:,} |")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print(render([json.loads(Path(p).read_text()) for p in sys.argv[1:]]))
