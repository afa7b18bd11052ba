"""Sends one small agent trace to a Prefactor server's OTLP endpoint with the official
OpenTelemetry Python SDK and its OTLP/HTTP (protobuf) exporter, the way an instrumented Python
agent would: an `invoke_agent` root span, a `chat` child with the GenAI semantic conventions'
attributes, and an `execute_tool` child that fails.

Environment: PREFACTOR_OTLP_ENDPOINT (e.g. http://127.0.0.1:PORT/v1/traces), PREFACTOR_TOKEN.
Prints one JSON line: {"trace_id": "<32 hex>"} once the exporter has delivered the spans.
"""

import json
import os
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode


class CheckedExporter(OTLPSpanExporter):
    """The SDK's exporter, remembering whether every export succeeded."""

    failures = 0

    def export(self, spans):
        result = super().export(spans)
        if result is not SpanExportResult.SUCCESS:
            CheckedExporter.failures += 1
        return result


def main() -> int:
    exporter = CheckedExporter(
        endpoint=os.environ["PREFACTOR_OTLP_ENDPOINT"],
        headers={"Authorization": "Bearer " + os.environ["PREFACTOR_TOKEN"]},
        compression=Compression.Gzip,
        timeout=10,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "python-otel-agent", "service.version": "1.2.3"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("prefactor.otel.test")

    with tracer.start_as_current_span("invoke_agent weather-agent", kind=SpanKind.INTERNAL) as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "weather-agent")
        root.set_attribute("input.value", "What is the weather in Paris?")
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.provider.name", "openai")
            chat.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            chat.set_attribute("gen_ai.request.temperature", 0.2)
            chat.set_attribute(
                "gen_ai.input.messages",
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]}]),
            )
            chat.set_attribute(
                "gen_ai.output.messages",
                json.dumps([{"role": "assistant", "parts": [{"type": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}}], "finish_reason": "tool_call"}]),
            )
            chat.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18")
            chat.set_attribute("gen_ai.response.finish_reasons", ["tool_call"])
            chat.set_attribute("gen_ai.usage.input_tokens", 42)
            chat.set_attribute("gen_ai.usage.output_tokens", 7)
        with tracer.start_as_current_span("execute_tool get_weather", kind=SpanKind.INTERNAL) as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "get_weather")
            tool.set_attribute("gen_ai.tool.call.id", "call_1")
            tool.set_attribute("gen_ai.tool.call.arguments", json.dumps({"city": "Paris"}))
            tool.set_status(Status(StatusCode.ERROR, "weather service unreachable"))
        root.set_attribute("output.value", "I could not reach the weather service.")
        trace_id = format(root.get_span_context().trace_id, "032x")

    provider.shutdown()
    if CheckedExporter.failures:
        print(f"{CheckedExporter.failures} export(s) failed", file=sys.stderr)
        return 1
    print(json.dumps({"trace_id": trace_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
