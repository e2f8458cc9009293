// The account page: every call is to this service's own JSON API (see /docs).
// Tokens live in this page's memory only; nothing is written to storage.
"use strict";

const state = { access: null, refresh: null, mfaToken: null };
const $ = (id) => document.getElementById(id);

function say(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.access) headers.Authorization = `Bearer ${state.access}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (response.status === 401 && data && data.msg === "Token has expired" && state.refresh) {
    if (await renew()) return api(method, path, body);
  }
  return { status: response.status, data };
}

async function renew() {
  const response = await fetch("/token/refresh", {
    method: "POST",
    headers: { Authorization: `Bearer ${state.refresh}` },
  });
  if (response.status !== 200) return false;
  const pair = await response.json();
  state.access = pair.access_token;
  state.refresh = pair.refresh_token;
  return true;
}

function message(result, fallback) {
  return (result.data && result.data.msg) || `${fallback} (HTTP ${result.status})`;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  row.appendChild(td);
  return td;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

async function loggedIn(pair) {
  state.access = pair.access_token;
  state.refresh = pair.refresh_token;
  state.mfaToken = null;
  await refreshAll();
  $("login").hidden = true;
  $("code-form").hidden = true;
  $("account").hidden = false;
  say("Logged in.");
}

async function refreshAll() {
  await Promise.all([showMe(), showSessions(), showMfa(), showPasskeys(), showEvents()]);
}

async function showMe() {
  const result = await api("GET", "/me");
  if (result.status === 200) $("whoami").textContent = result.data.username;
}

async function showSessions() {
  const body = $("sessions").querySelector("tbody");
  body.replaceChildren();
  const result = await api("GET", "/sessions");
  if (result.status !== 200 || !Array.isArray(result.data)) {
    const row = body.insertRow();
    cell(row, "Sessions are not available here.");
    return;
  }
  for (const session of result.data) {
    const row = body.insertRow();
    row.dataset.sessionId = session.id;
    if (session.current) row.classList.add("current");
    cell(row, when(session.created_at));
    cell(row, when(session.last_used_at));
    cell(row, session.client);
    cell(row, session.current ? `${session.user_agent || ""} (this one)` : session.user_agent);
    const actions = cell(row, "");
    if (!session.current) {
      const end = document.createElement("button");
      end.type = "button";
      end.textContent = "End";
      end.className = "end-session";
      end.addEventListener("click", async () => {
        const ended = await api("DELETE", `/sessions/${encodeURIComponent(session.id)}`);
        say(message(ended, "Could not end the session"), ended.status !== 200);
        await showSessions();
      });
      actions.appendChild(end);
    }
  }
}

async function showMfa() {
  const result = await api("GET", "/me/mfa");
  if (result.status !== 200) return;
  const on = result.data.totp;
  $("totp-state").textContent = on
    ? `On. Recovery codes left: ${result.data.recovery_codes_left}.`
    : "Off.";
  $("totp-state").dataset.enabled = String(on);
  $("totp-enable").hidden = on;
  $("totp-manage").hidden = !on;
  if (on) $("totp-enrol").hidden = true;
}

async function showPasskeys() {
  const list = $("passkeys");
  list.replaceChildren();
  const result = await api("GET", "/me/passkeys");
  if (result.status !== 200) return;
  for (const passkey of result.data.passkeys) {
    const item = document.createElement("li");
    item.className = "passkey";
    item.textContent = `${passkey.name}, added ${when(passkey.created_at)}`
      + (passkey.last_used_at ? `, last used ${when(passkey.last_used_at)} ` : " ");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.addEventListener("click", async () => {
      const removed = await api("DELETE", `/me/passkeys/${passkey.id}`);
      say(message(removed, "Could not remove the passkey"), removed.status !== 200);
      await refreshAll();
    });
    item.appendChild(remove);
    list.appendChild(item);
  }
  if (!result.data.passkeys.length) {
    const item = document.createElement("li");
    item.textContent = "No passkeys yet.";
    list.appendChild(item);
  }
}

async function showEvents() {
  const body = $("events").querySelector("tbody");
  body.replaceChildren();
  const result = await api("GET", "/me/events?limit=20");
  if (result.status !== 200 || !Array.isArray(result.data)) {
    const row = body.insertRow();
    cell(row, "Security events are not available here.");
    return;
  }
  for (const event of result.data) {
    const row = body.insertRow();
    cell(row, when(event.time));
    cell(row, event.event);
    cell(row, event.client);
  }
}

function showCodes(codes) {
  const list = $("recovery-codes");
  list.replaceChildren();
  for (const code of codes) {
    const item = document.createElement("li");
    item.textContent = code;
    list.appendChild(item);
  }
  $("recovery").hidden = false;
}

function passkeysUsable() {
  return window.PublicKeyCredential
    && typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function";
}

async function passwordLogin(event) {
  event.preventDefault();
  const result = await api("POST", "/login", {
    username: $("username").value,
    password: $("password").value,
  });
  $("password").value = "";
  if (result.status === 200) return loggedIn(result.data);
  if (result.status === 401 && result.data && result.data.mfa_token) {
    state.mfaToken = result.data.mfa_token;
    $("password-form").hidden = true;
    $("code-form").hidden = false;
    $("login-code").focus();
    return say("Enter the code from your authenticator app.");
  }
  say(message(result, "Login failed"), true);
}

async function codeLogin(event) {
  event.preventDefault();
  const code = $("login-code").value.trim();
  $("login-code").value = "";
  const result = await api("POST", "/login/mfa", { mfa_token: state.mfaToken, code });
  if (result.status === 200) return loggedIn(result.data);
  if (result.status !== 401 || result.data.msg !== "Invalid code") {
    $("password-form").hidden = false;
    $("code-form").hidden = true;
  }
  say(message(result, "Login failed"), true);
}

async function passkeyLogin() {
  if (!passkeysUsable()) return say("This browser cannot use passkeys.", true);
  const begun = await api("POST", "/webauthn/login/begin", {});
  if (begun.status !== 200) return say(message(begun, "Passkey login failed"), true);
  let credential;
  try {
    credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(begun.data),
    });
  } catch (error) {
    return say(`Passkey login cancelled: ${error.message}`, true);
  }
  const result = await api("POST", "/webauthn/login/finish", credential.toJSON());
  if (result.status === 200) return loggedIn(result.data);
  say(message(result, "Passkey login failed"), true);
}

async function enableTotp() {
  const result = await api("POST", "/me/mfa/totp");
  if (result.status !== 200) return say(message(result, "Could not start"), true);
  $("totp-secret").textContent = result.data.secret;
  const qr = await api("POST", "/account/qr", { text: result.data.otpauth_uri });
  if (qr.status === 200) $("totp-qr").src = qr.data.data_uri;
  $("totp-enrol").hidden = false;
  $("totp-enable").hidden = true;
  say("Scan the code, then enter the code the app shows.");
}

async function confirmTotp(event) {
  event.preventDefault();
  const code = $("totp-confirm-code").value.trim();
  $("totp-confirm-code").value = "";
  const result = await api("POST", "/me/mfa/totp/confirm", { code });
  if (result.status !== 200) return say(message(result, "Could not confirm"), true);
  showCodes(result.data.recovery_codes);
  $("totp-secret").textContent = "";
  $("totp-qr").removeAttribute("src");
  say("The authenticator app is on.");
  await refreshAll();
}

async function regenerateCodes() {
  const result = await api("POST", "/me/mfa/recovery-codes");
  if (result.status !== 200) return say(message(result, "Could not make new codes"), true);
  showCodes(result.data.recovery_codes);
  say("New recovery codes; the old ones no longer work.");
  await showMfa();
}

async function disableTotp(event) {
  event.preventDefault();
  const code = $("totp-disable-code").value.trim();
  $("totp-disable-code").value = "";
  const result = await api("DELETE", "/me/mfa/totp", { code });
  say(message(result, "Could not turn it off"), result.status !== 200);
  $("recovery").hidden = true;
  await refreshAll();
}

async function addPasskey(event) {
  event.preventDefault();
  if (!passkeysUsable()) return say("This browser cannot make passkeys.", true);
  const begun = await api("POST", "/webauthn/register/begin");
  if (begun.status !== 200) return say(message(begun, "Could not add a passkey"), true);
  let credential;
  try {
    credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(begun.data),
    });
  } catch (error) {
    return say(`Passkey not added: ${error.message}`, true);
  }
  const name = $("passkey-name").value.trim();
  const body = credential.toJSON();
  if (name) body.name = name;
  const result = await api("POST", "/webauthn/register/finish", body);
  say(result.status === 201 ? "Passkey added." : message(result, "Could not add"), result.status !== 201);
  $("passkey-name").value = "";
  await refreshAll();
}

async function logout() {
  await api("POST", "/logout");
  state.access = state.refresh = null;
  $("account").hidden = true;
  $("whoami").textContent = "";
  $("recovery").hidden = true;
  for (const id of ["passkeys", "recovery-codes"]) $(id).replaceChildren();
  $("login").hidden = false;
  $("password-form").hidden = false;
  say("Logged out.");
}

document.addEventListener("DOMContentLoaded", () => {
  $("password-form").addEventListener("submit", passwordLogin);
  $("code-form").addEventListener("submit", codeLogin);
  $("passkey-login").addEventListener("click", passkeyLogin);
  $("totp-enable").addEventListener("click", enableTotp);
  $("totp-confirm-form").addEventListener("submit", confirmTotp);
  $("recovery-regenerate").addEventListener("click", regenerateCodes);
  $("totp-disable-form").addEventListener("submit", disableTotp);
  $("passkey-add-form").addEventListener("submit", addPasskey);
  $("logout").addEventListener("click", logout);
  document.body.dataset.ready = "true";
});
