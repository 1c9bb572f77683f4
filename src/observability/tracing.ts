import type { Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { OpenTelemetryPlugin } from '@temporalio/interceptors-opentelemetry';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';

export interface Tracing {
  /** Temporal's OpenTelemetry plugin: client, workflow and activity spans, trace propagation. */
  plugin: OpenTelemetryPlugin;
  tracer: Tracer;
  /** Flushes the spans still buffered. */
  shutdown(): Promise<void>;
}

/**
 * Tracing exported over OTLP/HTTP to `endpoint` (OTEL_EXPORTER_OTLP_ENDPOINT); null, and no
 * tracing at all, when no endpoint is configured.
 */
export function startTracing(endpoint: string | undefined, serviceName: string): Tracing | null {
  if (!endpoint) return null;
  const resource = new Resource({ 'service.name': serviceName });
  const exporter = new OTLPTraceExporter({
    url: new URL('v1/traces', endpoint.endsWith('/') ? endpoint : `${endpoint}/`).href,
  });
  const spanProcessor = new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000 });
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register();
  return {
    plugin: new OpenTelemetryPlugin({ resource, spanProcessor }),
    tracer: provider.getTracer(serviceName),
    shutdown: () => provider.shutdown(),
  };
}

/** A server span per request, named after the route; Temporal client calls become its children. */
export function tracingMiddleware(tracer: Tracer): MiddlewareHandler {
  return (c, next) =>
    tracer.startActiveSpan(`${c.req.method} ${c.req.path}`, async (span) => {
      try {
        await next();
      } finally {
        span.updateName(`${c.req.method} ${routePath(c, -1)}`);
        span.setAttribute('http.request.method', c.req.method);
        span.setAttribute('http.route', routePath(c, -1));
        span.setAttribute('http.response.status_code', c.res.status);
        span.end();
      }
    });
}
