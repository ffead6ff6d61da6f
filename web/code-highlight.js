// highlight.js with the languages answers are highlighted in (a short list, bundled). Loaded by
// markdown.js on the first code block the page shows, not with the page.

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

/** ``language``'s name if highlight.js knows it (an alias gives the language's own), else "". */
export function knownLanguage(language) {
  return language && hljs.getLanguage(language) ? language : "";
}

/** ``text`` highlighted as HTML (spans, the text escaped); ``language`` must be known. */
export function highlight(text, language) {
  return hljs.highlight(text, { language, ignoreIllegals: true }).value;
}
