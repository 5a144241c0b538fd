// The one WebSocket to the broadcast service, shared by every page. It watches the items the
// pages ask for, keeps each item's state from its snapshot plus the events with a higher `seq`
// (a repeat is dropped, a gap asks for a fresh snapshot), signs in with the access token so the
// user's private frames (outbid, won, lost, ending_soon) arrive, and when the socket drops it
// says "reconnecting", reconnects with capped backoff, and resubscribes: every item starts
// again from a snapshot, so the price shown is right after any outage.

import { accessToken, onSessionChange, refresh } from "./session.js";

const PRIVATE_TYPES = new Set(["outbid", "won", "lost", "ending_soon"]);
const BACKOFF_MS = [250, 500, 1000, 2000, 4000];

/** One watched item: its latest state and whoever wants to hear of it. */
class Watch {
  constructor(itemId) {
    this.itemId = itemId;
    this.state = null;
    this.viewers = null;
    this.listeners = new Set();
  }

  notify(change) {
    for (const listener of this.listeners) listener(this.state, change);
  }
}

class LiveConnection {
  constructor() {
    this.url = null;
    this.socket = null;
    this.watches = new Map();
    this.statusListeners = new Set();
    this.privateListeners = new Set();
    this.eventListeners = new Set();
    this.attempt = 0;
    this.status = "connecting";
    this.timer = null;
  }

  start(url) {
    this.url = url;
    this.connect();
    onSessionChange((user) => {
      // A socket keeps its sign-in until told otherwise: after a sign-out it is replaced by
      // a public one, so nobody's private frames reach the next person at this browser.
      if (user) this.signIn();
      else this.socket?.close(1000, "signed out");
    });
  }

  connect() {
    clearTimeout(this.timer);
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempt = 0;
      this.setStatus("live");
      this.signIn();
      for (const itemId of this.watches.keys()) this.send({ type: "subscribe", item_id: itemId });
    });
    socket.addEventListener("message", (message) => this.receive(message.data));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.retry();
    });
  }

  retry() {
    this.setStatus("reconnecting");
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), base + Math.random() * base * 0.5);
  }

  setStatus(status) {
    this.status = status;
    for (const listener of this.statusListeners) listener(status);
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  signIn() {
    const token = accessToken();
    if (token) this.send({ type: "auth", token });
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (PRIVATE_TYPES.has(frame.type)) {
      for (const listener of this.privateListeners) listener(frame);
      return;
    }
    if (frame.type === "auth_expired") {
      refresh().then((ok) => ok && this.signIn());
      return;
    }
    const watch = this.watches.get(frame.item_id);
    if (!watch) return;
    if (frame.type === "viewers") {
      watch.viewers = frame.count;
      watch.notify({ type: "viewers" });
    } else if (frame.type === "snapshot") {
      watch.state = { ...frame, type: undefined };
      watch.notify({ type: "snapshot" });
    } else if (frame.type === "error") {
      watch.notify({ type: "error", error: frame });
    } else if (typeof frame.seq === "number" && watch.state) {
      this.apply(watch, frame);
    }
  }

  /** An event in `seq` order onto the item's state; a repeat is dropped, a gap resyncs. */
  apply(watch, event) {
    const last = watch.state.seq ?? 0;
    if (event.seq <= last) return;
    if (event.seq > last + 1) {
      this.send({ type: "subscribe", item_id: watch.itemId });
      return;
    }
    const previous = watch.state;
    watch.state = applyEvent(previous, event);
    watch.notify({ type: event.type, event });
    for (const listener of this.eventListeners) listener(event, watch.state, previous);
  }

  /**
   * Watches `itemId`: `listener(state, change)` on its snapshot and every change. Returns the
   * function that stops watching.
   */
  watch(itemId, listener) {
    let watch = this.watches.get(itemId);
    if (!watch) {
      watch = new Watch(itemId);
      this.watches.set(itemId, watch);
      this.send({ type: "subscribe", item_id: itemId });
    } else if (watch.state) {
      queueMicrotask(() => listener(watch.state, { type: "snapshot" }));
    }
    watch.listeners.add(listener);
    return () => {
      watch.listeners.delete(listener);
      if (watch.listeners.size === 0 && !watch.keep) {
        this.watches.delete(itemId);
        this.send({ type: "unsubscribe", item_id: itemId });
      }
    };
  }

  /** Keeps watching `itemId` on every page (an item the user bid on), until `unkeep`. */
  keep(itemId) {
    if (!this.watches.has(itemId)) {
      this.watches.set(itemId, new Watch(itemId));
      this.send({ type: "subscribe", item_id: itemId });
    }
    this.watches.get(itemId).keep = true;
  }

  stateOf(itemId) {
    return this.watches.get(itemId)?.state ?? null;
  }

  viewersOf(itemId) {
    return this.watches.get(itemId)?.viewers ?? null;
  }

  onStatus(listener) {
    this.statusListeners.add(listener);
    listener(this.status);
  }

  onPrivate(listener) {
    this.privateListeners.add(listener);
  }

  /**
   * `listener(event, state, previousState)` for every applied event of every watched item
   * (the notifications' fallback while private frames are not produced).
   */
  onEvent(listener) {
    this.eventListeners.add(listener);
  }
}

/** The item view after one event (the gateway's field names; `_cents` kept exact). */
export function applyEvent(state, event) {
  const next = { ...state, seq: event.seq };
  switch (event.type) {
    case "bid_placed":
      next.current_bid = event.amount;
      next.current_bid_cents = event.amount_cents;
      next.highest_bidder_id = event.user_id;
      next.bid_count = (state.bid_count ?? 0) + 1;
      if (event.end_time) next.end_time = event.end_time;
      // The next minimum follows the schedule in force; the event does not carry it, so it is
      // derived here and replaced by the server's own figure at the next snapshot.
      for (const stale of ["next_minimum_bid", "next_minimum_bid_cents", "minimum_bid", "minimum_bid_cents"]) delete next[stale];
      delete next.buy_now_price;
      delete next.buy_now_price_cents;
      break;
    case "auction_closed":
      next.status = event.cancelled ? "cancelled" : "closed";
      next.winner_id = event.winner_id ?? null;
      next.final_price = event.final_price ?? null;
      next.final_price_cents = event.final_price_cents ?? null;
      next.closed_at = event.timestamp;
      next.reserve_met = event.reserve_met ?? state.reserve_met;
      next.cancel_reason = event.reason ?? null;
      next.buy_now = event.buy_now ?? false;
      delete next.buy_now_price;
      delete next.buy_now_price_cents;
      break;
    case "auction_extended":
      next.end_time = event.end_time;
      break;
    case "auction_relisted":
      next.status = "active";
      next.current_bid = 0;
      next.current_bid_cents = 0;
      next.highest_bidder_id = null;
      next.bid_count = 0;
      next.winner_id = null;
      next.final_price = null;
      next.final_price_cents = null;
      next.closed_at = null;
      next.starting_price = event.starting_price;
      next.starting_price_cents = event.starting_price_cents;
      for (const stale of ["next_minimum_bid", "next_minimum_bid_cents", "minimum_bid", "minimum_bid_cents"]) delete next[stale];
      next.start_time = event.start_time;
      next.end_time = event.end_time;
      next.round = event.round;
      break;
    default:
      break;
  }
  return next;
}

export const live = new LiveConnection();
