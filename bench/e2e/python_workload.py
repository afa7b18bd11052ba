"""End-to-end workload for the official Python SDK (prefactor-core 0.5.3).

The same shape as the Rust workload (`examples/bench_e2e.rs`): every agent run is one agent
instance holding 10 spans with small payloads, nested three deep:

    agent:run
      agent:step  (x3)
        agent:llm
        agent:tool

Runs are executed `--concurrency` at a time on one asyncio loop. The client is closed at the end
(close drains the SDK's queue), then one JSON line is printed on stdout:

    {"sdk": "python", "spans": N, "runs": R, "start_unix": t0, "closed_unix": t1, "seconds": t1 - t0}

The driver (`bench/e2e/run.sh`) then waits until the server has stored every span and computes
spans per second from `start_unix` to that moment.

Configuration: PREFACTOR_API_URL and PREFACTOR_API_TOKEN (environment), `--spans`, `--concurrency`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import sys
import time

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, SchemaRegistry
from prefactor_http import HttpClientConfig

SPANS_PER_RUN = 10
STEPS_PER_RUN = 3
SCHEMA_VERSION_ID = "bench-e2e-v1"


def schema_registry() -> SchemaRegistry:
    """The four span types of the workload, matching the Rust workload's payloads."""
    registry = SchemaRegistry()
    registry.register_type(
        name="agent:run",
        params_schema={"type": "object", "properties": {"task": {"type": "string"}}},
        result_schema={"type": "object", "properties": {"answer": {"type": "string"}}},
    )
    registry.register_type(
        name="agent:step",
        params_schema={"type": "object", "properties": {"index": {"type": "integer"}}},
        result_schema={"type": "object", "properties": {"done": {"type": "boolean"}}},
    )
    registry.register_type(
        name="agent:llm",
        params_schema={
            "type": "object",
            "properties": {"model": {"type": "string"}, "prompt": {"type": "string"}},
        },
        result_schema={
            "type": "object",
            "properties": {"response": {"type": "string"}, "tokens": {"type": "integer"}},
        },
    )
    registry.register_type(
        name="agent:tool",
        params_schema={
            "type": "object",
            "properties": {"tool": {"type": "string"}, "query": {"type": "string"}},
        },
        result_schema={"type": "object", "properties": {"output": {"type": "string"}}},
    )
    return registry


async def step(instance, index: int) -> None:
    """One step span holding an LLM span and a tool span."""
    async with instance.span("agent:step") as span:
        await span.start({"index": index})
        async with instance.span("agent:llm") as llm:
            await llm.start({"model": "small-model", "prompt": f"step {index}"})
            await llm.complete({"response": "ok", "tokens": 42})
        async with instance.span("agent:tool") as tool:
            await tool.start({"tool": "search", "query": f"q{index}"})
            await tool.complete({"output": "result"})
        await span.complete({"done": True})


async def agent_run(client: PrefactorCoreClient, run: int) -> None:
    """One agent instance with 10 spans; spans are started explicitly so children see the
    server id of their parent (the SDK only learns it from the create response)."""
    instance = await client.create_agent_instance(
        agent_version={"name": "bench-e2e", "external_identifier": "python-v1"},
        external_schema_version_id=SCHEMA_VERSION_ID,
    )
    await instance.start()
    async with instance.span("agent:run") as root:
        await root.start({"task": f"run {run}"})
        for index in range(STEPS_PER_RUN):
            await step(instance, index)
        await root.complete({"answer": "done"})
    await instance.finish()


async def main(spans: int, concurrency: int) -> dict:
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(
            api_url=require_env("PREFACTOR_API_URL"),
            api_token=require_env("PREFACTOR_API_TOKEN"),
        ),
        schema_registry=schema_registry(),
    )
    runs = spans // SPANS_PER_RUN
    next_run = iter(range(runs))

    async def worker(client: PrefactorCoreClient) -> None:
        for run in next_run:
            await agent_run(client, run)

    client = PrefactorCoreClient(config)
    await client.initialize()
    cpu_before = cpu_seconds()
    start = time.time()
    await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    await client.close()
    closed = time.time()
    return {
        "sdk": "python",
        "spans": runs * SPANS_PER_RUN,
        "runs": runs,
        "concurrency": concurrency,
        "start_unix": start,
        "closed_unix": closed,
        "seconds": closed - start,
        "cpu_seconds": cpu_seconds() - cpu_before,
    }


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} must be set")
    return value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=2000, help="total spans (multiple of 10)")
    parser.add_argument("--concurrency", type=int, default=8, help="agent runs in flight")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(json.dumps(asyncio.run(main(args.spans, args.concurrency))), flush=True)
