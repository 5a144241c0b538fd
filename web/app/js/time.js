// Times from the API are RFC 3339 UTC; people see them in their own zone, with the zone named.

const dateTime = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "short",
});
const zoneName = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" });

/** "1 Dec 2026, 16:05 GMT+1". */
export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "—";
  const zone = zoneName.formatToParts(date).find((p) => p.type === "timeZoneName")?.value;
  return zone ? `${dateTime.format(date)} ${zone}` : dateTime.format(date);
}

/** Time left as a person reads it: "2d 4h", "1h 05m", "4m 09s", "12s". */
export function formatRemaining(ms) {
  if (ms <= 0) return "ended";
  const seconds = Math.floor(ms / 1000);
  const d = Math.floor(seconds / 86400);
  const hr = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const two = (n) => String(n).padStart(2, "0");
  if (d > 0) return `${d}d ${hr}h`;
  if (hr > 0) return `${hr}h ${two(m)}m`;
  if (m > 0) return `${m}m ${two(s)}s`;
  return `${s}s`;
}

/** An `<input type="datetime-local">` value (the viewer's zone) → RFC 3339 UTC, or null. */
export function localInputToIso(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** A Date → the `datetime-local` value of it in the viewer's zone. */
export function toLocalInput(date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}
