// The sign-in form: email and password, to sign in or create an account (Firebase Auth), its
// errors in words, and the focus put back on the field to fix.

import { createUserWithEmailAndPassword, signInWithEmailAndPassword } from "firebase/auth";

import { ui } from "./page.js";

// Firebase Auth's error codes: the message, and the field the user has to change.
const AUTH_ERRORS = {
  "auth/email-already-in-use": ["An account with this email already exists. Sign in instead.", "email"],
  "auth/invalid-credential": ["Wrong email or password.", "password"],
  "auth/wrong-password": ["Wrong email or password.", "password"],
  "auth/user-not-found": ["No account with this email. Create one first.", "email"],
  "auth/invalid-email": ["That is not a valid email address.", "email"],
  "auth/weak-password": ["Choose a longer password (at least 6 characters).", "password"],
  "auth/missing-password": ["Enter a password.", "password"],
  "auth/too-many-requests": ["Too many attempts. Wait a moment and try again.", "password"],
  "auth/network-request-failed": ["Could not reach the sign-in service. Check your connection.", "password"],
  "auth/user-disabled": ["This account is disabled.", "email"],
};

export function handleSignIn(auth) {
  ui.signInForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const action = event.submitter?.value === "sign-up" ? createUserWithEmailAndPassword : signInWithEmailAndPassword;
    const buttons = ui.signInForm.querySelectorAll("button");
    ui.signInError.textContent = "";
    for (const button of buttons) button.disabled = true;
    try {
      await action(auth, ui.email.value.trim(), ui.password.value);
      ui.password.value = "";
    } catch (error) {
      const [message, field] = AUTH_ERRORS[error.code] || ["Sign-in failed. Try again.", "password"];
      ui.signInError.textContent = message;
      for (const button of buttons) button.disabled = false;
      // The button that was pressed disabled itself: focus goes to the field to correct.
      ui[field].focus();
      ui[field].select();
      return;
    }
    for (const button of buttons) button.disabled = false;
  });
}
