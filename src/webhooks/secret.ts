import { hkdfSync } from 'node:crypto';

// Fixed, so that a principal's secret is the same in every process and after every restart.
const SALT = 'decision-backend webhook signing secret v1';

/**
 * The secret that signs `principal`'s deliveries: HKDF-SHA256 of the master (`WEBHOOK_SECRET`,
 * its base64 key) with the principal's name, as `whsec_` and a base64 key of 32 bytes. Derived
 * on use, never stored: a tenant holds its own and cannot sign for another, since the master
 * cannot be recovered from any number of derived ones.
 */
export function principalSecret(master: string, principal: string): string {
  const key = Buffer.from(master.replace(/^whsec_/, ''), 'base64');
  const derived = hkdfSync('sha256', key, SALT, `principal:${principal}`, 32);
  return `whsec_${Buffer.from(derived).toString('base64')}`;
}

/**
 * Who a decision without an owner (one created before decisions had owners) signs as: the one
 * principal of an API without authentication.
 */
export const UNOWNED_PRINCIPAL = 'anonymous';
