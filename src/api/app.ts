import { OpenAPIHono } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import type { Logger } from 'pino';
import { ProblemError } from './errors';
import type { HealthCheck } from './health';
import { problem, problemResponse } from './problem';
import { registerDecisionRoutes, type Decisions } from './routes/decisions';
import { registerHealthRoutes } from './routes/health';

export interface AppDeps {
  decisions: Decisions;
  health: HealthCheck;
  maxQueryChars: number;
  /** Largest request body accepted, in bytes. */
  maxBodyBytes?: number;
  logger?: Pick<Logger, 'error'>;
}

/** The HTTP API as a Hono app: routes, validation and one mapping of errors to problem+json. */
export function createApp(deps: AppDeps): OpenAPIHono {
  const app = new OpenAPIHono({
    defaultHook: (result, c) => {
      if (result.success) return;
      const errors = result.error.issues.map((issue) => ({
        path: issue.path.join('.') || '(body)',
        message: issue.message,
      }));
      const detail = errors.map((e) => `${e.path} ${e.message}`).join('; ');
      return problemResponse(c, problem(400, detail, { instance: c.req.path, errors }));
    },
  });
  const maxBodyBytes = deps.maxBodyBytes ?? 64 * 1024;

  app.use(requestId());
  app.use(
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: (c) =>
        problemResponse(
          c,
          problem(413, `The request body is larger than ${maxBodyBytes} bytes`, {
            instance: c.req.path,
          }),
        ),
    }),
  );

  registerHealthRoutes(app, deps);
  registerDecisionRoutes(app, deps);

  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Decision backend API', version: '0.1.0' },
  });

  app.notFound((c) =>
    problemResponse(c, problem(404, `No route for ${c.req.method} ${c.req.path}`)),
  );
  app.onError((err, c) => {
    if (err instanceof ProblemError) {
      return problemResponse(c, { ...err.problem, instance: c.req.path });
    }
    if (err instanceof HTTPException) {
      const detail =
        err.status === 415
          ? 'The request body must be JSON (Content-Type: application/json)'
          : err.message;
      return problemResponse(c, problem(err.status, detail, { instance: c.req.path }));
    }
    deps.logger?.error({ err, path: c.req.path, requestId: c.get('requestId') }, 'Request failed');
    return problemResponse(
      c,
      problem(500, 'The server could not handle the request', { instance: c.req.path }),
    );
  });
  return app;
}
