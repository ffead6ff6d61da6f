// The open conversation's messages: the user's as plain text, answers as sanitized Markdown with
// their tool calls and cost. An answer is re-rendered as it streams; screen readers hear it once,
// when it is complete, from a live region of its own (not every frame of the list).

import { answerCost } from "./format.js";
import { highlightCode, renderMarkdown } from "./markdown.js";
import { el, ui } from "./page.js";

export function clearMessages() {
  ui.messages.replaceChildren();
  ui.announcer.replaceChildren();
}

/** Adds a message to the list and brings it into view; returns its item. */
export function addMessage(message) {
  const item = el("li", "", { class: `message ${message.role}` });
  item.append(el("span", message.role === "user" ? "You" : "Assistant", { class: "who" }));
  if (message.role === "user") {
    item.append(el("p", message.content, { class: "text" })); // the user's own words: never Markdown
  } else {
    item.append(el("div", "", { class: "text markdown" }), el("div", "", { class: "tool-calls" }), el("p", "", { class: "cost" }));
    paintAnswer(item, message);
    if (message.state) item.dataset.state = message.state;
  }
  ui.messages.append(item);
  followTo(item);
  return item;
}

// Re-renders an answer (all of it: Markdown changes meaning as it grows), one synchronous
// replacement per call, so nothing flickers; the view follows the answer only while its end is
// in view (the reader has not scrolled up to read).
export function paintAnswer(item, message) {
  const follow = item.getBoundingClientRect().bottom <= visibleBottom() + 48;
  const text = item.querySelector(".text");
  text.replaceChildren(renderMarkdown(message.content));
  highlightCode(text, () => paintAnswer(item, message));
  item.querySelector(".tool-calls").replaceChildren(...(message.toolCalls || []).map(toolCallBlock));
  item.querySelector(".cost").textContent = answerCost(message);
  if (follow) followTo(item);
}

// The composer stays in view at the bottom of the window (CSS sticky): what is above it is what
// the reader sees of the messages.
function visibleBottom() {
  return Math.min(window.innerHeight, ui.composer.getBoundingClientRect().top);
}

function followTo(item) {
  const hidden = item.getBoundingClientRect().bottom - visibleBottom();
  if (hidden > 0) window.scrollBy(0, Math.ceil(hidden) + 8);
}

/** Says a finished answer to screen readers once: its text, without buttons or the cursor. */
export function announceAnswer(item, note = "") {
  const text = item.querySelector(".text").cloneNode(true);
  for (const control of text.querySelectorAll("button, .code-bar")) control.remove();
  for (const block of text.querySelectorAll(BLOCKS)) block.after(" "); // "Title" "Text", not "TitleText"
  const calls = [...item.querySelectorAll(".tool-call .name")].map((name) => `Tool call: ${name.textContent}.`);
  const words = text.textContent.replace(/\s+/g, " ").trim();
  const said = [words && `Answer: ${words}`, ...calls, note].filter(Boolean).join(" ");
  ui.announcer.replaceChildren(el("p", said));
}

const BLOCKS = "p, li, h1, h2, h3, h4, h5, h6, pre, blockquote, tr, th, td, br";

function toolCallBlock(call) {
  const block = el("div", "", { class: "tool-call" });
  block.append(
    el("span", "Tool call", { class: "label" }),
    " ",
    el("code", call.name || "(unnamed)", { class: "name" }),
    el("pre", prettyJson(call.arguments), { class: "arguments" }),
  );
  return block;
}

function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text || ""; // still streaming, or not JSON: as sent
  }
}
