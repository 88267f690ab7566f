// The WebSocket (`GET /v1/ws`) and the one cursor of the contract (revision 2): the highest
// account `seq` seen, and the highest `group_seq` seen per group. After a network drop the
// client reconnects (backing off) and sends `{"type": "resume", "since", "groups"}` right
// after `hello`, so the server replays what it missed of the account and of each group, in
// order, then goes live.
//
// Account events carry `seq`; group events carry `group_id` and `group_seq` and no `seq`
// (a group frame is told apart by its top-level `group_id`). Only account frames move
// `since`, so a group's numbers never make the client skip an account event.

const PING_EVERY_MS = 25_000;
const PONG_WITHIN_MS = 10_000;
const BACKOFF_MAX_MS = 10_000;

export class Live {
  /**
   * `handlers`: `event(frame)` for every event, `hello(frame, resumed)` after each hello,
   * `resync()` when the server no longer holds what the cursor asks for (reload over HTTP),
   * `status(state)` with `connecting`, `live` or `offline`, `refused()` when connecting
   * keeps failing before any frame.
   */
  constructor(token, handlers) {
    this.token = token;
    this.handlers = handlers;
    /** The highest account `seq` seen; null until the first `hello`. */
    this.since = null;
    /** Account seqs already handled (the newest few thousand). */
    this.seen = new Set();
    /** Group id to the highest `group_seq` seen. */
    this.groups = new Map();
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    /** While held (tests), a dropped connection waits for `release()` to reconnect. */
    this.held = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.onOnline = () => this.reconnectNow();
    window.addEventListener('online', this.onOnline);
  }

  start() {
    this.connect();
  }

  /** Closes for good (logout). */
  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    this.clearTimers();
    if (this.ws) this.ws.close(1000, 'bye');
    this.ws = null;
  }

  /** Ends the connection as a network drop would: the client reconnects and resumes. */
  drop() {
    if (this.ws) this.ws.close(4000, 'dropped');
  }

  /** Drops the connection and keeps it down until `release()` (for tests and demos). */
  hold() {
    this.held = true;
    this.drop();
  }

  release() {
    this.held = false;
    this.reconnectNow();
  }

  /** The frame `resume` sends now: the one cursor. */
  resumeFrame() {
    return {type: 'resume', since: this.since, groups: Object.fromEntries(this.groups)};
  }

  connect() {
    if (this.stopped || this.held || this.ws) return;
    this.handlers.status('connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(
      `${scheme}//${location.host}/v1/ws?token=${encodeURIComponent(this.token)}`);
    this.ws = ws;
    ws.addEventListener('message', (m) => {
      if (this.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(m.data);
      } catch {
        return;
      }
      this.receive(frame);
    });
    let greeted = false;
    ws.addEventListener('message', () => { greeted = true; }, {once: true});
    ws.addEventListener('close', () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      this.handlers.status('offline');
      // Refused before any frame, again and again: maybe the token is no longer good (the
      // page checks it over HTTP, and logs out on a 401), maybe the server is down.
      if (!greeted && this.attempt >= 2) this.handlers.refused?.();
      this.scheduleRetry();
    });
  }

  scheduleRetry() {
    if (this.stopped || this.held) return;
    clearTimeout(this.retryTimer);
    const base = Math.min(BACKOFF_MAX_MS, 500 * 2 ** this.attempt);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
  }

  reconnectNow() {
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.connect();
  }

  receive(frame) {
    this.alive();
    switch (frame.type) {
      case 'hello':
        return this.hello(frame);
      case 'pong':
        return undefined;
      case 'error':
        if (frame.error?.code === 'resync_required') {
          // What the cursor asks for is no longer kept: the connection is live from the
          // hello's numbers, and the page reloads its state over HTTP.
          this.since = Math.max(this.since ?? 0, this.helloSeq);
          this.groups = new Map();
          this.takeHelloGroups(this.helloFrame);
          this.handlers.resync();
        } else {
          console.warn('chorus: server error frame', frame.error);
        }
        return undefined;
      default:
        break;
    }
    if (typeof frame.group_id === 'string') {
      if (typeof frame.group_seq === 'number') {
        const seen = this.groups.get(frame.group_id) ?? 0;
        this.groups.set(frame.group_id, Math.max(seen, frame.group_seq));
      }
    } else if (typeof frame.seq === 'number') {
      // An account event, handled once: a live event may come between `hello` and the
      // replay that `resume` starts, so the replay can repeat one already seen.
      if (this.seen.has(frame.seq)) return undefined;
      this.seen.add(frame.seq);
      if (this.seen.size > 4096) this.seen.delete(this.seen.values().next().value);
      this.since = Math.max(this.since ?? 0, frame.seq);
    }
    this.handlers.event(frame);
    return undefined;
  }

  hello(frame) {
    const resumed = this.since !== null;
    this.helloSeq = frame.seq;
    this.helloFrame = frame;
    if (resumed) {
      this.ws.send(JSON.stringify(this.resumeFrame()));
    } else {
      // First connection of this page: its state is loaded over HTTP from here on.
      this.since = frame.seq;
    }
    // Groups the cursor does not hold yet (all of them at first; after a reconnect, those
    // joined meanwhile, which a page loads over HTTP when it opens them) start at hello's.
    this.takeHelloGroups(frame);
    this.attempt = 0;
    this.handlers.status('live');
    this.handlers.hello(frame, resumed);
    this.pingTimer = setInterval(() => this.ping(), PING_EVERY_MS);
  }

  /** `hello`'s groups (revision 2), as a map or a list: where each group's cursor starts. */
  takeHelloGroups(frame) {
    for (const [gid, seq] of helloGroups(frame)) {
      if (!this.groups.has(gid) && typeof seq === 'number') this.groups.set(gid, seq);
    }
  }

  /** Our own heartbeat: a network that died quietly is noticed within ~35 s. */
  ping() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send('{"type":"ping"}');
    clearTimeout(this.pongTimer);
    this.pongTimer = setTimeout(() => this.drop(), PONG_WITHIN_MS);
  }

  alive() {
    clearTimeout(this.pongTimer);
  }

  clearTimers() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}

/** `[group_id, group_seq]` pairs of a `hello` (none from a server before revision 2). */
export function helloGroups(frame) {
  const groups = frame?.groups;
  if (Array.isArray(groups)) {
    return groups
      .map((g) => (typeof g === 'string' ? [g, undefined] : [g.group_id, g.group_seq ?? g.seq]))
      .filter(([gid]) => typeof gid === 'string');
  }
  if (groups && typeof groups === 'object') return Object.entries(groups);
  return [];
}
