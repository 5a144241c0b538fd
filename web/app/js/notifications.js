// News for the signed-in user on whatever page they are: outbid, won, lost, ending soon. The
// broadcast service delivers the user's private frames to their socket. Only against a
// gateway without the notifications API (an older deployment) is the same news derived from
// the live events of the items the user bid on (which the app keeps watching on every page):
// a live event cannot tell a proxy bid that is answered at once from a real outbid, so where
// the server produces private frames they are the only source. The notifications list and its unread badge appear only where the gateway
// has `/api/v1/me/notifications`.

import { api } from "./api.js";
import { live } from "./live.js";
import { centsOf, formatMoney } from "./money.js";
import { currentUser, onSessionChange } from "./session.js";
import { toast } from "./toasts.js";
import { formatTime } from "./time.js";

// With a page of 20 items this stays under the socket's 32 subscriptions.
const FOLLOW_LIMIT = 10;
let available = null;
let unread = 0;

function followKey() {
  return `auction.following.${currentUser()?.id ?? ""}`;
}

function following() {
  try {
    return JSON.parse(localStorage.getItem(followKey()) ?? "[]");
  } catch {
    return [];
  }
}

/** Keeps `itemId` watched on every page, for its outbid and result news. */
export function follow(itemId) {
  const ids = [itemId, ...following().filter((id) => id !== itemId)].slice(0, FOLLOW_LIMIT);
  localStorage.setItem(followKey(), JSON.stringify(ids));
  live.keep(itemId);
}

function nameOf(itemId) {
  return live.stateOf(itemId)?.name ?? itemId;
}

function itemLink(itemId) {
  return `#/items/${encodeURIComponent(itemId)}`;
}

/** A private frame, or the same news derived from a live event. */
export function announce(frame) {
  const id = frame.item_id;
  const name = nameOf(id);
  switch (frame.type) {
    case "outbid": {
      const price = formatMoney(centsOf(frame, "current_bid"));
      const lead = centsOf(frame, "minimum_to_lead");
      const hint = lead !== null ? ` Bid ${formatMoney(lead)} to lead.` : "";
      toast(`You were outbid on ${name}: now ${price}.${hint}`, { kind: "warning", key: `outbid:${id}:${frame.seq}`, link: itemLink(id) });
      break;
    }
    case "won":
      toast(`You won ${name} for ${formatMoney(centsOf(frame, "final_price"))}!`, { kind: "success", key: `won:${id}`, link: itemLink(id) });
      break;
    case "lost": {
      const price = centsOf(frame, "final_price");
      toast(price !== null ? `${name} ended: sold for ${formatMoney(price)} to another bidder.` : `${name} ended without you winning.`, { key: `lost:${id}`, link: itemLink(id) });
      break;
    }
    case "ending_soon":
      toast(`${name} ends soon (${formatTime(frame.end_time)}).`, { key: `ending:${id}:${frame.end_time}`, link: itemLink(id) });
      break;
    default:
      return;
  }
  if (frame.notification_id) setUnread(unread + 1);
}

/** Outbid and results from the live events of followed items (the fallback). */
function derive(event, state, previous) {
  if (available !== false) return;
  const me = currentUser()?.id;
  if (!me || !following().includes(event.item_id)) return;
  if (event.type === "bid_placed" && previous.highest_bidder_id === me && event.user_id !== me) {
    announce({ type: "outbid", item_id: event.item_id, current_bid_cents: event.amount_cents, seq: event.seq });
  } else if (event.type === "auction_closed" && !event.cancelled) {
    if (event.winner_id === me) announce({ type: "won", item_id: event.item_id, final_price_cents: event.final_price_cents });
    else announce({ type: "lost", item_id: event.item_id, final_price_cents: event.final_price_cents ?? null });
  }
}

function setUnread(count) {
  unread = Math.max(0, count);
  const badge = document.getElementById("unread-count");
  badge.textContent = String(unread);
  badge.hidden = unread === 0;
  badge.setAttribute("aria-label", `${unread} unread`);
}

/** Whether the gateway has the notifications API (null until known). */
export function notificationsAvailable() {
  return available;
}

export async function refreshUnread() {
  if (!currentUser()) return;
  try {
    const page = await api("/api/v1/me/notifications?limit=1&unread=true", { auth: true });
    available = true;
    setUnread(page?.unread_count ?? 0);
  } catch (error) {
    if (error.routeMissing) available = false;
  }
  document.body.dataset.notifications = available ? "on" : "off";
}

export function startNotifications() {
  live.onPrivate(announce);
  live.onEvent(derive);
  const resume = () => {
    for (const id of following()) live.keep(id);
    refreshUnread();
  };
  onSessionChange(resume);
  resume();
}
