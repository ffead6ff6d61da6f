// Firebase App Check for the chat page: each call carries a token that proves it comes from this
// app (reCAPTCHA Enterprise), so the chat function can refuse scripts (CHAT_APP_CHECK=enforce).
//
// On only when the page is built with a site key: APP_CHECK_SITE_KEY in the environment of
// scripts/setup (or of `firebase deploy`, whose predeploy runs it); the page then loads this
// module (and the App Check SDK) after its first paint. Under the emulators the debug provider
// stands in for reCAPTCHA: localStorage "chat.appCheckDebugToken" holds a debug token registered
// in the Firebase console (without one, the SDK makes one and prints it for you to register).
// Models the server lists with `limited_use_app_check` get a fresh limited-use token per call:
// the server consumes it (replay protection).

import { getLimitedUseToken, getToken, initializeAppCheck, ReCaptchaEnterpriseProvider } from "firebase/app-check";

const HEADER = "X-Firebase-AppCheck";

export function startAppCheck(app, siteKey, { emulated = false } = {}) {
  if (emulated) self.FIREBASE_APPCHECK_DEBUG_TOKEN = localStorage.getItem("chat.appCheckDebugToken") || true;
  return new AppCheck(initializeAppCheck(app, { provider: new ReCaptchaEnterpriseProvider(siteKey), isTokenAutoRefreshEnabled: true }));
}

class AppCheck {
  constructor(appCheck) {
    this.appCheck = appCheck;
    this.limitedUseModels = new Set(); // "" is the default model
  }

  /** The body of GET /v1/models: remembers which models want a limited-use token. */
  noteModels(list) {
    (list?.data ?? []).forEach((model, i) => {
      if (!model.limited_use_app_check) return;
      this.limitedUseModels.add(model.id);
      if (i === 0) this.limitedUseModels.add("");
    });
  }

  // The headers that carry this app's App Check token for a fetch() with these options ({} when
  // the token is unavailable: a server that enforces App Check then answers with a 401 the page
  // shows in words). A JSON body's model picks a limited-use token when that model wants one.
  async headers(init = {}) {
    try {
      const { token } = this.limitedUseModels.has(modelOf(init.body))
        ? await getLimitedUseToken(this.appCheck)
        : await getToken(this.appCheck);
      return { [HEADER]: token };
    } catch {
      return {};
    }
  }
}

function modelOf(body) {
  try {
    return typeof body === "string" ? (JSON.parse(body).model ?? "") : null;
  } catch {
    return null;
  }
}
