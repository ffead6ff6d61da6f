// Where the page's Firebase configuration comes from.
//
// Deployed on Firebase Hosting, "/__/firebase/init.json" holds the project's web configuration.
// The Hosting emulator serves it too (a demo project's configuration offline), and its
// "/__/firebase/init.js?useEmulator=true" names the emulators that run beside it: the page
// connects to the Auth emulator named there. Served some other way from this machine, the page
// falls back to a demo project and the Auth emulator on its default port.
//
// Firestore, under the emulators, is gcloud's Firestore emulator (firebase-tools' own one needs a
// download), which the Hosting emulator does not know about: scripts/run starts it on
// 127.0.0.1:8080; localStorage "chat.firestoreEmulator" ("host:port") names another one.

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);
const DEMO_CONFIG = { apiKey: "fake-api-key", projectId: "demo-chat", authDomain: "localhost" };
const DEFAULT_AUTH_EMULATOR = "http://127.0.0.1:9099";
const DEFAULT_FIRESTORE_EMULATOR = "127.0.0.1:8080";

export async function firebaseSetup() {
  const local = LOCAL_HOSTS.has(location.hostname);
  const [config, emulators] = await Promise.all([fetchJson("/__/firebase/init.json"), local && hostingEmulators()]);
  if (emulators?.auth) {
    return {
      config: config ?? DEMO_CONFIG,
      authEmulatorUrl: `http://${emulators.auth.hostAndPort}`,
      firestoreEmulator: firestoreEmulator(emulators),
    };
  }
  if (config) return { config, authEmulatorUrl: null, firestoreEmulator: null };
  if (local) {
    return { config: DEMO_CONFIG, authEmulatorUrl: DEFAULT_AUTH_EMULATOR, firestoreEmulator: firestoreEmulator({}) };
  }
  throw new Error("This page has no Firebase configuration: serve it with Firebase Hosting.");
}

// {host, port} of the Firestore emulator the page should use.
function firestoreEmulator(emulators) {
  const named = emulators.firestore?.hostAndPort || localStorage.getItem("chat.firestoreEmulator");
  const [, host, port] = /^(.*):(\d+)$/.exec(named || DEFAULT_FIRESTORE_EMULATOR) || [];
  return host ? { host: host.replace(/^\[|\]$/g, ""), port: Number(port) } : null;
}

async function fetchJson(url) {
  try {
    const response = await fetch(url);
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

// The emulators the Hosting emulator reports in its init script ("var firebaseEmulators = {...};"),
// read as JSON rather than run: the script expects the namespaced SDK, which this page does not load.
async function hostingEmulators() {
  try {
    const response = await fetch("/__/firebase/init.js?useEmulator=true");
    if (!response.ok) return null;
    const match = /var firebaseEmulators = (\{[\s\S]*?\});/.exec(await response.text());
    return match ? JSON.parse(match[1]) : null;
  } catch {
    return null;
  }
}
