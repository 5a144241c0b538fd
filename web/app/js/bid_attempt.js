// One bid attempt = one Idempotency-Key. A retry of the same attempt (after a 429, a 503, a
// lost answer) sends the same key, so the gateway answers the first outcome again instead of
// placing a second bid; changing the amount or the maximum makes a new attempt.

import { api } from "./api.js";
import { centsToDecimal } from "./money.js";

export class BidAttempt {
  constructor(itemId, amountCents, maxCents) {
    this.itemId = itemId;
    this.amountCents = amountCents;
    this.maxCents = maxCents;
    this.key = crypto.randomUUID();
  }

  /** True when `amount`/`max` are this attempt's, so a resubmit is a retry of it. */
  same(amountCents, maxCents) {
    return this.amountCents === amountCents && this.maxCents === maxCents;
  }

  /** Sends it; resolves to the gateway's answer or throws an ApiError. */
  send() {
    // The body is built from the amounts' digits, never from a float.
    const parts = [`"amount":${centsToDecimal(this.amountCents)}`];
    if (this.maxCents !== null) parts.push(`"max_amount":${centsToDecimal(this.maxCents)}`);
    return api(`/api/v1/items/${encodeURIComponent(this.itemId)}/bid`, {
      method: "POST",
      body: `{${parts.join(",")}}`,
      auth: true,
      idempotencyKey: this.key,
    });
  }
}

/** Buy it now, also one key per attempt. */
export class BuyAttempt {
  constructor(itemId) {
    this.itemId = itemId;
    this.key = crypto.randomUUID();
  }

  send() {
    return api(`/api/v1/items/${encodeURIComponent(this.itemId)}/buy`, {
      method: "POST",
      auth: true,
      idempotencyKey: this.key,
    });
  }
}
