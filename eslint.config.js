// ESLint (flat config) for the project's JavaScript: the chat page's source (web/, browser ES
// modules, bundled by esbuild) and the Node scripts the tests run (tests/**/*.mjs). scripts/test
// runs it next to ruff.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", ".venv/", "build/", "public/js/", "test-artifacts/", "bench/.proxy-venv/"] },
  js.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      eqeqeq: ["error", "always"],
      "no-var": "error",
      "prefer-const": "error",
      "no-console": "error", // the page never logs: no token, prompt or answer reaches the console
      "no-unused-vars": ["error", { caughtErrors: "none" }],
    },
  },
  {
    files: ["web/**/*.js"],
    languageOptions: {
      sourceType: "module",
      globals: { ...globals.browser, __APP_CHECK_SITE_KEY__: "readonly" },
    },
  },
  {
    files: ["tests/**/*.mjs"],
    languageOptions: { sourceType: "module", globals: { ...globals.node, ...globals.browser } },
    rules: { "no-console": "off" }, // these scripts report to the test that runs them on stdout
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "module" },
  },
];
