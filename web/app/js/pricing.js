// What the next bid must be, as the gateway will decide it: its own figure when it sent one
// (`next_minimum_bid`, or today's `minimum_bid`), else the starting price before the first
// bid, else the current bid plus the increment in force (a tiered table's row for the current
// price, or the flat `min_increment`).

import { centsOf } from "./money.js";

export function nextMinimumCents(item) {
  const stated = centsOf(item, "next_minimum_bid") ?? centsOf(item, "minimum_bid");
  if (stated !== null) return stated;
  if (!item.bid_count) return centsOf(item, "starting_price");
  const current = centsOf(item, "current_bid") ?? 0;
  return current + incrementAt(item, current);
}

/** The increment in force at `priceCents`. */
export function incrementAt(item, priceCents) {
  const rows = Array.isArray(item.increments) ? item.increments : [];
  let increment = null;
  for (const row of rows) {
    const from = centsOf(row, "from");
    if (from !== null && from <= priceCents) increment = centsOf(row, "increment");
  }
  return increment ?? centsOf(item, "min_increment") ?? 100;
}

/** Buy it now's price while it is still offered (active, no bid yet); else null. */
export function buyNowCents(item) {
  if (item.status !== "active" || item.bid_count > 0) return null;
  return centsOf(item, "buy_now_price");
}
