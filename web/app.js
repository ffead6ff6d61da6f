// The chat page: Firebase sign-in, a chat that streams from the chat function (answers rendered
// as sanitized Markdown), the user's conversations kept in Firestore, and the user's usage. Built into public/app.js by scripts/setup (esbuild). It never logs: no token, prompt or
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
import { connectFirestoreEmulator, getFirestore } from "firebase/firestore";

import { appCheckHeaders, noteModels, setupAppCheck } from "./app-check.js";
import { Conversations, titleFrom } from "./conversations.js";
import { firebaseSetup } from "./firebase-setup.js";
import { handleCopyClicks, renderMarkdown } from "./markdown.js";
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
  conversations: $("conversations"),
  newChat: $("new-chat"),
  conversationList: $("conversation-list"),
  conversationsEmpty: $("conversations-empty"),
};

let auth;
let db = null; // Firestore, where conversations are kept
let conversations = null; // the signed-in user's (a Conversations)
let stopWatching = null; // ends the side list's Firestore listener
let listed = []; // the side list, newest first, as Firestore last said
let current = null; // the open conversation: {id, created, listed, title, messages}; null: a new chat
let renaming = null; // {id, form} while a title is being edited
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

const TOKENS = new Intl.NumberFormat(undefined);
const USD = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumSignificantDigits: 2 });

// What one answer used, from the stream's final usage chunk: "57 tokens · $0.000021".
function costLine(message) {
  if (message.tokens === undefined) return "";
  const cost = typeof message.cost === "number" ? ` · ${USD.format(message.cost)}` : "";
  return `${TOKENS.format(message.tokens)} tokens${cost}`;
}

