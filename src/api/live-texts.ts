import { parse } from 'partial-json';
import type { LiveEventData } from '../domain/live';
import type { StoredEvent } from '../projection/redis-projection';

interface CallText {
  text: string;
  /** Where the text known ends in the call's answer. */
  end: number;
  /** False once a delta was missed: the text is not known from its start. */
  whole: boolean;
}

/**
 * The answer a model call has written so far, parsed as far as it goes: `{"options": [{"name":
 * "Ret` is `{ options: [{ name: 'Ret' }] }`. Null when nothing parses yet.
 */
export function partialAnswer(text: string): unknown {
  // A model may fence its JSON, as validateAnswer allows.
  const body = text.trimStart().replace(/^```(?:json)?\s*/i, '');
  if (!body.trim()) return null;
  try {
    return parse(body) as unknown;
  } catch {
    return null;
  }
}

/**
 * What one event stream knows of each running call's text, from the deltas it has seen: a delta
 * goes out with the answer parsed so far (`partial`), or null once a delta of its call was
 * missed (dropped while Redis was away, or past the live stream's cap).
 */
export class LiveTexts {
  private readonly calls = new Map<string, CallText>();

  /** The event's data as a stream sends it: a delta gains its call's `partial`. */
  add(event: StoredEvent): unknown {
    if (event.type !== 'phase.delta') return event.data;
    const delta = event.data as Omit<LiveEventData<'phase.delta'>, 'partial'>;
    const key = `${delta.phase}|${delta.need ?? ''}|${delta.attempt}|${delta.call}`;
    let call = this.calls.get(key);
    if (!call) {
      call = { text: '', end: delta.offset, whole: delta.offset === 0 };
      this.calls.set(key, call);
    }
    if (delta.offset !== call.end) call.whole = false;
    call.text = call.whole ? call.text + delta.text : '';
    call.end = delta.offset + delta.text.length;
    return { ...delta, partial: call.whole ? partialAnswer(call.text) : null };
  }

  /** Forgets the calls of a phase that ended. */
  forget(phase: string | undefined): void {
    for (const key of this.calls.keys()) if (key.startsWith(`${phase}|`)) this.calls.delete(key);
  }
}
