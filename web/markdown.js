// An answer's Markdown as safe DOM: marked (GFM) renders, DOMPurify sanitizes every render, and
// highlight.js colours code blocks (a short list of languages, bundled). Model output is data,
// never code: no script, handler, javascript: link, style or frame survives, and nothing is
// loaded from an answer (images become links; raw HTML images, media and frames are dropped).

import DOMPurify from "dompurify";
import { Marked } from "marked";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import css from "highlight.js/lib/languages/css";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import python from "highlight.js/lib/languages/python";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

for (const [name, language] of Object.entries({ bash, css, javascript, json, python, sql, typescript, xml, yaml })) {
  hljs.registerLanguage(name, language);
}

const escapeHtml = (text) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    // Highlighted here; the result goes through DOMPurify with the rest.
    code({ text, lang }) {
      const language = (lang || "").trim().split(/\s+/)[0].toLowerCase();
      const known = language && hljs.getLanguage(language) ? language : "";
      const body = known ? hljs.highlight(text, { language: known, ignoreIllegals: true }).value : escapeHtml(text);
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
  for (const pre of fragment.querySelectorAll("pre")) addCopyButton(pre);
  return fragment;
}

function addCopyButton(pre) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy";
  button.setAttribute("aria-label", `Copy code${pre.dataset.language ? ` (${pre.dataset.language})` : ""}`);
  pre.prepend(button);
}

// One listener for every copy button, present and future (answers are re-rendered as they grow).
export function handleCopyClicks(container) {
  container.addEventListener("click", async (event) => {
    const button = event.target.closest?.("button.copy");
    if (!button) return;
    const code = button.parentElement.querySelector("code");
    try {
      await navigator.clipboard.writeText(code ? code.textContent : "");
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => (button.textContent = "Copy"), 2000);
  });
}
