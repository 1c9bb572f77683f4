import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DecisionEvent } from '../domain/decision';

/** A Prometheus registry with the process's default metrics (CPU, memory, event loop). */
export function createRegistry(role: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Request counts and latency per route (the route's pattern, never the raw path). */
export function httpMetrics(registry: Registry): MiddlewareHandler {
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by method, route and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by method and route',
    labelNames: ['method', 'route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  return async (c, next) => {
    const stop = duration.startTimer();
    await next();
    const route = routePath(c, -1);
    const labels = { method: c.req.method, route: route === '*' ? 'unmatched' : route };
    stop(labels);
    requests.inc({ ...labels, status: String(c.res.status) });
  };
}

export interface DecisionMetrics {
  /** Counts the events of one applied projection write: each event is counted once. */
  record(events: readonly DecisionEvent[]): void;
}

/** Decision-level metrics, counted from the events the workflow projects. */
export function decisionMetrics(registry: Registry): DecisionMetrics {
  const started = new Counter({
    name: 'decisions_started_total',
    help: 'Decisions started',
    registers: [registry],
  });
  const finished = new Counter({
    name: 'decisions_finished_total',
    help: 'Decisions finished, by status, and for failures by the phase that failed',
    labelNames: ['status', 'phase'],
    registers: [registry],
  });
  const phaseDuration = new Histogram({
    name: 'decision_phase_duration_seconds',
    help: 'Time from a phase starting to its completion, retries included',
    labelNames: ['phase'],
    buckets: [0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  });
  return {
    record(events) {
      for (const event of events) {
        const data = event.data as { phase?: string; duration_ms?: number; reused_from?: string };
        switch (event.type) {
          case 'decision.started':
            started.inc();
            break;
          case 'phase.completed':
            if (!data.reused_from && typeof data.duration_ms === 'number') {
              phaseDuration.observe({ phase: data.phase ?? 'unknown' }, data.duration_ms / 1000);
            }
            break;
          case 'decision.completed':
            finished.inc({ status: 'completed', phase: '' });
            break;
          case 'decision.failed': {
            const error = (event.data as { error?: { phase?: string | null } }).error;
            finished.inc({ status: 'failed', phase: error?.phase ?? '' });
            break;
          }
          case 'decision.cancelled':
            finished.inc({ status: 'cancelled', phase: data.phase ?? '' });
            break;
        }
      }
    },
  };
}

/** How long model calls waited for their share of the provider's limit. */
export function providerLimitMetrics(registry: Registry): {
  waited(key: string, ms: number): void;
} {
  const waited = new Histogram({
    name: 'llm_provider_limit_wait_seconds',
    help: "Time each model call waited for its share of the provider's limit, by provider and model",
    labelNames: ['limit'],
    buckets: [0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  return { waited: (key, ms) => waited.observe({ limit: key }, ms / 1000) };
}
