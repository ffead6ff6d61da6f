// The page's elements (public/index.html), found once, and a small helper to make new ones.

const $ = (id) => document.getElementById(id);

export const ui = {
  skip: $("skip"),
  loading: $("loading"),
  account: $("account"),
  who: $("who"),
  signOut: $("sign-out"),
  signIn: $("sign-in"),
  signInForm: $("sign-in-form"),
  email: $("email"),
  password: $("password"),
  signInError: $("sign-in-error"),
  layout: $("layout"),
  chat: $("chat"),
  messages: $("messages"),
  announcer: $("announcer"),
  composer: $("composer"),
  model: $("model"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  status: $("status"),
  chatError: $("chat-error"),
  usage: $("usage"),
  usageBody: $("usage-body"),
  conversations: $("conversations"),
  newChat: $("new-chat"),
  conversationList: $("conversation-list"),
  conversationsEmpty: $("conversations-empty"),
};

/** A new ``tag`` element holding ``text``, with these attributes. */
export function el(tag, text = "", attrs = {}) {
  const element = document.createElement(tag);
  element.textContent = text;
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, value);
  return element;
}
