// A seller creates an auction: name, description, starting price, increment, reserve, buy it
// now, start (schedule) and end, anti-sniping. Amounts go to the API as number literals built
// from the typed digits; times are typed in the viewer's zone and sent as UTC.

import { api, describeError } from "../api.js";
import { field, h, messageArea, replace, setMessage } from "../dom.js";
import { centsToDecimal, currencyCode, parseCents } from "../money.js";
import { currentUser } from "../session.js";
import { localInputToIso, toLocalInput } from "../time.js";

export function sellView(main) {
  if (!currentUser()) {
    location.hash = "#/login?next=%23%2Fsell";
    return null;
  }
  const c = currencyCode();
  const input = (id, attrs = {}) => h("input", { id, name: id, autocomplete: "off", ...attrs });
  const name = input("name", { required: true, maxlength: 200 });
  const description = h("textarea", { id: "description", name: "description", rows: 4, maxlength: 5000 });
  const starting = input("starting_price", { inputmode: "decimal", required: true });
  const increment = input("min_increment", { inputmode: "decimal", placeholder: "1.00" });
  const reserve = input("reserve_price", { inputmode: "decimal" });
  const buyNow = input("buy_now_price", { inputmode: "decimal" });
  const start = input("start_time", { type: "datetime-local" });
  const end = input("end_time", { type: "datetime-local", required: true, value: toLocalInput(new Date(Date.now() + 3 * 86400_000)) });
  const window_ = input("extension_window_secs", { type: "number", min: 0, max: 86400, value: 60 });
  const extension = input("extension_secs", { type: "number", min: 0, max: 86400, value: 60 });
  const message = messageArea("sell-message");
  const submit = h("button", { type: "submit" }, "Create auction");
  const form = h("form", { class: "sell", "aria-labelledby": "sell-title" },
    field("Title", name),
    field("Description", description),
    h("fieldset", {}, h("legend", {}, `Prices (${c})`),
      field("Starting price", starting),
      field("Minimum increment", increment, "Optional: without one the default increments apply."),
      field("Reserve price", reserve, "Optional and secret: the item sells only at or above it."),
      field("Buy it now price", buyNow, "Optional: anyone may buy at this price until the first bid.")),
    h("fieldset", {}, h("legend", {}, "Schedule (your time zone)"),
      field("Starts", start, "Optional: empty starts now."),
      field("Ends", end)),
    h("fieldset", {}, h("legend", {}, "Anti-sniping"),
      field("Extend when a bid comes this many seconds before the end", window_),
      field("Extend by (seconds)", extension)),
    submit, message);
  replace(main, h("h1", { id: "sell-title" }, "Sell an item"), form);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const money = {};
    for (const [key, control, required] of [["starting_price", starting, true], ["min_increment", increment], ["reserve_price", reserve], ["buy_now_price", buyNow]]) {
      const text = control.value.trim();
      if (!text && !required) continue;
      const cents = parseCents(text);
      if (cents === null) {
        control.focus();
        return setMessage(message, `${control.labels[0].textContent}: enter an amount such as 12.50.`, "error");
      }
      money[key] = centsToDecimal(cents);
    }
    const endIso = localInputToIso(end.value);
    if (!endIso) return setMessage(message, "Choose when the auction ends.", "error");
    const fields = [
      `"name":${JSON.stringify(name.value.trim())}`,
      `"description":${JSON.stringify(description.value)}`,
      ...Object.entries(money).map(([k, v]) => `"${k}":${v}`),
      `"end_time":${JSON.stringify(endIso)}`,
    ];
    const startIso = localInputToIso(start.value);
    if (startIso) fields.push(`"start_time":${JSON.stringify(startIso)}`);
    const w = Number.parseInt(window_.value, 10);
    const x = Number.parseInt(extension.value, 10);
    if (w > 0) fields.push(`"extension_window_secs":${w}`, `"extension_secs":${x > 0 ? x : w}`);
    submit.disabled = true;
    setMessage(message, "Creating…");
    try {
      const item = await api("/api/v1/items", { method: "POST", body: `{${fields.join(",")}}`, auth: true });
      location.hash = `#/items/${encodeURIComponent(item.id)}`;
    } catch (error) {
      const unsupported = error.status === 400 && /buy_now_price/.test(error.message);
      setMessage(message, unsupported ? "This server does not offer buy it now yet: leave that price empty." : describeError(error), "error");
    } finally {
      submit.disabled = false;
    }
  });
  name.focus();
  return null;
}
