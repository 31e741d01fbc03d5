/**
 * A Server-Sent Events parser for a stream read with fetch(): EventSource cannot send the
 * `Authorization` header that the gateway's API takes, so the UI reads `text/event-stream` itself.
 * It follows the HTML standard's parsing rules: lines end with CRLF, LF or CR; a blank line
 * dispatches the event; `data` lines are joined with newlines; a line that starts with `:` is a
 * comment; one space after the colon is dropped; an event without data is not dispatched. Text may
 * arrive split anywhere (inside a line, between CR and LF). `id` and `retry` are not used here.
 */

export interface SseEvent {
  /** `message` when the event names no type. */
  readonly event: string;
  readonly data: string;
}

export class SseParser {
  #buffer = '';
  /** The previous chunk ended with CR: an LF that starts this one belongs to that line ending. */
  #afterCr = false;
  #event = '';
  #data: string[] = [];

  /** Feeds decoded text; returns the events that it completes. */
  push(text: string): SseEvent[] {
    // Nothing to read: the CR that may have ended the last chunk still waits for its LF.
    if (text === '') return [];
    let chunk = text;
    if (this.#afterCr && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.#afterCr = chunk.endsWith('\r');
    this.#buffer += chunk;
    const events: SseEvent[] = [];
    const lines = this.#buffer.split(/\r\n|\r|\n/);
    // The last piece has no line ending yet (or is empty after one).
    this.#buffer = lines.pop() ?? '';
    for (const line of lines) {
      const event = this.#line(line);
      if (event) events.push(event);
    }
    return events;
  }

  #line(line: string): SseEvent | undefined {
    if (line === '') {
      const event = this.#data.length > 0 ? { event: this.#event || 'message', data: this.#data.join('\n') } : undefined;
      this.#event = '';
      this.#data = [];
      return event;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#event = value;
    else if (field === 'data') this.#data.push(value);
    return undefined;
  }
}
