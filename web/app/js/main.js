// The app's start: read /app/config.json (the WebSocket address, the currency), open the live
// connection, show who is signed in, and route.

import { live } from "./live.js";
import { setCurrency } from "./money.js";
import { startNotifications } from "./notifications.js";
import { route, start } from "./router.js";
import { currentUser, onSessionChange, signOut } from "./session.js";
import { accountView } from "./views/account.js";
import { itemView } from "./views/item.js";
import { listView } from "./views/list.js";
import { mineView } from "./views/mine.js";
import { sellView } from "./views/sell.js";

const DEFAULT_CONFIG = { ws_url: "ws://127.0.0.1:8081/ws", currency: "USD" };

async function loadConfig() {
  try {
    const response = await fetch("config.json", { headers: { accept: "application/json" } });
    if (response.ok) return { ...DEFAULT_CONFIG, ...(await response.json()) };
  } catch {
    // The defaults: a local `make run`.
  }
  return DEFAULT_CONFIG;
}

/** A path such as `/ws` means the app's own origin. */
function socketUrl(configured) {
  if (!configured.startsWith("/")) return configured;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${configured}`;
}

function showSession() {
  const user = currentUser();
  document.body.dataset.session = user ? "signed-in" : "signed-out";
  document.getElementById("whoami").textContent = user ? `Signed in as ${user.name}` : "";
}

function showLiveStatus(status) {
  const badge = document.getElementById("live-status");
  badge.dataset.state = status;
  badge.textContent = { live: "Live", reconnecting: "Reconnecting…", connecting: "Connecting…" }[status] ?? status;
}

async function main() {
  const config = await loadConfig();
  setCurrency(config.currency);
  showSession();
  onSessionChange(showSession);
  document.getElementById("logout").addEventListener("click", async () => {
    await signOut();
    location.hash = "#/";
  });
  live.onStatus(showLiveStatus);
  live.start(socketUrl(config.ws_url));
  startNotifications();

  route(/^\/$/, listView);
  route(/^\/items\/([^/]+)$/, itemView);
  route(/^\/(login|signup)$/, accountView);
  route(/^\/sell$/, sellView);
  route(/^\/me(?:\/(bids|won|watchlist|notifications))?$/, mineView);
  start();
}

main();
