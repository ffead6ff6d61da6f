// The chat page: Firebase sign-in, a chat that streams from the chat function, and the user's
// usage. Built into public/app.js by scripts/setup (esbuild). It never logs: no token, prompt or
// answer reaches the console.

import { initializeApp } from "firebase/app";
import {
  connectAuthEmulator,
  createUserWithEmailAndPassword,
  indexedDBLocalPersistence,
  browserLocalPersistence,
  initializeAuth,
  onAuthStateChanged,
  signInWithEmailAndPassword,
  signOut,
} from "firebase/auth";

import { appCheckHeaders, noteModels, setupAppCheck } from "./app-check.js";
import { firebaseSetup } from "./firebase-setup.js";
import { sseData } from "./sse.js";

const $ = (id) => document.getElementById(id);
const ui = {
  loading: $("loading"),
  account: $("account"),
  who: $("who"),
  signOut: $("sign-out"),
  signIn: $("sign-in"),
  signInForm: $("sign-in-form"),
  email: $("email"),
  password: $("password"),
  signInError: $("sign-in-error"),
  chat: $("chat"),
  messages: $("messages"),
  composer: $("composer"),
  model: $("model"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  status: $("status"),
  chatError: $("chat-error"),
  usage: $("usage"),
  usageBody: $("usage-body"),
};

let auth;
let history = []; // the conversation sent with each question: [{role, content}]
let streaming = null; // the AbortController of the answer being streamed
let usageRequest = 0; // only the latest usage refresh may paint

// --- endpoints ---------------------------------------------------------------------------------

// Through the Hosting rewrite by default. A developer may call the chat function directly
// instead (its URL in localStorage "chat.functionUrl"; CORS_ORIGINS must allow this page).
function endpoints() {
  const direct = localStorage.getItem("chat.functionUrl");
  const chatBase = direct ? direct.replace(/\/+$/, "") : "/api";
  return {
    chat: `${chatBase}/v1/chat/completions`,
    models: `${chatBase}/v1/models`,
    usage: "/api/usage",
  };
}

// fetch() with the user's ID token. getIdToken() returns the cached token, or a fresh one when it
// is about to expire; a 401 anyway (revoked, clock skew) gets one retry with a forced refresh.
async function authedFetch(url, init = {}) {
  const user = auth.currentUser;
  if (!user) throw new Problem("You are signed out. Sign in again to continue.");
  const appCheck = await appCheckHeaders(init);
  const call = async (token) =>
    fetch(url, { ...init, headers: { ...init.headers, ...appCheck, Authorization: `Bearer ${token}` } });
  let response = await call(await user.getIdToken());
  if (response.status === 401) response = await call(await user.getIdToken(true));
  return response;
}

// --- errors in words -----------------------------------------------------------------------------

class Problem extends Error {
  constructor(message, { status = 0, code = "" } = {}) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const BUDGET_MESSAGE =
  "You have reached your usage limit for this billing period, so no more answers can be sent. " +
  "It resets with the next period, or ask for a higher budget.";

// The API's {"error": {message, code}} as a sentence for the user.
function problemFrom(status, error) {
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

function describe(error) {
  if (error instanceof Problem) return error.message;
  if (error instanceof TypeError) return "Could not reach the chat service. Check your connection and try again.";
  return "Something went wrong. Try again.";
}

// --- chat ----------------------------------------------------------------------------------------

function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = `message ${role}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Assistant";
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text;
  item.append(who, body);
  ui.messages.append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function setStreaming(controller) {
  streaming = controller;
  ui.send.disabled = Boolean(controller);
  ui.stop.disabled = !controller;
  ui.model.disabled = Boolean(controller);
}

async function ask(question) {
  ui.chatError.textContent = "";
  const model = ui.model.value;
  const asked = [...history, { role: "user", content: question }];
  addMessage("user", question);
  const answer = addMessage("assistant", "");
  answer.dataset.state = "streaming";
  answer.setAttribute("aria-busy", "true");
  const text = answer.querySelector(".text");
  const controller = new AbortController();
  setStreaming(controller);
  ui.status.textContent = "Answering…";
  let said = "";
  let outcome = "done";
  try {
    const response = await authedFetch(endpoints().chat, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        ...(model ? { model } : {}),
        messages: asked,
        stream: true,
        stream_options: { include_usage: true },
      }),
      signal: controller.signal,
    });
    if (!response.ok) throw await problemFromResponse(response);
    for await (const data of sseData(response.body)) {
      if (data === "[DONE]") break;
      const event = JSON.parse(data);
      if (event.error) throw problemFrom(500, event.error); // the stream broke after it started
      const piece = event.choices?.[0]?.delta?.content;
      if (piece) {
        said += piece;
        text.textContent = said;
      }
    }
  } catch (error) {
    if (error.name === "AbortError") {
      outcome = "stopped";
    } else {
      outcome = "error";
      ui.chatError.textContent = describe(error);
      if (error instanceof Problem && error.status === 402) ui.chatError.dataset.code = "budget_exceeded";
    }
  } finally {
    setStreaming(null);
    answer.removeAttribute("aria-busy");
  }
  answer.dataset.state = outcome;
  if (said) {
    history = [...asked, { role: "assistant", content: said }];
  } else if (outcome !== "done") {
    answer.remove(); // nothing was said: the error (or the stop) is reported below instead
  }
  if (outcome === "error" && !said) ui.prompt.value ||= question; // to send again later
  ui.status.textContent = {
    done: "Answered.",
    stopped: said ? "Stopped. The part shown was billed." : "Stopped.",
    error: "The answer failed.",
  }[outcome];
  refreshUsage();
}

async function loadModels() {
  ui.model.replaceChildren(new Option("Default model", ""));
  try {
    const response = await authedFetch(endpoints().models);
    if (!response.ok) throw await problemFromResponse(response);
    const { data } = await response.json();
    noteModels({ data });
    ui.model.replaceChildren(...data.map((m, i) => new Option(m.id, m.id, i === 0, i === 0)));
  } catch {
    // The server's default model is used; the picker says so.
  }
}

// --- usage ---------------------------------------------------------------------------------------

function money(cents, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

function day(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleDateString(undefined, { dateStyle: "medium" });
}

function cell(tag, text, attrs = {}) {
  const element = document.createElement(tag);
  element.textContent = text;
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, value);
  return element;
}

function paintUsage(usage) {
  const parts = [];
  const period = usage.period ? `${day(usage.period.from)} – ${day(usage.period.to)}` : "";
  parts.push(
    cell("p", `${money(usage.amount_cents, usage.currency)} used this period${period ? ` (${period})` : ""}.`, {
      id: "usage-amount",
    }),
  );
  if (usage.budget) {
    const { limit_cents: limit, remaining_cents: remaining } = usage.budget;
    parts.push(
      cell(
        "p",
        `Budget ${money(limit, usage.currency)}: ${money(Math.max(remaining, 0), usage.currency)} left.`,
        { id: "usage-budget", class: remaining <= 0 ? "warning" : "" },
      ),
    );
  }
  if (usage.models.length) {
    const table = document.createElement("table");
    table.id = "usage-models";
    const head = document.createElement("tr");
    head.append(cell("th", "Model", { scope: "col" }), cell("th", "Tokens", { scope: "col" }), cell("th", "Requests", { scope: "col" }));
    const rows = usage.models.map((m) => {
      const row = document.createElement("tr");
      row.dataset.model = m.model;
      row.append(
        cell("th", m.model, { scope: "row" }),
        cell("td", Math.round(Number(m.tokens)).toLocaleString(), { class: "tokens" }),
        cell("td", Math.round(Number(m.requests)).toLocaleString(), { class: "requests" }),
      );
      return row;
    });
    table.append(cell("caption", "Tokens per model"), document.createElement("thead"), document.createElement("tbody"));
    table.tHead.append(head);
    table.tBodies[0].append(...rows);
    parts.push(table);
  } else {
    parts.push(cell("p", "No tokens used yet this period."));
  }
  ui.usageBody.replaceChildren(...parts);
}

async function refreshUsage() {
  const mine = ++usageRequest;
  ui.usage.setAttribute("aria-busy", "true");
  let paint;
  try {
    const response = await authedFetch(endpoints().usage);
    if (!response.ok) throw await problemFromResponse(response);
    const usage = await response.json();
    paint = () => paintUsage(usage);
  } catch (error) {
    paint = () => ui.usageBody.replaceChildren(cell("p", `Usage is not available: ${describe(error)}`));
  }
  if (mine !== usageRequest) return; // a newer refresh is on its way
  paint();
  ui.usage.dataset.refreshes = String(Number(ui.usage.dataset.refreshes || 0) + 1);
  ui.usage.removeAttribute("aria-busy");
}

// --- sign-in -------------------------------------------------------------------------------------

const AUTH_MESSAGES = {
  "auth/email-already-in-use": "An account with this email already exists. Sign in instead.",
  "auth/invalid-credential": "Wrong email or password.",
  "auth/wrong-password": "Wrong email or password.",
  "auth/user-not-found": "No account with this email. Create one first.",
  "auth/invalid-email": "That is not a valid email address.",
  "auth/weak-password": "Choose a longer password (at least 6 characters).",
  "auth/missing-password": "Enter a password.",
  "auth/too-many-requests": "Too many attempts. Wait a moment and try again.",
  "auth/network-request-failed": "Could not reach the sign-in service. Check your connection.",
  "auth/user-disabled": "This account is disabled.",
};

async function onSignIn(event) {
  event.preventDefault();
  const action = event.submitter?.value === "sign-up" ? createUserWithEmailAndPassword : signInWithEmailAndPassword;
  ui.signInError.textContent = "";
  for (const button of ui.signInForm.querySelectorAll("button")) button.disabled = true;
  try {
    await action(auth, ui.email.value.trim(), ui.password.value);
    ui.password.value = "";
  } catch (error) {
    ui.signInError.textContent = AUTH_MESSAGES[error.code] || "Sign-in failed. Try again.";
  } finally {
    for (const button of ui.signInForm.querySelectorAll("button")) button.disabled = false;
  }
}

function showSignedIn(user) {
  ui.loading.hidden = true;
  ui.signIn.hidden = Boolean(user);
  ui.chat.hidden = !user;
  ui.usage.hidden = !user;
  ui.account.hidden = !user;
  if (!user) {
    streaming?.abort();
    history = [];
    ui.messages.replaceChildren();
    ui.usageBody.replaceChildren();
    ui.status.textContent = "";
    ui.chatError.textContent = "";
    ui.email.focus();
    return;
  }
  ui.who.textContent = user.email || "signed in";
  loadModels();
  refreshUsage();
  ui.prompt.focus();
}

// --- start ---------------------------------------------------------------------------------------

async function start() {
  const { config, authEmulatorUrl } = await firebaseSetup();
  const app = initializeApp(config);
  setupAppCheck(app, { emulated: Boolean(authEmulatorUrl) });
  auth = initializeAuth(app, { persistence: [indexedDBLocalPersistence, browserLocalPersistence] });
  if (authEmulatorUrl) connectAuthEmulator(auth, authEmulatorUrl, { disableWarnings: true });

  ui.signInForm.addEventListener("submit", onSignIn);
  ui.signOut.addEventListener("click", () => signOut(auth));
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = ui.prompt.value.trim();
    if (!question || streaming) return;
    ui.prompt.value = "";
    ask(question);
  });
  ui.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.composer.requestSubmit();
    }
  });
  ui.stop.addEventListener("click", () => streaming?.abort());
  onAuthStateChanged(auth, showSignedIn);
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  ui.loading.textContent = error instanceof Error ? error.message : "The page could not start.";
  ui.loading.setAttribute("role", "alert");
});
