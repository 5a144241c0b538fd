// Every call to the gateway's API (same origin as the app, so no CORS). Errors come back as
// ApiError with the API's `{"error": code, "message"}`, the status and any Retry-After, so a
// view can say what happened and what to do. A 401 for an expired access token is retried
// once after a refresh.

export class ApiError extends Error {
  constructor(status, code, message, retryAfterSecs = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterSecs = retryAfterSecs;
  }

  /** Worth retrying the same attempt: unreachable, rate limited or temporarily unavailable. */
  get retryable() {
    return this.status === 0 || this.status === 429 || this.status === 503;
  }

  /** The route does not exist on this gateway (a feature not deployed), not a missing thing. */
  get routeMissing() {
    return this.status === 404 && this.code === "not_found";
  }
}

/** What the session module plugs in: the current access token and a way to renew it. */
let auth = { token: () => null, refresh: async () => false };

export function setAuthProvider(provider) {
  auth = provider;
}

/**
 * `path` on the gateway. Options: `method`, `json` (an object to send), `body` (JSON text
 * already built, for money literals), `auth` (send the access token), `idempotencyKey`.
 * Resolves to the parsed JSON body (null for 204).
 */
export async function api(path, options = {}) {
  const first = await send(path, options);
  if (first?.status === 401 && options.auth && (await auth.refresh())) {
    return read(await send(path, options));
  }
  return read(first);
}

async function send(path, { method = "GET", json, body, auth: withToken, idempotencyKey }) {
  const headers = { accept: "application/json" };
  const text = body ?? (json === undefined ? undefined : JSON.stringify(json));
  if (text !== undefined) headers["content-type"] = "application/json";
  const token = withToken ? auth.token() : null;
  if (token) headers.authorization = `Bearer ${token}`;
  if (idempotencyKey) headers["idempotency-key"] = idempotencyKey;
  try {
    return await fetch(path, { method, headers, body: text });
  } catch {
    return null;
  }
}

async function read(response) {
  if (response === null) {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection and retry.");
  }
  if (response.status === 204) return null;
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.ok) return body;
  const retryAfter = Number.parseInt(response.headers.get("retry-after") ?? "", 10);
  throw new ApiError(
    response.status,
    body?.error ?? `http_${response.status}`,
    body?.message ?? `The server answered ${response.status}.`,
    Number.isFinite(retryAfter) ? retryAfter : null,
  );
}

/** A clear sentence for a failure, as shown to a person. */
export function describeError(error) {
  if (!(error instanceof ApiError)) return "Something went wrong. Please retry.";
  if (error.status === 429) {
    const wait = error.retryAfterSecs ?? 1;
    return `Too many requests: please wait ${wait} second${wait === 1 ? "" : "s"} and retry.`;
  }
  if (error.status === 503) {
    return error.code === "outcome_unknown"
      ? "The service answered too late: your bid may or may not have been placed. Retry: it is safe, the same attempt is never placed twice."
      : "The service is temporarily unavailable. Nothing was changed; retry in a moment.";
  }
  if (error.status === 0) return error.message;
  return error.message;
}
