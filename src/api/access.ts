import type { Context } from 'hono';
import type { Caller } from './decision-service';
import type { AuthVariables } from './middleware/auth';

/** Who asks, as the authentication middleware found it; the service decides what they may see. */
export function callerOf(c: Context<{ Variables: AuthVariables }>): Caller {
  return { principal: c.get('principal'), admin: c.get('scopes').has('decisions:admin') };
}
