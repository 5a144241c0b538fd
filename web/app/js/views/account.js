// Log in and sign up. A signed-in user is sent back where they came from (`?next=`).

import { describeError } from "../api.js";
import { field, h, messageArea, replace, setMessage } from "../dom.js";
import { signIn, signUp } from "../session.js";

export function accountView(main, { args, params }) {
  const signingUp = args[0] === "signup";
  const next = params.get("next") || "#/";
  const login = h("input", { id: "login", name: "login", autocomplete: "username", required: true });
  const name = h("input", { id: "display-name", name: "display_name", autocomplete: "nickname", required: true, maxlength: 64 });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: signingUp ? "new-password" : "current-password", required: true, minlength: signingUp ? 12 : null });
  const message = messageArea("account-message");
  const submit = h("button", { type: "submit" }, signingUp ? "Create account" : "Log in");
  const form = h("form", { class: "account", "aria-labelledby": "account-title" },
    field("Email or username", login),
    signingUp ? field("Display name", name, "Shown to other people.") : null,
    field("Password", password, signingUp ? "At least 12 characters." : null),
    submit, message);
  replace(main,
    h("h1", { id: "account-title" }, signingUp ? "Sign up" : "Log in"),
    form,
    h("p", {}, signingUp ? "Already have an account? " : "New here? ",
      h("a", { href: signingUp ? "#/login" : "#/signup" }, signingUp ? "Log in" : "Sign up")));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    setMessage(message, signingUp ? "Creating your account…" : "Logging in…");
    try {
      if (signingUp) await signUp({ login: login.value.trim(), displayName: name.value.trim(), password: password.value });
      else await signIn(login.value.trim(), password.value);
      location.hash = next;
    } catch (error) {
      setMessage(message, error.code === "invalid_credentials" ? "Wrong login or password." : describeError(error), "error");
    } finally {
      submit.disabled = false;
    }
  });
  login.focus();
}
