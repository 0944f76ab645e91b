// The demo page's script. It never sees the session id (that cookie is HttpOnly); it only
// reads the CSRF token and echoes it in the X-CSRF-Token header on unsafe requests.
"use strict";

const CSRF_COOKIE = "csrf_token";
let csrfFromLogin = null; // fallback if the cookie cannot be read

function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

function csrfToken() {
  return readCookie(CSRF_COOKIE) || csrfFromLogin;
}

function describe(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((e) => e.msg).join("; ");
  return "HTTP " + status;
}

// One place for every request: same-origin cookies, JSON out, and the CSRF header when asked.
async function call(method, path, { json, form, csrf = false } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  if (csrf) {
    const token = csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
  }
  const response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  const data = await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, data };
}

function say(text, kind = "info") {
  const el = document.getElementById("message");
  el.textContent = text;
  el.dataset.kind = kind;
}

let pendingChallenge = null; // a sign-in waiting for its second step

function showSignedOut() {
  const status = document.getElementById("status");
  status.textContent = "Signed out";
  status.dataset.state = "out";
  document.getElementById("signed-out").hidden = false;
  document.getElementById("signed-in").hidden = true;
  document.getElementById("me-output").textContent = "";
  document.getElementById("notes").replaceChildren();
  document.getElementById("mfa-form").hidden = pendingChallenge === null;
  document.getElementById("recovery-box").hidden = true;
  document.getElementById("mfa-confirm-form").hidden = true;
}

function showSignedIn(me) {
  const status = document.getElementById("status");
  status.textContent = "Signed in as " + me.username;
  status.dataset.state = "in";
  document.getElementById("signed-out").hidden = true;
  document.getElementById("signed-in").hidden = false;
  document.getElementById("me-output").textContent = JSON.stringify(me, null, 2);
}

async function loadNotes() {
  const result = await call("GET", "/api/notes");
  const list = document.getElementById("notes");
  list.replaceChildren();
  if (!result.ok) return;
  for (const note of result.data) {
    const item = document.createElement("li");
    item.textContent = note.text; // textContent, never innerHTML: notes are user input
    list.append(item);
  }
}

async function loadTwoFactor() {
  const result = await call("GET", "/mfa");
  if (!result.ok) return;
  const on = result.data.enabled;
  document.getElementById("mfa-status").textContent = on
    ? "Two-factor sign-in is on (" + result.data.recovery_codes_remaining + " recovery codes left)."
    : "Two-factor sign-in is off.";
  document.getElementById("mfa-setup-form").hidden = on;
}

async function refresh() {
  const me = await call("GET", "/me");
  if (me.ok) {
    showSignedIn(me.data);
    await loadNotes();
    await loadTwoFactor();
  } else {
    showSignedOut();
  }
}

async function onRegister(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = await call("POST", "/register", {
    json: {
      email: form.get("email"),
      username: form.get("username"),
      password: form.get("password"),
    },
  });
  if (result.ok) {
    say("Registered " + result.data.username + ". You can sign in now.");
    event.target.reset();
  } else {
    say("Registration failed: " + describe(result.data, result.status), "error");
  }
}

async function onLogin(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = await call("POST", "/login", {
    form: {
      username: form.get("username"),
      password: form.get("password"),
      remember_me: form.get("remember_me") ? "true" : "false",
    },
  });
  if (result.ok && result.data.mfa_required) {
    pendingChallenge = result.data.challenge; // the password was right; a code is next
    event.target.reset();
    document.getElementById("mfa-form").hidden = false;
    say("Password accepted. Enter your code to finish signing in.");
  } else if (result.ok) {
    csrfFromLogin = result.data.csrf_token;
    event.target.reset();
    say("Welcome, " + result.data.username + ".");
    await refresh();
  } else {
    say("Sign-in failed: " + describe(result.data, result.status), "error");
  }
}

