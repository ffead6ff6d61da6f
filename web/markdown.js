// An answer's Markdown as safe DOM: marked (GFM) renders, DOMPurify sanitizes every render, and
// highlight.js colours code blocks (loaded with the first one: see highlightCode). Model output is data,
// never code: no script, handler, javascript: link, style or frame survives, and nothing is
// loaded from an answer (images become links; raw HTML images, media and frames are dropped).

import DOMPurify from "dompurify";
import { Marked } from "marked";

// highlight.js (code-highlight.js) once loaded; until then code blocks render plain, and the
// answers that have code wait to be rendered again (one repaint each, however often they asked).
let highlighter = null;
let loadingHighlighter = null;
const waitingForHighlighter = new Map(); // rendered answer -> its repaint

const escapeHtml = (text) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    // Highlighted here; the result goes through DOMPurify with the rest.
    code({ text, lang }) {
      const language = (lang || "").trim().split(/\s+/)[0].toLowerCase();
      const known = highlighter?.knownLanguage(language) || "";
      const body = known ? highlighter.highlight(text, known) : escapeHtml(text);
      const label = known || language;
      return `<pre data-language="${escapeHtml(label)}"><code class="hljs${known ? ` language-${known}` : ""}">${body}</code></pre>\n`;
    },
    // An image in an answer is a link to it, never a request from the page.
    image({ href, text }) {
      return `<a href="${escapeHtml(href || "")}">${escapeHtml(text ? `Image: ${text}` : "Image")}</a>`;
    },
  },
});

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: [
    "img", "picture", "source", "video", "audio", "track", "iframe", "frame", "object", "embed",
    "svg", "math", "style", "link", "meta", "base", "form", "input", "button", "textarea", "select",
  ],
  FORBID_ATTR: ["style", "srcset", "background", "poster", "ping", "action", "formaction", "id", "name"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    if (node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  }
});

/** The sanitized DOM of ``text`` (Markdown), ready to put in the page. */
export function renderMarkdown(text) {
  const html = marked.parse(text, { async: false }).trim(); // no stray text node after the last block
  const fragment = DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true });
  for (const pre of fragment.querySelectorAll("pre")) addCodeBar(pre);
  return fragment;
}

/**
 * Calls ``repaint`` once highlight.js has loaded if ``rendered`` (a rendered answer) has code to
 * colour: the first code block loads it; later renders colour their code as they go.
 */
export function highlightCode(rendered, repaint) {
  if (highlighter || !rendered.querySelector("pre code")) return;
  waitingForHighlighter.set(rendered, repaint);
  loadingHighlighter ||= import("./code-highlight.js").then(
    (module) => {
      highlighter = module;
      for (const waiting of waitingForHighlighter.values()) waiting();
      waitingForHighlighter.clear();
    },
    () => (loadingHighlighter = null), // not loaded (offline, say): plain code; the next one tries again
  );
}

// A bar above the code with its language and a Copy button: never over the code's text.
function addCodeBar(pre) {
  const bar = document.createElement("div");
  bar.className = "code-bar";
  const language = pre.dataset.language;
  if (language) {
    const label = document.createElement("span");
    label.className = "language";
    label.textContent = language;
    bar.append(label);
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy";
  button.setAttribute("aria-label", `Copy code${language ? ` (${language})` : ""}`);
  bar.append(button);
  pre.before(bar);
  const block = document.createElement("div");
  block.className = "code-block";
  bar.before(block);
  block.append(bar, pre);
}

// One listener for every copy button, present and future (answers are re-rendered as they grow).
export function handleCopyClicks(container) {
  container.addEventListener("click", async (event) => {
    const button = event.target.closest?.("button.copy");
    if (!button) return;
    const code = button.closest(".code-block").querySelector("pre code");
    try {
      await navigator.clipboard.writeText(code ? code.textContent : "");
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => (button.textContent = "Copy"), 2000);
  });
}
