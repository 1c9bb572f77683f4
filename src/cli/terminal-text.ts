/**
 * Text that users, models and servers wrote, made safe to print on a terminal: what is left can
 * neither move the cursor, clear the screen, set the window title, write a hyperlink or hide text,
 * nor read in another order than it is stored. Everything else (accents, CJK, emoji) is kept.
 */

/* eslint-disable no-control-regex -- matching control characters is what this module is for */

// Longest forms first. String controls (OSC `ESC ]`, DCS `ESC P`, SOS `ESC X`, PM `ESC ^`, APC
// `ESC _` and their 8-bit forms) run to BEL or ST; one without its end loses only its introducer,
// so its text stays visible. Then CSI (`ESC [` or 0x9B): parameter bytes, intermediate bytes, a
// final byte. Then any other escape: intermediate bytes and a final byte.
const SEQUENCES =
  /(?:\u001b[\]PX^_]|[\u0090\u0098\u009d-\u009f])[^\u0007\u001b\u009c]*(?:\u0007|\u001b\\|\u009c)|(?:\u001b\[|\u009b)[\u0030-\u003f]*[\u0020-\u002f]*[\u0040-\u007e]?|\u001b[\u0020-\u002f]*[\u0030-\u007e]?/g;

// C0 (tab and newline spared here), DEL, C1, and the bidi embeddings, overrides and isolates.
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/* eslint-enable no-control-regex */

/**
 * Strips escape sequences and control characters. A `multiline` field keeps its newlines and
 * tabs; any other becomes one line, its newlines and tabs turned into spaces.
 */
export function terminalText(text: string, options: { multiline?: boolean } = {}): string {
  const kept = text.replace(SEQUENCES, '').replace(CONTROLS, '');
  return options.multiline ? kept : kept.replace(/[\t\n]/g, ' ');
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function clean(value: unknown): unknown {
  if (typeof value === 'string') return terminalText(value, { multiline: true });
  if (Array.isArray(value)) return value.map(clean);
  if (isPlainObject(value)) {
    return Object.fromEntries(
      Object.entries(value).map(([key, field]) => [terminalText(key), clean(field)]),
    );
  }
  return value;
}

/**
 * A copy of JSON-like data with every string passed through `terminalText` (values may keep
 * their newlines, keys may not). Numbers, booleans, null and class instances are left as they are.
 */
export function terminalSafe<T>(value: T): T {
  return clean(value) as T;
}
