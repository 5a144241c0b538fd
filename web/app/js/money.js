// Money in the app is integer cents, as in the API. Amounts typed by a person are parsed from
// their digits and sent as JSON number literals built from those digits, never through a
// floating-point number, so 0.1 + 0.2 never costs anyone a cent.

let currency = "USD";

/** The currency every amount is shown in (from /app/config.json). */
export function setCurrency(code) {
  currency = code;
}

export function currencyCode() {
  return currency;
}

/** "12", "12.5", "1,234.50" → cents; null for anything else (negative, 3 decimals, letters). */
export function parseCents(text) {
  const cleaned = String(text ?? "").trim().replace(/[,\s]/g, "");
  const match = /^(\d{1,13})(?:\.(\d{1,2}))?$/.exec(cleaned);
  if (!match) return null;
  const whole = BigInt(match[1]);
  const fraction = BigInt((match[2] ?? "").padEnd(2, "0"));
  const cents = whole * 100n + fraction;
  if (cents <= 0n || cents > 100000000000000n) return null;
  return Number(cents);
}

/** Cents → "12.50", the decimal text the API takes. */
export function centsToDecimal(cents) {
  const value = BigInt(cents);
  const whole = value / 100n;
  const fraction = (value % 100n).toString().padStart(2, "0");
  return `${whole}.${fraction}`;
}

/** Cents → "$12.50" in the viewer's locale and the configured currency. */
export function formatMoney(cents) {
  if (cents === null || cents === undefined || Number.isNaN(cents)) return "—";
  return new Intl.NumberFormat(undefined, {
    style: "currency",
    currency,
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  }).format(centsToDecimal(cents));
}

/**
 * The cents of an amount in an API answer: the exact `<name>_cents` integer when present,
 * else the decimal `<name>` (at most 2 fraction digits by the API's rule), else null.
 */
export function centsOf(object, name) {
  if (!object) return null;
  const exact = object[`${name}_cents`];
  if (Number.isInteger(exact)) return exact;
  const decimal = object[name];
  if (typeof decimal === "number") return Math.round(decimal * 100);
  return null;
}
