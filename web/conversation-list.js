// The side list of the user's conversations, newest first: open one, rename it in place, delete
// it. It paints what it is given and reports what the user asks for; the chat (chat.js) decides.

import { el, ui } from "./page.js";

export class ConversationList {
  /** ``on``: {open(id), rename(id, title), remove(conversation)}. */
  constructor(on) {
    this.on = on;
    this.list = []; // as last painted: [{id, title, pending, ...}]
    this.currentId = null;
    this.renaming = null; // {id, form} while a title is being edited
    ui.conversationList.addEventListener("scroll", () => this.showScrollCue(), { passive: true });
    new ResizeObserver(() => this.showScrollCue()).observe(ui.conversationList);
  }

  paint(list = this.list, currentId = this.currentId) {
    this.list = list;
    this.currentId = currentId;
    // A repaint replaces the items: focus goes to the new item's same button, or back to the
    // title being edited (its form is moved, which blurs it), where the user left the caret.
    const focused = this.focusedControl();
    const editing = this.renaming?.form.contains(document.activeElement) ? document.activeElement : null;
    const caret = editing?.tagName === "INPUT" ? [editing.selectionStart, editing.selectionEnd] : null;
    ui.conversationList.replaceChildren(...list.map((conversation) => this.item(conversation)));
    ui.conversationsEmpty.hidden = list.length > 0;
    if (focused) this.focus(focused.id, focused.control);
    if (editing?.isConnected) {
      editing.focus();
      if (caret) editing.setSelectionRange(...caret);
    }
    this.showScrollCue();
  }

  item(conversation) {
    const item = el("li");
    item.dataset.id = conversation.id;
    item.toggleAttribute("data-pending", Boolean(conversation.pending));
    if (this.currentId === conversation.id) item.setAttribute("aria-current", "true");
    if (this.renaming?.id === conversation.id) {
      item.append(this.renaming.form);
      return item;
    }
    const title = conversation.title || "Untitled";
    const open = el("button", title, { type: "button", class: "open" });
    open.addEventListener("click", () => this.on.open(conversation.id));
    const rename = el("button", "Rename", { type: "button", class: "rename", "aria-label": `Rename “${title}”` });
    rename.addEventListener("click", () => this.startRename(conversation));
    const remove = el("button", "Delete", { type: "button", class: "delete", "aria-label": `Delete “${title}”` });
    remove.addEventListener("click", () => this.on.remove(conversation));
    item.append(open, rename, remove);
    return item;
  }

  startRename(conversation) {
    const form = el("form", "", { class: "rename-form" });
    const input = el("input", "", { type: "text", maxlength: "200", "aria-label": "New title", required: "" });
    input.value = conversation.title || "";
    const save = el("button", "Save", { type: "submit" });
    const cancel = el("button", "Cancel", { type: "button", class: "secondary" });
    const actions = el("div", "", { class: "rename-actions" });
    actions.append(save, cancel);
    form.append(input, actions);
    // Done either way: back to the list, focus on the item's Rename button.
    const done = () => {
      this.renaming = null;
      this.paint();
      this.focus(conversation.id, "rename");
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const title = input.value.trim().slice(0, 200);
      if (!title) return;
      this.on.rename(conversation.id, title);
      done();
    });
    cancel.addEventListener("click", done);
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") done();
    });
    this.renaming = { id: conversation.id, form };
    this.paint();
    input.focus();
    input.select();
  }

  /** {id, control} of the list's focused button ("open", "rename", "delete"), if one is. */
  focusedControl() {
    const active = document.activeElement;
    if (!active || !ui.conversationList.contains(active) || active.tagName !== "BUTTON") return null;
    const control = ["open", "rename", "delete"].find((name) => active.classList.contains(name));
    return control ? { id: active.closest("li").dataset.id, control } : null;
  }

  focus(id, control) {
    const item = [...ui.conversationList.children].find((li) => li.dataset.id === id);
    item?.querySelector(`button.${control}`)?.focus();
  }

  // On a short screen the list is a scrolling box: a cue at its foot says there is more below.
  showScrollCue() {
    const list = ui.conversationList;
    const more = list.scrollTop + list.clientHeight < list.scrollHeight - 1;
    ui.conversations.toggleAttribute("data-more", more);
  }
}
