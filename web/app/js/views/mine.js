// The signed-in user's auctions: my bids (each item with where I stand), won, the watchlist
// and the notifications (each naming its item, looked up once). The watchlist and
// notifications tabs appear where the gateway has those routes.

import { api, describeError } from "../api.js";
import { h, replace } from "../dom.js";
import { centsOf, formatMoney } from "../money.js";
import { refreshUnread } from "../notifications.js";
import { currentUser } from "../session.js";
import { formatRemaining, formatTime } from "../time.js";

const TABS = { bids: "My bids", won: "Won", watchlist: "Watchlist", notifications: "Notifications" };
/** Items of my bid history looked up for their state. */
const ITEM_LOOKUPS = 30;
/** Item names by id for the notifications list (a name never changes, so kept per page load). */
const itemNames = new Map();

export function mineView(main, { args }) {
  const me = currentUser();
  if (!me) {
    location.hash = "#/login?next=%23%2Fme";
    return null;
  }
  const tab = args[0] ?? "bids";
  let gone = false;
  const body = h("div", { id: "mine-body" }, h("p", {}, "Loading…"));
  replace(main,
    h("h1", {}, "My auctions"),
    h("nav", { class: "tabs", "aria-label": "My auctions" },
      Object.entries(TABS).map(([key, label]) =>
        h("a", { href: `#/me/${key}`, "aria-current": key === tab ? "page" : null, dataset: key === "notifications" ? { feature: "notifications" } : {} }, label))),
    body);

  const show = (...nodes) => { if (!gone) replace(body, ...nodes); };
  const fail = (error) => show(h("p", { class: "message", dataset: { kind: "error" } },
    error.routeMissing ? "This server does not offer this yet." : describeError(error)));

  if (tab === "bids" || tab === "won") {
    myItems(me).then((rows) => {
      const wanted = tab === "won" ? rows.filter((r) => r.item.winner_id === me.id) : rows;
      show(wanted.length
        ? h("ul", { class: "cards" }, wanted.map((r) => itemRow(r.item, standing(r, me), r.myCents)))
        : h("p", {}, tab === "won" ? "Nothing won yet." : "You have not bid yet."));
    }, fail);
  } else if (tab === "watchlist") {
    api("/api/v1/me/watchlist", { auth: true }).then((page) => {
      const items = page.items ?? [];
      show(items.length ? h("ul", { class: "cards" }, items.map((item) => itemRow(item, item.status, null))) : h("p", {}, "Nothing on your watchlist. Use “Watch” on an auction."));
    }, fail);
  } else {
    notifications().then(show, fail);
  }
  return () => { gone = true; };
}

/** My bid history grouped by item, with each item's current state. */
async function myItems(me) {
  const history = await api(`/api/v1/users/${encodeURIComponent(me.id)}/bids?limit=200`, { auth: true });
  const best = new Map();
  for (const bid of history.bids ?? []) {
    const cents = centsOf(bid, "amount");
    if (!best.has(bid.item_id) || best.get(bid.item_id) < cents) best.set(bid.item_id, cents);
  }
  const ids = [...best.keys()].slice(0, ITEM_LOOKUPS);
  const items = await Promise.all(ids.map((id) => api(`/api/v1/items/${encodeURIComponent(id)}`).catch(() => null)));
  return items.filter(Boolean).map((item) => ({ item, myCents: best.get(item.id) }));
}

function standing({ item }, me) {
  if (item.status === "cancelled") return "cancelled";
  if (item.winner_id === me.id) return "won";
  if (item.status === "closed") return "lost";
  return item.highest_bidder_id === me.id ? "leading" : "outbid";
}

function itemRow(item, label, myCents) {
  const ms = new Date(item.end_time).getTime() - Date.now();
  return h("li", { class: "card", dataset: { itemId: item.id, standing: label } },
    h("article", {},
      h("h2", {}, h("a", { href: `#/items/${encodeURIComponent(item.id)}` }, item.name)),
      h("p", { class: "facts" },
        h("span", { class: "tag" }, label), " · ",
        `now ${formatMoney(centsOf(item, "current_bid"))}`,
        myCents !== null ? ` · your highest ${formatMoney(myCents)}` : "",
        " · ", ms > 0 && item.status === "active" ? `${formatRemaining(ms)} left` : `ended ${formatTime(item.end_time)}`)));
}

async function notifications() {
  const page = await api("/api/v1/me/notifications?limit=50", { auth: true });
  const list = page.notifications ?? [];
  await namesOf(list.map((n) => n.item_id));
  const markAll = h("button", { type: "button" }, "Mark all as read");
  markAll.addEventListener("click", async () => {
    await api("/api/v1/me/notifications/read", { method: "POST", json: { all: true }, auth: true });
    refreshUnread();
    for (const li of document.querySelectorAll("#notifications li")) li.dataset.read = "true";
  });
  return [
    markAll,
    list.length
      ? h("ol", { id: "notifications", class: "history" }, list.map((n) =>
        h("li", { dataset: { read: String(n.read) } },
          h("a", { href: `#/items/${encodeURIComponent(n.item_id)}` }, describe(n, itemNames.get(n.item_id) ?? n.item_id)),
          h("time", { datetime: n.created_at }, formatTime(n.created_at)))))
      : h("p", {}, "No notifications."),
  ];
}

/** Looks up the names of the items not yet known; an item that cannot be read keeps its id. */
async function namesOf(ids) {
  const unknown = [...new Set(ids)].filter((id) => !itemNames.has(id)).slice(0, ITEM_LOOKUPS);
  await Promise.all(unknown.map((id) => api(`/api/v1/items/${encodeURIComponent(id)}`).then(
    (item) => itemNames.set(id, item.name),
    () => {},
  )));
}

function describe(n, name) {
  const d = n.data ?? {};
  switch (n.type) {
    case "outbid": return `Outbid on ${name}: now ${formatMoney(centsOf(d, "current_bid"))}`;
    case "won": return `You won ${name} for ${formatMoney(centsOf(d, "final_price"))}`;
    case "lost": return `${name} ended without you winning`;
    case "ending_soon": return `${name} ends soon`;
    default: return `${n.type} on ${name}`;
  }
}
