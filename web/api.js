// The chat API as the page calls it: where it is, each call with the user's ID token (and App
// Check's token when the page has it), and its errors as sentences for the user.

// Through the Hosting rewrite by default. A developer may call the chat function directly
// instead (its URL in localStorage "chat.functionUrl"; CORS_ORIGINS must allow this page).
export function endpoints() {
  const direct = localStorage.getItem("chat.functionUrl");
  const chatBase = direct ? direct.replace(/\/+$/, "") : "/api";
  return {
    direct: Boolean(direct),
    chat: `${chatBase}/v1/chat/completions`,
    models: `${chatBase}/v1/models`,
    usage: "/api/usage",
  };
}

export class Api {
  /**
   * ``auth``: the Firebase Auth instance; ``appCheck``: null when the page is built without App
   * Check, else a function that returns a promise of app-check.js's AppCheck (loaded once).
   */
  constructor(auth, appCheck) {
    this.auth = auth;
    this.appCheck = appCheck ? () => appCheck().catch(() => null) : async () => null;
  }

  // fetch() with the user's ID token. getIdToken() returns the cached token, or a fresh one when
  // it is about to expire; a 401 anyway (revoked, clock skew) gets one retry with a forced
  // refresh, with the same headers (so the same Idempotency-Key: it is the same question).
  async fetch(url, init = {}) {
    const user = this.auth.currentUser;
    if (!user) throw new Problem("You are signed out. Sign in again to continue.");
    // Without App Check's token a server that enforces it answers 401, which the page shows in words.
    const appCheck = (await (await this.appCheck())?.headers(init)) ?? {};
    const call = async (token) =>
      fetch(url, { ...init, headers: { ...init.headers, ...appCheck, Authorization: `Bearer ${token}` } });
    let response = await call(await user.getIdToken());
    if (response.status === 401) response = await call(await user.getIdToken(true));
    return response;
  }

  /** The JSON body of a GET, or the Problem the API answered. */
  async get(url) {
    const response = await this.fetch(url);
    if (!response.ok) throw await problemFromResponse(response);
    return response.json();
  }

  /** The allowed models (GET /v1/models's data), the default first. */
  async models() {
    const list = await this.get(endpoints().models);
    (await this.appCheck())?.noteModels(list);
    return list.data;
  }

  /** A streamed chat completion: the response, whose body is the answer's server-sent events. */
  async streamChat({ model, messages }, { signal }) {
    const response = await this.fetch(endpoints().chat, {
      method: "POST",
      // One key per question: a retry of it (the 401 above) is recognised as the same request.
      headers: { "Content-Type": "application/json", "Idempotency-Key": newKey() },
      body: JSON.stringify({
        ...(model ? { model } : {}),
        messages,
        stream: true,
        stream_options: { include_usage: true },
      }),
      signal,
    });
    if (!response.ok) throw await problemFromResponse(response);
    return response;
  }
}

// crypto.randomUUID() exists in secure contexts only (https, localhost): elsewhere (a page served
// on a LAN address) the same random UUID v4 from getRandomValues.
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// --- errors in words -----------------------------------------------------------------------------

export class Problem extends Error {
  constructor(message, { status = 0, code = "" } = {}) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const BUDGET_MESSAGE =
  "You have reached your usage limit for this billing period, so no more answers can be sent. " +
  "It resets with the next period, or ask for a higher budget.";

/** The API's {"error": {message, code}} as a sentence for the user. */
export function problemFrom(status, error) {
  const code = error?.code || "";
  const said = typeof error?.message === "string" ? error.message : "";
  if (status === 402 || code === "budget_exceeded") return new Problem(BUDGET_MESSAGE, { status: 402, code });
  if (status === 401) return new Problem("Your session has expired. Sign out and sign in again.", { status, code });
  if (status === 429) return new Problem("Too many requests right now. Wait a moment and try again.", { status, code });
  if (status === 404 && code === "model_not_found") return new Problem(said || "That model is not available.", { status, code });
  if (status >= 500 || status === 0) {
    const why = said ? ` (${said})` : "";
    return new Problem(`The chat service had a problem${why}. Try again in a moment.`, { status, code });
  }
  return new Problem(said || `The request was refused (HTTP ${status}).`, { status, code });
}

async function problemFromResponse(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, say
  }
  return problemFrom(response.status, body?.error);
}

/** Any error of a call as a sentence for the user. */
export function describe(error) {
  if (error instanceof Problem) return error.message;
  if (error instanceof TypeError) return "Could not reach the chat service. Check your connection and try again.";
  return "Something went wrong. Try again.";
}
