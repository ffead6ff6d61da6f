// The signed-in part of the page: the composer, the answer streaming in, the conversation open
// and the list of kept ones (Firestore), and the usage panel. Loaded after sign-in, with
// Firestore, Markdown and the views: the sign-in form does not wait for them.

import { connectFirestoreEmulator, getFirestore } from "firebase/firestore";

import { describe, endpoints, Problem } from "./api.js";
import { newAnswer, readAnswer } from "./answer.js";
import { ConversationList } from "./conversation-list.js";
import { Conversations, titleFrom } from "./conversations.js";
import { handleCopyClicks } from "./markdown.js";
import { addMessage, announceAnswer, clearMessages, paintAnswer } from "./messages.js";
import { ui } from "./page.js";
import { UsagePanel } from "./usage.js";

export class Chat {
  /**
   * Once per page. ``app``: the Firebase app; ``api``: an Api; ``emulated``: the page runs under
   * the emulators; ``firestoreEmulator``: {host, port} of the Firestore emulator, if one.
   */
  constructor({ app, api, emulated, firestoreEmulator }) {
    this.api = api;
    this.emulated = emulated;
    this.db = getFirestore(app);
    if (firestoreEmulator) connectFirestoreEmulator(this.db, firestoreEmulator.host, firestoreEmulator.port);
    this.usage = new UsagePanel(api);
    this.list = new ConversationList({
      open: (id) => this.openConversation(id),
      rename: (id, title) => this.renameConversation(id, title),
      remove: (conversation) => this.deleteConversation(conversation),
    });
    this.store = null; // the signed-in user's Conversations
    this.stopWatching = null; // ends the list's Firestore listener
    this.current = null; // the open conversation: {id, created, listed, title, messages}; null: a new chat
    this.streaming = null; // the AbortController of the answer being streamed

    handleCopyClicks(ui.messages);
    ui.newChat.addEventListener("click", () => this.startNewChat());
    ui.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      const question = ui.prompt.value.trim();
      if (!question || this.streaming) return;
      ui.prompt.value = "";
      ui.prompt.focus(); // Send disables itself: the message box is where the user goes on
      this.ask(question);
    });
    ui.prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        ui.composer.requestSubmit();
      }
    });
    ui.stop.addEventListener("click", () => this.streaming?.abort());
  }

  /** Shows ``user``'s chat: their conversations, the models, their usage. */
  open(user) {
    this.close();
    this.store = new Conversations(this.db, user.uid);
    this.stopWatching = this.store.watch(
      (list) => this.showList(list),
      () => {
        ui.conversationsEmpty.hidden = false;
        ui.conversationsEmpty.textContent = "Past conversations are not available right now.";
      },
    );
    this.loadModels();
    this.usage.refresh();
  }

  /** Forgets the signed-out user: their stream, list, messages and usage. */
  close() {
    this.streaming?.abort();
    this.stopWatching?.();
    this.stopWatching = null;
    this.store = null;
    this.current = null;
    this.list.renaming = null;
    this.list.paint([], null);
    clearMessages();
    this.usage.clear();
    ui.status.textContent = "";
    ui.chatError.textContent = "";
  }

  async loadModels() {
    ui.model.replaceChildren(new Option("Default model", ""));
    try {
      const models = await this.api.models();
      ui.model.replaceChildren(...models.map((m, i) => new Option(m.id, m.id, i === 0, i === 0)));
    } catch {
      // The server's default model is used; the picker says so.
    }
  }

  setStreaming(controller) {
    this.streaming = controller;
    ui.send.disabled = Boolean(controller);
    ui.stop.disabled = !controller;
    ui.model.disabled = Boolean(controller);
    ui.conversations.toggleAttribute("data-busy", Boolean(controller));
    ui.messages.toggleAttribute("aria-busy", Boolean(controller));
  }

  async ask(question) {
    ui.chatError.textContent = "";
    delete ui.chatError.dataset.code;
    const model = ui.model.value;
    this.current ||= { id: null, created: false, title: titleFrom(withoutCommand(question)), messages: [] };
    const conversation = this.current;
    const asked = [...conversation.messages.map(({ role, content }) => ({ role, content })), { role: "user", content: question }];
    addMessage({ role: "user", content: question });
    const reply = newAnswer();
    const answer = addMessage(reply);
    answer.dataset.state = "streaming";
    let frame = 0; // one render per frame, however many events arrive in it
    const repaint = () => {
      frame ||= requestAnimationFrame(() => {
        frame = 0;
        paintAnswer(answer, reply);
      });
    };
    const controller = new AbortController();
    this.setStreaming(controller);
    ui.status.textContent = "Answering…";
    let outcome = "done";
    try {
      const response = await this.api.streamChat({ model, messages: asked }, { signal: controller.signal });
      await readAnswer(response, reply, repaint);
    } catch (error) {
      if (error.name === "AbortError") {
        outcome = "stopped";
      } else {
        outcome = "error";
        ui.chatError.textContent = describe(error);
        if (error instanceof Problem && error.status === 402) ui.chatError.dataset.code = "budget_exceeded";
      }
    } finally {
      cancelAnimationFrame(frame);
    }
    const stoppedByButton = document.activeElement === ui.stop;
    const lostFocus = stoppedByButton || !document.activeElement || document.activeElement === document.body;
    this.setStreaming(null);
    paintAnswer(answer, reply);
    answer.dataset.state = outcome;
    const said = Boolean(reply.content || reply.toolCalls.length);
    if (said) {
      if (!reply.toolCalls.length) delete reply.toolCalls;
      reply.state = outcome === "done" ? "done" : "stopped";
      conversation.messages = [...conversation.messages, { role: "user", content: question }, reply];
      this.save(conversation, model);
      announceAnswer(answer, outcome === "stopped" ? "(Stopped.)" : "");
    } else if (outcome !== "done") {
      answer.remove(); // nothing was said: the error (or the stop) is reported below instead
    }
    if (outcome === "error" && !said) ui.prompt.value ||= question; // to send again later
    ui.status.textContent = {
      done: "Answered.",
      stopped: this.stoppedMessage(reply),
      error: "The answer failed.",
    }[outcome];
    // Focus where the user goes on: Send after Stop, else the message box (unless they moved on).
    if (lostFocus) (stoppedByButton ? ui.send : ui.prompt).focus();
    this.usage.refresh();
  }

  // Functions-framework (as Cloud Functions) sees the page go and bills the part sent; the
  // Functions emulator does not pass the disconnect on, so there the answer goes on, billed whole.
  stoppedMessage(reply) {
    if (!reply.content) return "Stopped.";
    if (this.emulated && !endpoints().direct) {
      return "Stopped. Under the emulators the answer still runs to its end and is billed whole.";
    }
    return "Stopped. The part shown was billed.";
  }

  async save(conversation, model) {
    if (!this.store) return;
    const created = !conversation.created;
    conversation.id ||= this.store.newId();
    conversation.created = true;
    try {
      await this.store.save(conversation.id, {
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

  startNewChat() {
    if (this.streaming) return;
    this.current = null;
    clearMessages();
    ui.status.textContent = "";
    ui.chatError.textContent = "";
    this.list.paint(this.list.list, null);
    ui.prompt.focus();
  }

  openConversation(id) {
    const found = this.list.list.find((c) => c.id === id);
    if (!found || this.streaming) return;
    this.current = {
      id,
      created: true,
      listed: true,
      title: found.title,
      messages: (found.messages || []).map((m) => (m.toolCalls ? { ...m, toolCalls: parsedCalls(m.toolCalls) } : { ...m })),
    };
    clearMessages();
    for (const message of this.current.messages) addMessage(message);
    if ([...ui.model.options].some((o) => o.value === found.model)) ui.model.value = found.model;
    ui.status.textContent = "";
    ui.chatError.textContent = "";
    this.list.paint(this.list.list, id);
  }

  // The list as Firestore says it is now.
  showList(list) {
    const current = this.current;
    if (current) {
      if (list.some((c) => c.id === current.id)) current.listed = true;
      else if (current.listed && !this.streaming) {
        // Deleted (here or in another tab): what is shown is no longer kept.
        this.current = null;
        clearMessages();
      }
    }
    this.list.paint(list, this.current?.id ?? null);
  }

  renameConversation(id, title) {
    this.store.rename(id, title).catch(() => {
      ui.chatError.textContent = "The conversation could not be renamed. Try again.";
    });
    if (this.current?.id === id) this.current.title = title;
  }

  deleteConversation(conversation) {
    if (this.streaming && this.current?.id === conversation.id) return;
    if (!confirm(`Delete the conversation “${conversation.title}”? This cannot be undone.`)) return;
    if (this.current?.id === conversation.id) this.startNewChat();
    else ui.newChat.focus(); // the item, and its button, go
    this.store.remove(conversation.id).catch(() => {
      ui.chatError.textContent = "The conversation could not be deleted. Try again.";
    });
  }
}

// A leading command (the local model's "/echo ") is not part of the conversation's title.
function withoutCommand(question) {
  return question.replace(/^\/[a-z]+[ \n]+/i, "");
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

function parsedCalls(text) {
  try {
    const value = JSON.parse(text);
    return Array.isArray(value) ? value : [];
  } catch {
    return [];
  }
}
