// Who is signed in. The tokens are kept in localStorage so a reload stays signed in; the
// access token (15 minutes by default) is renewed in the background a minute before it
// expires, and on a 401. Refresh tokens rotate and a reused one revokes the sign-in, so tabs
// take turns through a Web Lock and adopt a token another tab already got.

import { api, setAuthProvider } from "./api.js";

const STORAGE_KEY = "auction.session";
const RENEW_BEFORE_MS = 60_000;

let session = load();
let timer = null;
const listeners = new Set();

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null");
    return saved && saved.refresh ? saved : null;
  } catch {
    return null;
  }
}

function store(next) {
  session = next;
  if (next) localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  else localStorage.removeItem(STORAGE_KEY);
  schedule();
  for (const listener of listeners) listener(currentUser());
}

/** The claims of a JWT (read only for display and timing; the servers verify it). */
function claims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

function fromTokens(tokens) {
  const c = claims(tokens.access_token);
  return {
    access: tokens.access_token,
    accessExpiresAt: Date.now() + tokens.expires_in * 1000,
    refresh: tokens.refresh_token,
    user: {
      id: tokens.user?.id ?? c.sub,
      name: tokens.user?.display_name ?? c.sub,
      roles: tokens.user?.roles ?? c.roles ?? [],
    },
  };
}

/** `{id, name, roles}` or null. */
export function currentUser() {
  return session?.user ?? null;
}

export function isAdmin() {
  return currentUser()?.roles.includes("admin") ?? false;
}

export function accessToken() {
  if (!session || Date.now() >= session.accessExpiresAt) return null;
  return session.access;
}

export function onSessionChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export async function signIn(login, password) {
  store(fromTokens(await api("/api/v1/auth/login", { method: "POST", json: { login, password } })));
}

export async function signUp({ login, displayName, password }) {
  const kind = login.includes("@") ? "email" : "username";
  const tokens = await api("/api/v1/auth/register", {
    method: "POST",
    json: { [kind]: login, display_name: displayName, password },
  });
  store(fromTokens(tokens));
}

export async function signOut() {
  const refresh = session?.refresh;
  store(null);
  if (refresh) {
    await api("/api/v1/auth/logout", { method: "POST", json: { refresh_token: refresh } }).catch(() => {});
  }
}

/** A fresh access token; false when the sign-in is over (then the session is cleared). */
export async function refresh() {
  const used = session?.refresh;
  if (!used) return false;
  const run = async () => {
    const latest = load();
    if (latest?.refresh && latest.refresh !== used) {
      // Another tab already rotated it: take its tokens.
      store(latest);
      return true;
    }
    try {
      store(fromTokens(await api("/api/v1/auth/refresh", { method: "POST", json: { refresh_token: used } })));
      return true;
    } catch (error) {
      if (error.status === 401 || error.status === 400) store(null);
      return false;
    }
  };
  return navigator.locks ? navigator.locks.request("auction-session-refresh", run) : run();
}

function schedule() {
  clearTimeout(timer);
  if (!session) return;
  const wait = Math.max(0, session.accessExpiresAt - Date.now() - RENEW_BEFORE_MS);
  timer = setTimeout(() => refresh(), wait);
}

setAuthProvider({ token: accessToken, refresh });
schedule();
