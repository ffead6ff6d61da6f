// Firebase App Check for the chat page: each call carries a token that proves it comes from this
// app (reCAPTCHA Enterprise), so the chat function can refuse scripts (CHAT_APP_CHECK=enforce).
//
// On only when the page is built with a site key: APP_CHECK_SITE_KEY in the environment of
// scripts/setup (or of `firebase deploy`, whose predeploy runs it). Under the emulators the debug
// provider stands in for reCAPTCHA: localStorage "chat.appCheckDebugToken" holds a debug token
// registered in the Firebase console (without one, the SDK makes one and prints it for you to
// register). Models the server lists with `limited_use_app_check` get a fresh limited-use token
// per call: the server consumes it (replay protection).

import { getLimitedUseToken, getToken, initializeAppCheck, ReCaptchaEnterpriseProvider } from "firebase/app-check";

// Replaced by esbuild's --define (scripts/setup); "" builds a page without App Check.
const SITE_KEY = typeof __APP_CHECK_SITE_KEY__ === "string" ? __APP_CHECK_SITE_KEY__ : "";
const HEADER = "X-Firebase-AppCheck";

let appCheck = null;
const limitedUseModels = new Set();

export function setupAppCheck(app, { emulated = false } = {}) {
  if (!SITE_KEY) return;
  if (emulated) self.FIREBASE_APPCHECK_DEBUG_TOKEN = localStorage.getItem("chat.appCheckDebugToken") || true;
  appCheck = initializeAppCheck(app, {
    provider: new ReCaptchaEnterpriseProvider(SITE_KEY),
    isTokenAutoRefreshEnabled: true,
  });
}

// The body of GET /v1/models: remembers which models want a limited-use token ("" = the default).
export function noteModels(list) {
  (list?.data ?? []).forEach((model, i) => {
    if (!model.limited_use_app_check) return;
    limitedUseModels.add(model.id);
    if (i === 0) limitedUseModels.add("");
  });
}

// The headers that carry this app's App Check token for a fetch() with these options ({} when
// App Check is off or unavailable: a server that enforces it then answers with a 401 the page
// shows in words). A JSON body's model picks a limited-use token when that model wants one.
export async function appCheckHeaders(init = {}) {
  if (!appCheck) return {};
  try {
    const { token } = limitedUseModels.has(modelOf(init.body))
      ? await getLimitedUseToken(appCheck)
      : await getToken(appCheck);
    return { [HEADER]: token };
  } catch {
    return {};
  }
}

function modelOf(body) {
  try {
    return typeof body === "string" ? (JSON.parse(body).model ?? "") : null;
  } catch {
    return null;
  }
}
