// The signed-in user's conversations in Firestore: users/{uid}/conversations/{id} holding the
// title (from the first question), the model, the messages and the created/updated times.
// firestore.rules lets only the owner read or write them, and bounds every field.

import {
  collection,
  deleteDoc,
  doc,
  limit,
  onSnapshot,
  orderBy,
  query,
  serverTimestamp,
  setDoc,
  updateDoc,
} from "firebase/firestore";

export const LIST_LIMIT = 50; // the side list shows the most recently updated ones
export const TITLE_LIMIT = 80; // characters (firestore.rules allows up to 200)

export function titleFrom(question) {
  const line = question.trim().split("\n")[0].trim();
  return line.length > TITLE_LIMIT ? `${line.slice(0, TITLE_LIMIT - 1)}…` : line || "New chat";
}

export class Conversations {
  constructor(db, uid) {
    this.db = db;
    this.folder = collection(db, "users", uid, "conversations");
  }

  newId() {
    return doc(this.folder).id;
  }

  /** Calls ``paint(list)`` with [{id, title, model, messages, updatedAt, pending}], newest first. */
  watch(paint, fail) {
    const newest = query(this.folder, orderBy("updatedAt", "desc"), limit(LIST_LIMIT));
    return onSnapshot(
      newest,
      { includeMetadataChanges: true },
      (snapshot) =>
        paint(
          snapshot.docs.map((d) => ({
            id: d.id,
            ...d.data({ serverTimestamps: "estimate" }),
            pending: d.metadata.hasPendingWrites,
          })),
        ),
      fail,
    );
  }

  /** Writes a conversation's messages: created with its first exchange, replaced (append-only) after. */
  save(id, { created, title, model, messages }) {
    const ref = doc(this.folder, id);
    if (created) {
      return setDoc(ref, { title, model, messages, createdAt: serverTimestamp(), updatedAt: serverTimestamp() });
    }
    return updateDoc(ref, { model, messages, updatedAt: serverTimestamp() });
  }

  rename(id, title) {
    return updateDoc(doc(this.folder, id), { title, updatedAt: serverTimestamp() });
  }

  remove(id) {
    return deleteDoc(doc(this.folder, id));
  }
}
