// Browse: auctions with live prices, bid counts and time left; search by name, ending soon or
// newly listed, status, and paging. The gateway's paged listing (`q`, `sort`, `cursor`,
// `next_cursor`) is used when it answers with `next_cursor`; an older gateway that ignores
// those is paged, searched and sorted here from its one listing.

import { api, describeError } from "../api.js";
import { h, replace } from "../dom.js";
import { live } from "../live.js";
import { centsOf, formatMoney } from "../money.js";
import { formatRemaining, formatTime } from "../time.js";

const PAGE_SIZE = 20;
/** What an unpaged listing is asked for (its maximum), to page it here. */
const UNPAGED_LIMIT = 1000;
/** Whether this gateway pages the listing (`next_cursor`); null until its first answer. */
let pagedListing = null;
const SORTS = { ending_soon: "Ending soon", newest: "Newly listed" };
const STATUSES = { active: "Active", scheduled: "Starting later", closed: "Ended" };

export function listView(main, { params }) {
  const query = {
    q: params.get("q") ?? "",
    sort: SORTS[params.get("sort")] ? params.get("sort") : "ending_soon",
    status: STATUSES[params.get("status")] ? params.get("status") : "active",
  };
  const stops = [];
  const cursors = [null];
  let page = 0;
  let ticker = null;
  let gone = false;

  const search = h("input", { type: "search", id: "search", name: "q", value: query.q, autocomplete: "off", placeholder: "e.g. camera" });
  const sort = h("select", { id: "sort", name: "sort" }, Object.entries(SORTS).map(([v, t]) => h("option", { value: v, selected: v === query.sort }, t)));
  const status = h("select", { id: "status", name: "status" }, Object.entries(STATUSES).map(([v, t]) => h("option", { value: v, selected: v === query.status }, t)));
  const form = h("form", { class: "filters", role: "search" },
    h("div", { class: "field" }, h("label", { for: "search" }, "Search by name"), search),
    h("div", { class: "field" }, h("label", { for: "sort" }, "Order"), sort),
    h("div", { class: "field" }, h("label", { for: "status" }, "Status"), status),
    h("button", { type: "submit" }, "Search"));
  const results = h("ul", { class: "cards", id: "results", "aria-live": "polite" });
  const summary = h("p", { class: "summary", role: "status" });
  const previous = h("button", { type: "button", disabled: true }, "Previous page");
  const next = h("button", { type: "button", disabled: true }, "Next page");
  const pager = h("nav", { class: "pager", "aria-label": "Pages" }, previous, next);
  replace(main, h("h1", {}, "Auctions"), form, summary, results, pager);

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = new URLSearchParams({ q: search.value.trim(), sort: sort.value, status: status.value });
    location.hash = `#/?${p}`;
  });
  sort.addEventListener("change", () => form.requestSubmit());
  status.addEventListener("change", () => form.requestSubmit());
  previous.addEventListener("click", () => load(page - 1));
  next.addEventListener("click", () => load(page + 1));

  async function load(target) {
    const limit = pagedListing === false ? UNPAGED_LIMIT : PAGE_SIZE;
    const p = new URLSearchParams({ status: query.status, sort: query.sort, limit: String(limit) });
    if (query.q) p.set("q", query.q);
    if (cursors[target]) p.set("cursor", cursors[target]);
    summary.textContent = "Loading…";
    let body;
    try {
      body = await api(`/api/v1/items?${p}`);
    } catch (error) {
      if (gone) return;
      summary.textContent = describeError(error);
      // Busy or unreachable: ask again shortly, so the page recovers by itself.
      if (error.retryable) setTimeout(() => !gone && load(target), (error.retryAfterSecs ?? 2) * 1000);
      return;
    }
    if (gone) return;
    if (pagedListing === null && !("next_cursor" in body)) {
      pagedListing = false;
      load(target);
      return;
    }
    pagedListing = "next_cursor" in body;
    let items = body.items ?? [];
    let hasNext;
    if ("next_cursor" in body) {
      cursors[target + 1] = body.next_cursor;
      hasNext = Boolean(body.next_cursor);
    } else {
      // A gateway without the paged listing: search, order and page here.
      items = localPage(items, query, target);
      hasNext = items.hasNext;
    }
    page = target;
    show(items);
    previous.disabled = page === 0;
    next.disabled = !hasNext;
    pager.hidden = page === 0 && !hasNext;
    summary.textContent = items.length
      ? `Page ${page + 1}: ${items.length} auction${items.length === 1 ? "" : "s"}${query.q ? ` matching “${query.q}”` : ""}.`
      : query.q ? `No auctions match “${query.q}”.` : "No auctions here yet.";
  }

  function show(items) {
    while (stops.length) stops.pop()();
    replace(results, items.map((item) => card(item)));
  }

  function card(item) {
    const price = h("span", { class: "price" });
    const bids = h("span", { class: "bids" });
    const left = h("span", { class: "left" });
    const node = h("li", { class: "card", dataset: { itemId: item.id } },
      h("article", {},
        h("h2", {}, h("a", { href: `#/items/${encodeURIComponent(item.id)}` }, item.name)),
        h("p", { class: "facts" }, price, " · ", bids, " · ", left)));
    let state = item;
    const paint = () => {
      const cents = centsOf(state, "current_bid");
      price.textContent = state.bid_count ? formatMoney(cents) : `Starts at ${formatMoney(centsOf(state, "starting_price"))}`;
      bids.textContent = `${state.bid_count} bid${state.bid_count === 1 ? "" : "s"}`;
      left.textContent = timeLeft(state);
    };
    node.paint = paint;
    paint();
    stops.push(live.watch(item.id, (s) => { if (s) { state = s; paint(); } }));
    return node;
  }

  ticker = setInterval(() => { for (const node of results.children) node.paint?.(); }, 1000);
  load(0);
  return () => {
    gone = true;
    clearInterval(ticker);
    while (stops.length) stops.pop()();
  };
}

function timeLeft(item) {
  if (item.status === "cancelled") return "cancelled";
  if (item.status === "scheduled") return `starts ${formatTime(item.start_time)}`;
  const ms = new Date(item.end_time).getTime() - Date.now();
  if (item.status === "closed" || ms <= 0) return "ended";
  return `${formatRemaining(ms)} left`;
}

/** Search, order and one page of an unpaged listing. */
function localPage(all, query, page) {
  const needle = query.q.toLowerCase();
  const matching = all.filter((item) => !needle || item.name.toLowerCase().includes(needle));
  if (query.sort === "newest") {
    matching.sort((a, b) => (b.created_at ?? b.start_time).localeCompare(a.created_at ?? a.start_time));
  }
  const items = matching.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
  items.hasNext = matching.length > (page + 1) * PAGE_SIZE;
  return items;
}
