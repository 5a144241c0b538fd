// Short messages over any page (outbid, won, errors), read out by screen readers through the
// region's aria-live. Each can be dismissed by keyboard; a key suppresses repeats of the same
// news (the same outbid from a private frame and from the item's live event).

import { h } from "./dom.js";

const shown = new Set();
const LIFETIME_MS = 8000;

export function toast(text, { kind = "info", key, link } = {}) {
  if (key) {
    if (shown.has(key)) return;
    shown.add(key);
  }
  const region = document.getElementById("toasts");
  const close = h("button", { type: "button", class: "link", "aria-label": "Dismiss" }, "×");
  const body = link ? h("a", { href: link }, text) : h("span", {}, text);
  const node = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status", dataset: { kind } }, body, close);
  close.addEventListener("click", () => node.remove());
  region.append(node);
  setTimeout(() => node.remove(), LIFETIME_MS);
}
