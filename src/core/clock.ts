/** Time comes from an injected clock so that tests can freeze it. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told: for tests, and for replaying recorded time. */
export class FrozenClock implements Clock {
  at: number;
  constructor(at = Date.UTC(2026, 0, 1)) {
    this.at = at;
  }
  now(): number {
    return this.at;
  }
  advance(ms: number): void {
    this.at += ms;
  }
}
