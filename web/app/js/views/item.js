// One auction: its live price and next minimum bid, a countdown that follows anti-sniping
// extensions, the bid form (with an optional maximum for automatic bidding), buy it now where
// offered, the live bid history with bidders masked, the viewer count and the result; the
// seller's cancel and an admin's close, cancel, extend and relist.

import { api, describeError } from "../api.js";
import { BidAttempt, BuyAttempt } from "../bid_attempt.js";
import { field, h, messageArea, replace, setMessage } from "../dom.js";
import { live } from "../live.js";
import { centsOf, centsToDecimal, currencyCode, formatMoney, parseCents } from "../money.js";
import { follow } from "../notifications.js";
import { buyNowCents, nextMinimumCents } from "../pricing.js";
import { currentUser, isAdmin, onSessionChange } from "../session.js";
import { formatRemaining, formatTime, localInputToIso, toLocalInput } from "../time.js";
import { toast } from "../toasts.js";

const HISTORY_LIMIT = 20;
/** How long after a live bid the archived history (with pseudonyms) is read again. */
const HISTORY_REFRESH_MS = 1200;

export function itemView(main, { args }) {
  const itemId = args[0];
  let state = null;
  let gone = false;
  let attempt = null;
  let historyTimer = null;
  let archived = [];
  let liveRows = [];
  /** Whether the gateway has the watchlist (null until known), and whether this item is on it. */
  let watchlist = null;
  let watching = false;

  const title = h("h1", { id: "item-name" }, "Loading…");
  const description = h("p", { class: "description" });
  const seller = h("p", { class: "seller" });
  const price = h("strong", { id: "current-price", class: "big" });
  const priceLabel = h("span", { id: "price-label" }, "Current bid");
  const nextMin = h("span", { id: "next-minimum" });
  const bidCount = h("span", { id: "bid-count" });
  const reserve = h("span", { id: "reserve" });
  const timeLeft = h("span", { id: "time-left", role: "timer", "aria-live": "off" });
  const endsAt = h("span", { id: "ends-at" });
  const extended = h("span", { id: "extended", class: "flash", role: "status" });
  const viewers = h("span", { id: "viewers" });
  const result = h("p", { id: "result", class: "result", role: "status", "aria-live": "polite" });
  const panel = h("section", { class: "panel", "aria-labelledby": "price-label" },
    h("p", {}, priceLabel, h("br"), price),
    h("dl", { class: "facts" },
      h("dt", {}, "Next minimum bid"), h("dd", {}, nextMin),
      h("dt", {}, "Bids"), h("dd", {}, bidCount),
      h("dt", {}, "Time left"), h("dd", {}, timeLeft, " ", extended),
      h("dt", {}, "Ends"), h("dd", {}, endsAt),
      h("dt", {}, "Watching now"), h("dd", {}, viewers),
      h("dt", {}, "Reserve"), h("dd", {}, reserve)),
    result);

  // The bid form.
  const amount = h("input", { id: "bid-amount", name: "amount", inputmode: "decimal", autocomplete: "off", required: true });
  const maximum = h("input", { id: "bid-max", name: "max_amount", inputmode: "decimal", autocomplete: "off" });
  const submit = h("button", { type: "submit", id: "place-bid" }, "Place bid");
  const retry = h("button", { type: "button", id: "retry-bid", hidden: true }, "Retry the same bid");
  const bidMessage = messageArea("bid-message");
  const bidForm = h("form", { class: "bid", "aria-label": "Place a bid", novalidate: true },
    field(`Your bid (${currencyCode()})`, amount),
    field(`Maximum, optional (${currencyCode()})`, maximum, "We bid for you only as much as needed to lead, up to this amount. Nobody else sees it."),
    h("div", { class: "actions" }, submit, retry), bidMessage);
  const buyNow = h("button", { type: "button", id: "buy-now", class: "secondary", hidden: true });
  const buyMessage = messageArea("buy-message");
  const back = `?next=${encodeURIComponent(`#/items/${encodeURIComponent(itemId)}`)}`;
  const signInHint = h("p", { class: "hint", id: "sign-in-hint" }, h("a", { href: `#/login${back}` }, "Log in"), " or ", h("a", { href: `#/signup${back}` }, "sign up"), " to bid.");
  const watchButton = h("button", { type: "button", id: "watch", class: "secondary", hidden: true }, "Watch");
  const bidSection = h("section", { class: "bidding", "aria-label": "Bidding" }, bidForm, buyNow, buyMessage, signInHint, watchButton);

  const history = h("ol", { id: "history", class: "history", "aria-live": "polite" });
  const historySection = h("section", { "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, "Bid history"), history);
  const manage = h("section", { id: "manage", class: "manage", "aria-labelledby": "manage-title", hidden: true });

  replace(main,
    h("p", {}, h("a", { href: "#/" }, "← All auctions")),
    title, seller, description,
    h("div", { class: "item-grid" }, h("div", {}, panel, bidSection), historySection),
    manage);

  // --- painting -------------------------------------------------------------------------

  function paint() {
    if (!state) return;
    const me = currentUser();
    title.textContent = state.name;
    document.title = `${state.name} · Live auctions`;
    description.textContent = state.description || "";
    // Sellers have no public name yet (the view carries an id only): say so only to the seller.
    seller.textContent = state.seller_id && state.seller_id === me?.id ? "You are selling this item." : "";
    const current = centsOf(state, "current_bid");
    priceLabel.textContent = state.bid_count ? "Current bid" : "Starting price";
    price.textContent = state.bid_count ? formatMoney(current) : formatMoney(centsOf(state, "starting_price"));
    const leading = me && state.bid_count && state.highest_bidder_id === me.id;
    price.dataset.leading = leading ? "you" : "";
    const minimum = nextMinimumCents(state);
    nextMin.textContent = formatMoney(minimum);
    bidCount.textContent = String(state.bid_count ?? 0);
    reserve.textContent = state.has_reserve === false || state.reserve_met === null || state.reserve_met === undefined
      ? "none" : state.reserve_met ? "met" : "not met yet";
    endsAt.textContent = formatTime(state.end_time);
    const count = live.viewersOf(itemId);
    viewers.textContent = count === null ? "—" : String(count);
    paintClock();
    paintResult(me);
    paintBidding(me, minimum);
    paintManage(me);
  }

  function paintClock() {
    if (!state) return;
    if (state.status === "scheduled") {
      timeLeft.textContent = `starts ${formatTime(state.start_time)}`;
      return;
    }
    const ms = new Date(state.end_time).getTime() - Date.now();
    timeLeft.textContent = ["closed", "cancelled"].includes(state.status) || ms <= 0 ? "ended" : formatRemaining(ms);
    timeLeft.dataset.urgent = ms > 0 && ms < 60_000 ? "yes" : "";
  }

  function ended() {
    return ["closed", "cancelled"].includes(state.status) || new Date(state.end_time).getTime() <= Date.now();
  }

  function paintResult(me) {
    const finalCents = centsOf(state, "final_price") ?? (state.winner_id ? centsOf(state, "current_bid") : null);
    let text = "";
    if (state.status === "cancelled") text = `Cancelled${state.cancel_reason ? `: ${state.cancel_reason}` : "."}`;
    else if (state.status === "closed" || ended()) {
      if (state.winner_id && me && state.winner_id === me.id) text = `You won this auction for ${formatMoney(finalCents)}.`;
      else if (state.winner_id) text = `Sold for ${formatMoney(finalCents)}${state.buy_now ? " (bought now)" : ""}.`;
      else if (state.closed_at && state.reserve_met === false) text = "Ended: the reserve was not met.";
      else if (state.closed_at) text = state.bid_count ? "Ended without a winner." : "Ended with no bids.";
      else text = "Ended: the result follows in a moment.";
    }
    result.textContent = text;
    result.dataset.outcome = text ? (state.winner_id && me && state.winner_id === me.id ? "won" : "ended") : "";
  }

  function paintBidding(me, minimum) {
    const open = state.status === "active" && !ended();
    const isSeller = me && state.seller_id === me.id;
    bidForm.hidden = !me || !open || isSeller;
    signInHint.hidden = Boolean(me) || !open;
    amount.placeholder = `${centsToDecimal(minimum)} or more`;
    const buy = open && me && !isSeller ? buyNowCents(state) : null;
    buyNow.hidden = buy === null;
    if (buy !== null) buyNow.textContent = `Buy it now for ${formatMoney(buy)}`;
    watchButton.hidden = !me || watchlist === false;
  }

  function paintManage(me) {
    const admin = isAdmin();
    const sellerMayCancel = me && state.seller_id === me.id && !state.bid_count && state.status === "active";
    manage.hidden = !(admin || sellerMayCancel);
    if (manage.hidden || manage.dataset.built === `${admin}:${state.status}:${Boolean(sellerMayCancel)}`) return;
    manage.dataset.built = `${admin}:${state.status}:${Boolean(sellerMayCancel)}`;
    replace(manage, h("h2", { id: "manage-title" }, admin ? "Manage (admin)" : "Manage your auction"), manageForms(admin));
  }

  // --- the bid ---------------------------------------------------------------------------

  bidForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const amountCents = parseCents(amount.value);
    const maxText = maximum.value.trim();
    const maxCents = maxText ? parseCents(maxText) : null;
    if (amountCents === null) return setMessage(bidMessage, "Enter an amount such as 12.50 (at most 2 decimals).", "error");
    if (maxText && maxCents === null) return setMessage(bidMessage, "Enter the maximum as an amount such as 40.00, or leave it empty.", "error");
    if (maxCents !== null && maxCents < amountCents) return setMessage(bidMessage, "The maximum must be at least your bid.", "error");
    // The same amounts after a failure are a retry of the same attempt, so the same key.
    if (!attempt || !attempt.same(amountCents, maxCents)) attempt = new BidAttempt(itemId, amountCents, maxCents);
    send();
  });
  retry.addEventListener("click", () => attempt && send());

  async function send() {
    const current = attempt;
    submit.disabled = true;
    retry.hidden = true;
    setMessage(bidMessage, "Placing your bid…");
    try {
      const reply = await current.send();
      attempt = null;
      answered(reply);
    } catch (error) {
      setMessage(bidMessage, describeError(error), "error");
      if (error.retryable) {
        retry.hidden = false;
        if (error.retryAfterSecs) {
          retry.disabled = true;
          setTimeout(() => { retry.disabled = false; }, error.retryAfterSecs * 1000);
        }
      } else {
        attempt = null;
      }
    } finally {
      submit.disabled = false;
    }
  }

  function answered(reply) {
    const current = formatMoney(centsOf(reply, "current_bid"));
    if (reply.success) {
      follow(itemId);
      const max = centsOf(reply, "max_amount");
      const maxNote = max !== null ? ` Your maximum: ${formatMoney(max)}.` : "";
      if (reply.is_highest) setMessage(bidMessage, `Bid placed: you lead at ${current}.${maxNote}`, "success");
      else setMessage(bidMessage, `Bid placed, but another bidder's maximum is higher: now ${current}.${maxNote}`, "warning");
      amount.value = "";
      maximum.value = "";
    } else {
      const minimum = centsOf(reply, "minimum_bid");
      setMessage(bidMessage, `Someone else bid ${current} first.${minimum !== null ? ` Bid at least ${formatMoney(minimum)}.` : ""}`, "warning");
    }
  }

  let buyAttempt = null;
  buyNow.addEventListener("click", async () => {
    if (!window.confirm(`${buyNow.textContent}?`)) return;
    buyAttempt ??= new BuyAttempt(itemId);
    buyNow.disabled = true;
    try {
      const reply = await buyAttempt.send();
      buyAttempt = null;
      follow(itemId);
      setMessage(buyMessage, `Bought for ${formatMoney(centsOf(reply, "final_price"))}.`, "success");
    } catch (error) {
      setMessage(buyMessage, error.code === "buy_now_unavailable" ? "Buy it now is no longer available." : describeError(error), "error");
      if (!error.retryable) buyAttempt = null;
    } finally {
      buyNow.disabled = false;
    }
  });

  // --- watchlist -------------------------------------------------------------------------

  async function loadWatchlist() {
    if (!currentUser()) return;
    try {
      const body = await api("/api/v1/me/watchlist", { auth: true });
      watchlist = true;
      watching = (body.items ?? []).some((i) => i.id === itemId);
    } catch (error) {
      if (error.routeMissing) watchlist = false;
    }
    watchButton.textContent = watching ? "Stop watching" : "Watch";
    watchButton.setAttribute("aria-pressed", String(watching));
    if (state) paint();
  }
  watchButton.addEventListener("click", async () => {
    try {
      await api(`/api/v1/me/watchlist/${encodeURIComponent(itemId)}`, { method: watching ? "DELETE" : "PUT", auth: true });
      watching = !watching;
      watchButton.textContent = watching ? "Stop watching" : "Watch";
      watchButton.setAttribute("aria-pressed", String(watching));
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    }
  });

  // --- history ---------------------------------------------------------------------------

  async function loadHistory() {
    try {
      const body = await api(`/api/v1/items/${encodeURIComponent(itemId)}/bids?limit=${HISTORY_LIMIT}`, { auth: Boolean(currentUser()) });
      archived = body.bids ?? [];
      const known = new Set(archived.map((b) => b.seq));
      liveRows = liveRows.filter((r) => !known.has(r.seq));
    } catch {
      // The archive may be down or behind; the live rows stay.
    }
    if (!gone) paintHistory();
  }

  function paintHistory() {
    const me = currentUser()?.id;
    const rows = [...liveRows, ...archived]
      .filter((row) => !state || (row.round ?? state.round) === state.round)
      .sort((a, b) => b.seq - a.seq)
      .slice(0, HISTORY_LIMIT);
    if (!rows.length) {
      replace(history, h("li", { class: "empty" }, "No bids yet."));
      return;
    }
    replace(history, rows.map((row) => {
      const who = row.user_id && row.user_id === me ? "You" : row.bidder ?? "A bidder";
      return h("li", { dataset: { seq: row.seq } },
        h("span", { class: "who" }, who),
        h("span", { class: "amount" }, formatMoney(centsOf(row, "amount"))),
        h("time", { datetime: row.placed_at ?? row.timestamp }, formatTime(row.placed_at ?? row.timestamp)),
        row.automatic ? h("span", { class: "tag" }, "automatic") : null);
    }));
  }

  // --- live ------------------------------------------------------------------------------

  /** Shows `text` beside the time left for five seconds. */
  function flashExtended(text) {
    extended.textContent = text;
    setTimeout(() => { extended.textContent = ""; }, 5000);
  }

  function onLive(next, change) {
    if (gone || !next) return;
    const previous = state;
    state = next;
    if (change.type === "bid_placed") {
      const e = change.event;
      liveRows.push({ seq: e.seq, round: e.round, user_id: e.user_id, amount_cents: e.amount_cents, timestamp: e.timestamp, automatic: e.automatic });
      if (e.extended) flashExtended("Extended by a late bid!");
      paintHistory();
      clearTimeout(historyTimer);
      historyTimer = setTimeout(loadHistory, HISTORY_REFRESH_MS);
    } else if (change.type === "auction_extended") {
      flashExtended("End time extended.");
    } else if (change.type === "auction_relisted") {
      liveRows = [];
      loadHistory();
    } else if (change.type === "snapshot") {
      // A bid placed before the socket's first snapshot (the page painted from the API) or
      // during a resync reaches this page inside the snapshot, not as an event: a later end
      // with more bids in the same round is still a late bid's extension.
      if (previous && previous.round === next.round && (next.bid_count ?? 0) > (previous.bid_count ?? 0)
        && new Date(next.end_time) > new Date(previous.end_time)) {
        flashExtended("Extended by a late bid!");
      }
      loadHistory();
    } else if (change.type === "error" && change.error.code === "item_not_found") {
      replace(main, h("h1", {}, "No such auction"), h("p", {}, h("a", { href: "#/" }, "Browse the auctions")));
      return;
    }
    paint();
  }

  // The first paint; the socket's snapshot may come first. A busy or unreachable gateway is
  // asked again (the snapshot usually fills in meanwhile).
  (async function first() {
    try {
      const item = await api(`/api/v1/items/${encodeURIComponent(itemId)}`);
      if (!gone && !state) { state = item; paint(); }
    } catch (error) {
      if (gone || state) return;
      if (error.status === 404) replace(main, h("h1", {}, "No such auction"), h("p", {}, h("a", { href: "#/" }, "Browse the auctions")));
      else if (error.retryable) { title.textContent = describeError(error); setTimeout(first, 1000); }
      else title.textContent = describeError(error);
    }
  })();
  const stopWatching = live.watch(itemId, onLive);
  const ticker = setInterval(() => { if (state) { paintClock(); if (ended()) paint(); } }, 1000);
  const stopSession = onSessionChange(() => { paint(); loadWatchlist(); });
  loadHistory();
  loadWatchlist();

  // --- seller and admin actions ------------------------------------------------------------

  function manageForms(admin) {
    const message = messageArea("manage-message");
    const act = async (label, path, json, body) => {
      setMessage(message, `${label}…`);
      try {
        await api(`/api/v1/items/${encodeURIComponent(itemId)}/${path}`, { method: "POST", json, body, auth: true });
        setMessage(message, `${label}: done.`, "success");
      } catch (error) {
        setMessage(message, describeError(error), "error");
      }
    };
    const forms = [];
    const running = state.status === "active" || state.status === "scheduled";
    if (admin && running) {
      forms.push(h("form", { "aria-label": "Close now", onsubmit: (e) => { e.preventDefault(); act("Closing", "close"); } },
        h("button", { type: "submit", id: "close-now" }, "Close now")));
      const end = h("input", { type: "datetime-local", id: "extend-end", required: true, value: toLocalInput(new Date(new Date(state.end_time).getTime() + 3600_000)) });
      forms.push(h("form", { "aria-label": "Extend", onsubmit: (e) => { e.preventDefault(); act("Extending", "extend", { end_time: localInputToIso(end.value) }); } },
        field("New end time (your time zone)", end), h("button", { type: "submit" }, "Extend")));
    }
    if (running) {
      const reason = h("input", { id: "cancel-reason", required: true, maxlength: 500 });
      forms.push(h("form", { "aria-label": "Cancel the auction", onsubmit: (e) => { e.preventDefault(); act("Cancelling", "cancel", { reason: reason.value.trim() }); } },
        field("Reason for cancelling", reason), h("button", { type: "submit", class: "danger" }, "Cancel auction")));
    }
    if (admin && !running) {
      const start = h("input", { id: "relist-price", inputmode: "decimal", required: true });
      const end = h("input", { type: "datetime-local", id: "relist-end", required: true, value: toLocalInput(new Date(Date.now() + 86400_000)) });
      forms.push(h("form", { "aria-label": "Relist", onsubmit: (e) => {
        e.preventDefault();
        const cents = parseCents(start.value);
        if (cents === null) return setMessage(message, "Enter a starting price such as 10.00.", "error");
        // Built from the digits, never through a float.
        act("Relisting", "relist", undefined, `{"starting_price":${centsToDecimal(cents)},"end_time":${JSON.stringify(localInputToIso(end.value))}}`);
      } }, field(`Starting price (${currencyCode()})`, start), field("End time (your time zone)", end), h("button", { type: "submit" }, "Relist")));
    }
    return [h("div", { class: "manage-forms" }, forms), message];
  }

  return () => {
    gone = true;
    stopWatching();
    stopSession();
    clearInterval(ticker);
    clearTimeout(historyTimer);
  };
}
