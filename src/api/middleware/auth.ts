import { createHash, createHmac, hash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { problem, problemResponse } from '../problem';
import { clientAddress } from './client-address';
import type { AttemptLimiter } from './rate-limit';

export const SCOPES = ['decisions:read', 'decisions:write', 'decisions:admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  /**
   * Who the key is: its given name, or `key-` and an HMAC of the key with the server secret. It
   * names the key in logs and rate limits and owns the decisions the key creates; it never lets
   * anyone who reads it test guesses of the key.
   */
  id: string;
  /** True when the id is the key's given name, which no change to other keys can move. */
  named: boolean;
  digest: Buffer;
  scopes: Set<Scope>;
}

// One call, no Hash object: every authenticated request digests the key it presents.
const digest = (key: string) => hash('sha256', key, 'buffer');
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface ParseOptions {
  /** Shortest key accepted: `npm run api` asks for 24 characters. */
  minLength?: number;
  /**
   * Keys the HMAC that names unnamed keys (API_KEY_SECRET). Without one, the secret is derived
   * from all the keys together: stable while the key set is, unknowable from any one of them.
   */
  secret?: string;
}

/**
 * Parses API_KEYS: `<key>=<scope>+<scope>[@<name>],…`, for example
 * `k1=decisions:read+decisions:write@billing-team`. Several keys may carry one name, each with its
 * own scopes: they are one principal, owning the same decisions. Errors name an entry by its
 * position, never by any of its characters.
 */
export function parseApiKeys(value: string, options: ParseOptions = {}): ApiKey[] {
  const minLength = options.minLength ?? 8;
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  const secret =
    options.secret ??
    createHash('sha256')
      .update([...entries].sort().join('\n'))
      .digest('hex');
  const digests: Buffer[] = [];
  const unnamed = new Set<string>();
  const named = new Set<string>();
  return entries.map((entry, index) => {
    const where = `API_KEYS entry ${index + 1}`;
    const at = entry.lastIndexOf('=');
    const key = entry.slice(0, at);
    if (at <= 0) throw new Error(`${where} must be <key>=<scopes>[@<name>]`);
    if (key.length < minLength) {
      throw new Error(`${where}: keys must have at least ${minLength} characters`);
    }
    const [scopeList = '', name, ...extra] = entry.slice(at + 1).split('@');
    const scopes = scopeList.split('+');
    for (const scope of scopes) {
      if (!(SCOPES as readonly string[]).includes(scope)) {
        throw new Error(`${where}: unknown scope "${scope}" (known: ${SCOPES.join(', ')})`);
      }
    }
    if (extra.length > 0 || (name !== undefined && (!NAME.test(name) || name === 'anonymous'))) {
      throw new Error(
        `${where}: a name is 1 to 64 letters, digits, '.', '_' or '-', and not "anonymous"`,
      );
    }
    const id = name ?? `key-${createHmac('sha256', secret).update(key).digest('hex').slice(0, 16)}`;
    const hash = digest(key);
    if (digests.some((other) => other.equals(hash))) {
      throw new Error(`${where}: this key is given twice`);
    }
    digests.push(hash);
    // A name may stand on several keys (a rotation, a read-only key beside a write key): they
    // are one principal. An unnamed key's id is its own: no name may take it.
    if (name === undefined ? named.has(id) : unnamed.has(id)) {
      throw new Error(`${where}: the name ${id} is an unnamed key's id`);
    }
    (name === undefined ? unnamed : named).add(id);
    return {
      id,
      named: name !== undefined,
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
 * With no keys configured (auth disabled) every caller is `anonymous` with every scope. A valid
 * key is never refused for what others did from its address (one misconfigured client behind a
 * NAT must not lock every tenant out); a wrong key is counted against its client's address, and
 * past the limit the address is answered 429 instead of 401 for each wrong key.
 */
export function authenticate(
  keys: ApiKey[] | null,
  options: { failures?: AttemptLimiter; trustProxy?: boolean } = {},
): MiddlewareHandler<{ Variables: AuthVariables }> {
  const { failures } = options;
  return async (c, next) => {
    if (!keys) {
      c.set('principal', 'anonymous');
      c.set('scopes', new Set(SCOPES));
      return next();
    }
    const match = /^Bearer\s+(\S+)$/i.exec(c.req.header('Authorization') ?? '');
    const presented = match ? digest(match[1]!) : null;
    // Every key is compared, in constant time, so that the time taken tells nothing of which.
    let key: ApiKey | undefined;
    for (const candidate of keys) {
      if (presented && timingSafeEqual(candidate.digest, presented) && !key) key = candidate;
    }
    if (key) {
      c.set('principal', key.id);
      c.set('scopes', key.scopes);
      return next();
    }
    if (match && failures) {
      const wait = await failures.fail(clientAddress(c, options.trustProxy));
      if (wait > 0) return failures.refuse(c, wait);
    }
    c.header('WWW-Authenticate', 'Bearer realm="decisions"');
    return problemResponse(
      c,
      problem(
        401,
        match ? 'The API key is not valid' : 'Send an API key as Authorization: Bearer <key>',
        { instance: c.req.path },
      ),
    );
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