async function onSecondStep(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = await call("POST", "/mfa/verify", {
    json: { challenge: pendingChallenge, code: form.get("code") },
  });
  event.target.reset();
  if (result.ok) {
    pendingChallenge = null;
    csrfFromLogin = result.data.csrf_token;
    say("Welcome, " + result.data.username + ".");
    await refresh();
  } else {
    if (result.status === 400) pendingChallenge = null; // expired or dead: start again
    say("Second step failed: " + describe(result.data, result.status), "error");
    await refresh();
  }
}

async function onMfaSetup(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = await call("POST", "/mfa/totp/setup", {
    json: { password: form.get("password") },
    csrf: true,
  });
  event.target.reset();
  if (result.ok) {
    document.getElementById("mfa-secret").textContent = result.data.secret;
    document.getElementById("mfa-uri").textContent = result.data.otpauth_uri;
    document.getElementById("mfa-confirm-form").hidden = false;
    document.getElementById("mfa-setup-form").hidden = true;
  } else {
    say("Setup failed: " + describe(result.data, result.status), "error");
  }
}

async function onMfaConfirm(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = await call("POST", "/mfa/totp/confirm", {
    json: { code: form.get("code") },
    csrf: true,
  });
  event.target.reset();
  if (result.ok) {
    document.getElementById("mfa-confirm-form").hidden = true;
    const list = document.getElementById("recovery-codes");
    list.replaceChildren();
    for (const code of result.data.recovery_codes) {
      const item = document.createElement("li");
      item.textContent = code;
      list.append(item);
    }
    document.getElementById("recovery-box").hidden = false;
    say("Two-factor sign-in is on.");
    await loadTwoFactor();
  } else {
    say("Confirmation failed: " + describe(result.data, result.status), "error");
  }
}

async function onAddNote(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = await call("POST", "/api/notes", { json: { text: form.get("text") }, csrf: true });
  if (result.ok) {
    event.target.reset();
    say("Note saved.");
    await loadNotes();
  } else {
    say("Could not save the note: " + describe(result.data, result.status), "error");
  }
}

async function onAddNoteWithoutCsrf() {
  const result = await call("POST", "/api/notes", { json: { text: "forged" }, csrf: false });
  if (result.ok) {
    say("Unexpected: the request went through without a CSRF token.", "error");
  } else {
    say("Refused as expected (" + result.status + "): " + describe(result.data, result.status));
  }
}

async function onLogout() {
  const result = await call("POST", "/logout", { csrf: true });
  csrfFromLogin = null;
  if (result.ok) {
    say("You are signed out.");
  } else {
    say("Sign-out failed: " + describe(result.data, result.status), "error");
  }
  await refresh();
}

async function loadProviders() {
  // "Sign in with ..." links for the providers the server has configured (none by default).
  const result = await call("GET", "/api/providers");
  const list = document.getElementById("providers");
  list.replaceChildren();
  for (const name of result.ok ? result.data.providers : []) {
    const link = document.createElement("a");
    link.href = "/oauth/" + encodeURIComponent(name) + "/authorize?redirect_to=/";
    link.className = "provider";
    link.textContent = "Sign in with " + name;
    list.append(link);
  }
  list.hidden = list.children.length === 0;
  const error = new URLSearchParams(window.location.search).get("error");
  if (error) {
    say("Sign-in with a provider failed: " + error, "error");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("register-form").addEventListener("submit", onRegister);
  document.getElementById("login-form").addEventListener("submit", onLogin);
  document.getElementById("mfa-form").addEventListener("submit", onSecondStep);
  document.getElementById("mfa-setup-form").addEventListener("submit", onMfaSetup);
  document.getElementById("mfa-confirm-form").addEventListener("submit", onMfaConfirm);
  document.getElementById("note-form").addEventListener("submit", onAddNote);
  document.getElementById("no-csrf-button").addEventListener("click", onAddNoteWithoutCsrf);
  document.getElementById("logout-button").addEventListener("click", onLogout);
  loadProviders();
  refresh();
});
