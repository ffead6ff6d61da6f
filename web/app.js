// The chat page's entry: Firebase sign-in first, and nothing the sign-in form does not need.
// The chat (chat.js, with Firestore and Markdown), App Check and highlight.js are separate
// chunks (scripts/build-page), loaded once the form is up or the user is signed in.
// The page never logs: no token, prompt or answer reaches the console.

import { initializeApp } from "firebase/app";
import {
  browserLocalPersistence,
  connectAuthEmulator,
  indexedDBLocalPersistence,
  initializeAuth,
  onAuthStateChanged,
  signOut,
} from "firebase/auth";

import { Api } from "./api.js";
import { firebaseSetup } from "./firebase-setup.js";
import { ui } from "./page.js";
import { handleSignIn } from "./sign-in.js";

// Replaced by esbuild's --define (scripts/build-page); "" builds a page without App Check.
const SITE_KEY = typeof __APP_CHECK_SITE_KEY__ === "string" ? __APP_CHECK_SITE_KEY__ : "";

async function start() {
  const { config, authEmulatorUrl, firestoreEmulator } = await firebaseSetup();
  const emulated = Boolean(authEmulatorUrl);
  const app = initializeApp(config);
  const auth = initializeAuth(app, { persistence: [indexedDBLocalPersistence, browserLocalPersistence] });
  if (authEmulatorUrl) connectAuthEmulator(auth, authEmulatorUrl, { disableWarnings: true });

  // Each loaded once, when first asked for.
  let appCheck = null;
  const loadAppCheck = () =>
    (appCheck ||= import("./app-check.js").then((module) => module.startAppCheck(app, SITE_KEY, { emulated })));
  const api = new Api(auth, SITE_KEY ? loadAppCheck : null);
  let chat = null;
  const loadChat = () =>
    (chat ||= import("./chat.js").then(({ Chat }) => new Chat({ app, api, emulated, firestoreEmulator })));

  handleSignIn(auth);
  ui.signOut.addEventListener("click", () => signOut(auth));

  let shown = 0; // the latest auth state; an older one still loading the chat must not show it
  onAuthStateChanged(auth, async (user) => {
    const mine = ++shown;
    if (!user) {
      chat?.then((loaded) => loaded.close()).catch(() => {});
      showSignedIn(null);
      ui.email.focus();
      // While the user types: what the chat needs, so it is there when they are signed in.
      requestIdle(() => {
        loadChat().catch(() => (chat = null));
        if (SITE_KEY) loadAppCheck().catch(() => {});
      });
      return;
    }
    if (SITE_KEY) loadAppCheck().catch(() => {});
    let loaded;
    try {
      loaded = await loadChat();
    } catch {
      chat = null; // offline, say: signing in again tries again
      ui.loading.textContent = "The chat could not be loaded. Check your connection and reload the page.";
      return;
    }
    if (mine !== shown) return;
    showSignedIn(user);
    loaded.open(user);
    ui.prompt.focus();
  });
  document.body.dataset.ready = "true";
}

function showSignedIn(user) {
  ui.loading.hidden = true;
  ui.signIn.hidden = Boolean(user);
  ui.layout.hidden = !user;
  ui.chat.hidden = !user; // one <main> at a time
  ui.account.hidden = !user;
  ui.who.textContent = user ? user.email || "signed in" : "";
  // The skip link leads to what is on the page: the message box, or the sign-in form.
  ui.skip.href = user ? "#prompt" : "#email";
  ui.skip.textContent = user ? "Skip to the message box" : "Skip to the sign-in form";
}

function requestIdle(work) {
  if (self.requestIdleCallback) requestIdleCallback(work, { timeout: 2000 });
  else setTimeout(work, 200);
}

start().catch((error) => {
  ui.loading.textContent = error instanceof Error ? error.message : "The page could not start.";
  ui.loading.setAttribute("role", "alert");
});
