/** Durations as people type them: `90s`, `15m`, `1h30m`, `7d`. */

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  const pattern = /(\d+)(ms|s|m|h|d)/gy;
  let total = 0;
  let end = 0;
  for (const match of text.trim().matchAll(pattern)) {
    total += Number(match[1]) * UNITS[match[2]!]!;
    end = match.index + match[0].length;
  }
  if (end === 0 || end !== text.trim().length || total <= 0) {
    throw new RangeError(`"${text}" is not a duration (examples: 90s, 15m, 1h30m, 7d)`);
  }
  if (!Number.isSafeInteger(total)) throw new RangeError(`"${text}" is not a duration a clock can count to`);
  return total;
}

/** The inverse of parseDuration, for people: `1h30m`, `45s`. */
export function formatDuration(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1000, 's'],
  ];
  let rest = ms;
  let text = '';
  for (const [size, unit] of units) {
    if (rest >= size) {
      text += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return text || `${ms}ms`;
}

/**
 * A point in time as people give one: a duration back from `now` (`7d`, `12h`), or an ISO 8601
 * date or time (`2026-12-01`, `2026-12-01T08:00:00Z`). Epoch milliseconds.
 */
export function pointInTime(text: string, now: number): number {
  if (/^\s*\d+(?:ms|s|m|h|d)/.test(text)) return now - parseDuration(text);
  const at = /^\d{4}-\d\d-\d\d/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(at))
    throw new RangeError(`"${text}" is neither a duration back from now (7d, 12h) nor an ISO date or time (2026-12-01)`);
  return at;
}
