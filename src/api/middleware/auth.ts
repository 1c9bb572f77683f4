import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { problem, problemResponse } from '../problem';

export const SCOPES = ['decisions:read', 'decisions:write', 'decisions:admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  /** A short, non-secret name for logs and rate limits: the first characters of the key's hash. */
  id: string;
  digest: Buffer;
  scopes: Set<Scope>;
}

const digest = (key: string) => createHash('sha256').update(key).digest();

/** Parses API_KEYS: `<key>=<scope>+<scope>,…`, for example `k1=decisions:read+decisions:write`. */
export function parseApiKeys(value: string): ApiKey[] {
  return value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const at = entry.lastIndexOf('=');
      const key = entry.slice(0, at);
      if (at <= 0 || key.length < 8) {
        throw new Error(
          `API_KEYS: "${entry.slice(0, 4)}…" must be <key>=<scopes>, keys of 8+ characters`,
        );
      }
      const scopes = entry.slice(at + 1).split('+');
      for (const scope of scopes) {
        if (!(SCOPES as readonly string[]).includes(scope)) {
          throw new Error(`API_KEYS: unknown scope "${scope}" (known: ${SCOPES.join(', ')})`);
        }
      }
      const hash = digest(key);
      return {
        id: `key-${hash.toString('hex').slice(0, 8)}`,
        digest: hash,
        scopes: new Set(scopes as Scope[]),
      };
    });
}

export interface AuthVariables {
  /** Who is calling: an API key's id, or `anonymous` when auth is disabled. */
  principal: string;
  scopes: Set<Scope>;
}

/**
 * Resolves `Authorization: Bearer <key>` to a principal and its scopes; 401 without a valid key.
 * With no keys configured (auth disabled) every caller is `anonymous` with every scope.
 */
export function authenticate(
  keys: ApiKey[] | null,
): MiddlewareHandler<{ Variables: AuthVariables }> {
  return async (c, next) => {
    if (!keys) {
      c.set('principal', 'anonymous');
      c.set('scopes', new Set(SCOPES));
      return next();
    }
    const match = /^Bearer\s+(\S+)$/i.exec(c.req.header('Authorization') ?? '');
    const presented = match ? digest(match[1]!) : null;
    const key = presented && keys.find((k) => timingSafeEqual(k.digest, presented));
    if (!key) {
      c.header('WWW-Authenticate', 'Bearer realm="decisions"');
      return problemResponse(
        c,
        problem(
          401,
          match ? 'The API key is not valid' : 'Send an API key as Authorization: Bearer <key>',
          {
            instance: c.req.path,
          },
        ),
      );
    }
    c.set('principal', key.id);
    c.set('scopes', key.scopes);
    return next();
  };
}

/** 403 unless the caller holds the scope; decisions:admin implies the others. */
export function requireScope(scope: Scope): MiddlewareHandler<{ Variables: AuthVariables }> {
  return async (c, next) => {
    const scopes = c.get('scopes');
    if (!scopes?.has(scope) && !scopes?.has('decisions:admin')) {
      return problemResponse(
        c,
        problem(403, `This API key lacks the ${scope} scope`, { instance: c.req.path }),
      );
    }
    return next();
  };
}