function addMessage(message) {
  const item = document.createElement("li");
  item.className = `message ${message.role}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = message.role === "user" ? "You" : "Assistant";
  item.append(who);
  if (message.role === "user") {
    const body = document.createElement("p");
    body.className = "text";
    body.textContent = message.content; // the user's own words: plain text, never Markdown
    item.append(body);
  } else {
    const body = document.createElement("div");
    body.className = "text markdown";
    const tools = document.createElement("div");
    tools.className = "tool-calls";
    const cost = document.createElement("p");
    cost.className = "cost";
    item.append(body, tools, cost);
    paintAnswer(item, message);
    if (message.state) item.dataset.state = message.state;
  }
  ui.messages.append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

// Re-renders an answer (all of it: Markdown changes meaning as it grows). One synchronous
// replacement per frame, so nothing flickers; the view follows the answer only while its end
// is in view (the reader has not scrolled up to read).
function paintAnswer(item, message) {
  const follow = item.getBoundingClientRect().bottom <= window.innerHeight + 48;
  item.querySelector(".text").replaceChildren(renderMarkdown(message.content));
  item.querySelector(".tool-calls").replaceChildren(...(message.toolCalls || []).map(toolCallBlock));
  item.querySelector(".cost").textContent = costLine(message);
  if (follow) item.scrollIntoView({ block: "end" });
}

function toolCallBlock(call) {
  const block = document.createElement("div");
  block.className = "tool-call";
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = "Tool call";
  const name = document.createElement("code");
  name.className = "name";
  name.textContent = call.name || "(unnamed)";
  const args = document.createElement("pre");
  args.className = "arguments";
  args.textContent = prettyJson(call.arguments);
  block.append(label, " ", name, args);
  return block;
}

function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text || ""; // still streaming, or not JSON: as sent
  }
}

// delta.tool_calls pieces (OpenAI streaming): the first piece of a call has its index, id and
// name; later pieces with the same index carry more of the arguments' JSON text.
function addToolCallPieces(calls, pieces) {
  for (const piece of pieces) {
    const index = Number.isInteger(piece.index) ? piece.index : calls.length;
    const call = (calls[index] ||= { name: "", arguments: "" });
    if (piece.function?.name) call.name += piece.function.name;
    if (piece.function?.arguments) call.arguments += piece.function.arguments;
  }
}

function setStreaming(controller) {
  streaming = controller;
  ui.send.disabled = Boolean(controller);
  ui.stop.disabled = !controller;
  ui.model.disabled = Boolean(controller);
  ui.conversations.toggleAttribute("data-busy", Boolean(controller));
}

async function ask(question) {
  ui.chatError.textContent = "";
  const model = ui.model.value;
  current ||= { id: null, created: false, title: titleFrom(question), messages: [] };
  const conversation = current;
  const asked = [...conversation.messages.map(({ role, content }) => ({ role, content })), { role: "user", content: question }];
  addMessage({ role: "user", content: question });
  const reply = { role: "assistant", content: "", toolCalls: [] };
  const answer = addMessage(reply);
  answer.dataset.state = "streaming";
  answer.setAttribute("aria-busy", "true");
  let frame = 0;
  const repaint = () => {
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      paintAnswer(answer, reply);
    });
  };
  const controller = new AbortController();
  setStreaming(controller);
  ui.status.textContent = "Answering…";
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
      const delta = event.choices?.[0]?.delta;
      if (delta?.content) reply.content += delta.content;
      if (Array.isArray(delta?.tool_calls)) addToolCallPieces(reply.toolCalls, delta.tool_calls);
      if (event.usage) {
        reply.tokens = Number(event.usage.total_tokens) || 0;
        if (typeof event.usage.cost === "number") reply.cost = event.usage.cost;
      }
      repaint();
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
    cancelAnimationFrame(frame);
    frame = 0;
    answer.removeAttribute("aria-busy");
  }
  paintAnswer(answer, reply);
  answer.dataset.state = outcome;
  const said = Boolean(reply.content || reply.toolCalls.length);
  if (said) {
    if (!reply.toolCalls.length) delete reply.toolCalls;
    reply.state = outcome === "done" ? "done" : "stopped";
    conversation.messages = [...conversation.messages, { role: "user", content: question }, reply];
    saveConversation(conversation, model);
  } else if (outcome !== "done") {
    answer.remove(); // nothing was said: the error (or the stop) is reported below instead
  }
  if (outcome === "error" && !said) ui.prompt.value ||= question; // to send again later
  ui.status.textContent = {
    done: "Answered.",
    stopped: reply.content ? "Stopped. The part shown was billed." : "Stopped.",
    error: "The answer failed.",
  }[outcome];
  refreshUsage();
}

// --- conversations -------------------------------------------------------------------------------

async function saveConversation(conversation, model) {
  if (!conversations) return;
  const created = !conversation.created;
  conversation.id ||= conversations.newId();
  conversation.created = true;
  try {
    await conversations.save(conversation.id, {
      created,
      title: conversation.title,
      model: model || ui.model.options[0]?.value || "",
      messages: conversation.messages.map(storedMessage),
    });
  } catch {
    // The rules bound a conversation's length; or saving is not available (offline, no rules).
    ui.chatError.textContent = "This conversation could not be saved. If it is long, start a new chat.";
  }
}

// The fields firestore.rules allows in a stored message.
function storedMessage({ role, content, tokens, cost, state, toolCalls }) {
  const stored = { role, content };
  if (role === "assistant") {
    if (tokens !== undefined) stored.tokens = tokens;
    if (cost !== undefined) stored.cost = cost;
    if (state) stored.state = state;
    if (toolCalls?.length) stored.toolCalls = JSON.stringify(toolCalls);
  }
  return stored;
}

function startNewChat() {
  if (streaming) return;
  current = null;
  ui.messages.replaceChildren();
  ui.status.textContent = "";
  ui.chatError.textContent = "";
  paintList(listed);
  ui.prompt.focus();
}

function openConversation(id) {
  const found = listed.find((c) => c.id === id);
  if (!found || streaming) return;
  current = {
    id,
    created: true,
    listed: true,
    title: found.title,
    messages: (found.messages || []).map((m) =>
      m.toolCalls ? { ...m, toolCalls: safeParse(m.toolCalls) } : { ...m },
    ),
  };
  ui.messages.replaceChildren();
  for (const message of current.messages) addMessage(message);
  if ([...ui.model.options].some((o) => o.value === found.model)) ui.model.value = found.model;
  ui.status.textContent = "";
  ui.chatError.textContent = "";
  paintList(listed);
}

function safeParse(text) {
  try {
    const value = JSON.parse(text);
    return Array.isArray(value) ? value : [];
  } catch {
    return [];
  }
}

function paintList(list) {
  listed = list;
  if (current) {
    const present = list.some((c) => c.id === current.id);
    if (present) current.listed = true;
    else if (current.listed && !streaming) {
      // Deleted (here or in another tab): what is shown is no longer kept.
      current = null;
      ui.messages.replaceChildren();
    }
  }
  const items = list.map((conversation) => {
    const item = document.createElement("li");
    item.dataset.id = conversation.id;
    item.toggleAttribute("data-pending", conversation.pending);
    if (current?.id === conversation.id) item.setAttribute("aria-current", "true");
    if (renaming?.id === conversation.id) {
      item.append(renaming.form);
      return item;
    }
    const open = cell("button", conversation.title || "Untitled", { type: "button", class: "open" });
    open.addEventListener("click", () => openConversation(conversation.id));
    const rename = cell("button", "Rename", { type: "button", class: "rename", "aria-label": `Rename “${conversation.title}”` });
    rename.addEventListener("click", () => startRename(conversation));
    const remove = cell("button", "Delete", { type: "button", class: "delete", "aria-label": `Delete “${conversation.title}”` });
    remove.addEventListener("click", () => deleteConversation(conversation));
    item.append(open, rename, remove);
    return item;
  });
  ui.conversationList.replaceChildren(...items);
  ui.conversationsEmpty.hidden = list.length > 0;
}

function startRename(conversation) {
  const form = document.createElement("form");
  form.className = "rename-form";
  const input = cell("input", "", { type: "text", maxlength: "200", "aria-label": "New title", required: "" });
  input.value = conversation.title || "";
  const save = cell("button", "Save", { type: "submit" });
  form.append(input, save);
  const done = () => {
    renaming = null;
    paintList(listed);
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const title = input.value.trim().slice(0, 200);
    if (!title) return;
    conversations.rename(conversation.id, title).catch(() => {
      ui.chatError.textContent = "The conversation could not be renamed. Try again.";
    });
    if (current?.id === conversation.id) current.title = title;
    done();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") done();
  });
  renaming = { id: conversation.id, form };
  paintList(listed);
  input.focus();
  input.select();
}

function deleteConversation(conversation) {
  if (streaming && current?.id === conversation.id) return;
  if (!confirm(`Delete the conversation “${conversation.title}”? This cannot be undone.`)) return;
  if (current?.id === conversation.id) startNewChat();
  conversations.remove(conversation.id).catch(() => {
    ui.chatError.textContent = "The conversation could not be deleted. Try again.";
  });
}

function watchConversations(user) {
  stopWatching?.();
  stopWatching = null;
  current = null;
  renaming = null;
  listed = [];
  conversations = user && db ? new Conversations(db, user.uid) : null;
  paintList([]);
  if (!conversations) return;
  stopWatching = conversations.watch(paintList, () => {
    ui.conversationsEmpty.hidden = false;
    ui.conversationsEmpty.textContent = "Past conversations are not available right now.";
  });
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
  if (!iso) return ""; // no period yet (a user Lago does not know yet): not the epoch
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
  const [from, to] = [day(usage.period?.from), day(usage.period?.to)];
  const period = from && to ? `${from} – ${to}` : "";
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
  ui.conversations.hidden = !user;
  watchConversations(user);
  if (!user) {
    streaming?.abort();
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
  const { config, authEmulatorUrl, firestoreEmulator } = await firebaseSetup();
  const app = initializeApp(config);
  setupAppCheck(app, { emulated: Boolean(authEmulatorUrl) });
  auth = initializeAuth(app, { persistence: [indexedDBLocalPersistence, browserLocalPersistence] });
  if (authEmulatorUrl) connectAuthEmulator(auth, authEmulatorUrl, { disableWarnings: true });
  db = getFirestore(app);
  if (firestoreEmulator) connectFirestoreEmulator(db, firestoreEmulator.host, firestoreEmulator.port);

  handleCopyClicks(ui.messages);
  ui.newChat.addEventListener("click", startNewChat);

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
