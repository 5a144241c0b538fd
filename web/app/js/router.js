// Hash routes (#/items/lot-1), so the gateway serves one page and a reload or a shared link
// opens the same view. Each view renders into <main> and returns a function that tears it down
// (its socket subscriptions, timers).

const routes = [];
let teardown = null;

export function route(pattern, view) {
  routes.push({ pattern, view });
}

export function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

export function render() {
  const path = decodeURIComponent(location.hash.replace(/^#/, "").split("?")[0]) || "/";
  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const main = document.getElementById("main");
  if (teardown) teardown();
  teardown = null;
  for (const { pattern, view } of routes) {
    const match = pattern.exec(path);
    if (match) {
      teardown = view(main, { args: match.slice(1), params }) ?? null;
      main.focus({ preventScroll: true });
      return;
    }
  }
  main.replaceChildren(document.createTextNode("No such page."));
}

export function start() {
  window.addEventListener("hashchange", render);
  render();
}
