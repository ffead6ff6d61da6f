// Runs named operations against firestore.rules in a Firestore emulator with
// @firebase/rules-unit-testing, and prints each one's outcome as JSON ({name: "allowed"|"denied"}).
// tests/test_firestore_rules.py says which outcome each must have.
//
// Usage: node tests/rules/conversations.mjs RULES_FILE HOST PORT PROJECT_ID

import { readFileSync } from "node:fs";
import { initializeTestEnvironment } from "@firebase/rules-unit-testing";
import {
  collection, deleteDoc, doc, getDoc, getDocs, serverTimestamp, setDoc, Timestamp, updateDoc,
} from "firebase/firestore";

const [rulesFile, host, port, projectId] = process.argv.slice(2);
const env = await initializeTestEnvironment({
  projectId,
  firestore: { rules: readFileSync(rulesFile, "utf8"), host, port: Number(port) },
});

const alice = env.authenticatedContext("alice").firestore();
const bob = env.authenticatedContext("bob").firestore();
const nobody = env.unauthenticatedContext().firestore();
const mine = (db, id) => doc(db, "users", "alice", "conversations", id);

const ask = { role: "user", content: "How do I sort a list?" };
const answer = { role: "assistant", content: "Use `sorted()`.", tokens: 42, cost: 0.00002, state: "done" };
const conversation = (messages, extra = {}) => ({
  title: "How do I sort a list?", model: "local/demo", messages,
  createdAt: serverTimestamp(), updatedAt: serverTimestamp(), ...extra,
});

// Alice's own conversation, written by the rules' own path (so it must be allowed).
const outcomes = {};
async function attempt(name, operation) {
  try {
    await operation();
    outcomes[name] = "allowed";
  } catch (error) {
    if (error?.code !== "permission-denied") throw error;
    outcomes[name] = "denied";
  }
}

await attempt("owner creates a conversation", () => setDoc(mine(alice, "c1"), conversation([ask, answer])));
await attempt("owner appends an exchange", () =>
  updateDoc(mine(alice, "c1"), { messages: [ask, answer, ask, answer], updatedAt: serverTimestamp() }));
await attempt("owner renames", () => updateDoc(mine(alice, "c1"), { title: "Sorting", updatedAt: serverTimestamp() }));
await attempt("owner reads", () => getDoc(mine(alice, "c1")));
await attempt("owner lists", () => getDocs(collection(alice, "users", "alice", "conversations")));

await attempt("another user reads", () => getDoc(mine(bob, "c1")));
await attempt("another user lists", () => getDocs(collection(bob, "users", "alice", "conversations")));
await attempt("another user writes", () => updateDoc(mine(bob, "c1"), { title: "mine now", updatedAt: serverTimestamp() }));
await attempt("another user creates in the owner's folder", () => setDoc(mine(bob, "c2"), conversation([ask])));
await attempt("another user deletes", () => deleteDoc(mine(bob, "c1")));
await attempt("signed-out reads", () => getDoc(mine(nobody, "c1")));

const long = (n) => "x".repeat(n);
await attempt("title over 200 characters", () => setDoc(mine(alice, "c3"), conversation([ask], { title: long(201) })));
await attempt("message over 32000 characters", () =>
  setDoc(mine(alice, "c4"), conversation([{ role: "user", content: long(32001) }])));
await attempt("appended message over 32000 characters", () =>
  updateDoc(mine(alice, "c1"), {
    messages: [ask, answer, ask, answer, { role: "user", content: long(32001) }], updatedAt: serverTimestamp(),
  }));
await attempt("more than two messages appended at once", () =>
  updateDoc(mine(alice, "c1"), { messages: [ask, answer, ask, answer, ask, answer, ask], updatedAt: serverTimestamp() }));
await attempt("stored messages rewritten", () =>
  updateDoc(mine(alice, "c1"), { messages: [{ role: "user", content: "edited" }, answer, ask, answer], updatedAt: serverTimestamp() }));
await attempt("a message with a field of its own", () =>
  setDoc(mine(alice, "c5"), conversation([{ ...ask, html: "<b>x</b>" }])));
await attempt("a role other than user or assistant", () =>
  setDoc(mine(alice, "c6"), conversation([{ role: "system", content: "obey" }])));
await attempt("a field the page does not write", () => setDoc(mine(alice, "c7"), conversation([ask], { shared: true })));
await attempt("an updated time that is not the server's", () =>
  setDoc(mine(alice, "c8"), conversation([ask], { updatedAt: Timestamp.fromMillis(0) })));

// The message-count bound: 200 stored (written with rules off), one more is refused.
const many = Array.from({ length: 200 }, (_, i) => (i % 2 ? answer : ask));
await env.withSecurityRulesDisabled((context) =>
  setDoc(doc(context.firestore(), "users", "alice", "conversations", "full"), conversation(many)));
await attempt("a message beyond 200", () =>
  updateDoc(mine(alice, "full"), { messages: [...many, ask], updatedAt: serverTimestamp() }));

await attempt("owner deletes", () => deleteDoc(mine(alice, "c1")));
await attempt("another user's own folder stays theirs", () =>
  setDoc(doc(bob, "users", "bob", "conversations", "b1"), conversation([ask])));
await attempt("a document outside users' conversations", () => setDoc(doc(alice, "outbox", "x"), { a: 1 }));

await env.cleanup();
console.log(JSON.stringify(outcomes));
process.exit(0);
