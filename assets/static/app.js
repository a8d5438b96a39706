"use strict";
// The verification flow: two forms that swap as the server's events arrive
// over one WebSocket. It works on a document or a shadow root, so the
// widget can run the same flow inside a host page.

const ERROR_REASONS = new Set(["invalid_phone", "rate_limited", "send_failed", "wrong_code",
  "bad_request", "not_requested", "too_many_attempts", "expired"]);

const RESET_MESSAGES = {
  too_many_attempts: "Too many wrong codes. Request a new one.",
  expired: "That code expired. Request a new one.",
  not_requested: "Request a code to continue.",
};

function formatSeconds(s) {
  s = Math.max(0, Math.ceil(s));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function createFlow(root, opts) {
  const $ = (id) => root.getElementById(id);
  const el = {
    conn: $("connection"), update: $("update"),
    registerForm: $("register_form"), phone: $("phone_number"), registerButton: $("register_button"),
    verifyForm: $("verify_form"), verifyInstructions: $("verify_instructions"), code: $("code"),
    verifyButton: $("verify_button"), expires: $("expires"), resendWait: $("resend_wait"),
    resendButton: $("resend_button"), changeNumber: $("change_number"),
    verifiedPanel: $("verified_panel"), verifiedNumber: $("verified_number"), startOver: $("start_over"),
  };
  const storage = opts.storage || window.sessionStorage;
  const key = opts.storageKey || "verifier.state";
  let state = loadState();
  let ws = null, backoff = 500, busy = false;
  let expiresAt = 0, resendAt = 0, ticker = null;

  function loadState() {
    try { return JSON.parse(storage.getItem(key)) || { stage: "phone" }; } catch { return { stage: "phone" }; }
  }
  function saveState() {
    try { storage.setItem(key, JSON.stringify(state)); } catch { /* private mode: state lives in memory only */ }
  }

  function say(message, reason) {
    el.update.textContent = message || "";
    el.update.hidden = !message;
    el.update.classList.toggle("error", ERROR_REASONS.has(reason));
    el.update.classList.toggle("ok", reason === "verified");
  }

  function show(stage) {
    state.stage = stage;
    saveState();
    el.registerForm.hidden = stage !== "phone";
    el.verifyForm.hidden = stage !== "code";
    el.verifiedPanel.hidden = stage !== "verified";
    if (stage !== "code") stopTimers();
  }

  function setBusy(b) {
    busy = b;
    const connected = ws && ws.readyState === WebSocket.OPEN;
    el.registerButton.disabled = b || !connected;
    el.verifyButton.disabled = b || !connected;
    el.resendButton.disabled = b || !connected;
  }

  function send(event, data) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify({ event, data }));
    setBusy(true);
    return true;
  }

  // Timers count down to deadlines, so a sleeping tab shows the truth on waking.
  function startTimers(d) {
    const now = Date.now();
    expiresAt = now + (d.expires_in || 0) * 1000;
    resendAt = now + (d.resend_in || 0) * 1000;
    stopTimers();
    tick();
    ticker = setInterval(tick, 1000);
  }
  function stopTimers() { if (ticker) clearInterval(ticker); ticker = null; }
  function tick() {
    const now = Date.now();
    const left = (expiresAt - now) / 1000, wait = (resendAt - now) / 1000;
    el.expires.textContent = left > 0 ? "Code expires in " + formatSeconds(left) : "The code expired";
    el.resendWait.textContent = wait > 0 ? "Resend code in " + formatSeconds(wait) : "";
    el.resendWait.hidden = wait <= 0;
    el.resendButton.hidden = wait > 0;
  }

  function showCodeForm(d) {
    state.phone = d.phone_number;
    show("code");
    el.verifyInstructions.textContent = "Enter the code we sent to " + d.phone_number + ".";
    const len = d.code_length || 6;
    el.code.maxLength = len;
    el.code.setAttribute("pattern", "[0-9]{" + len + "}");
    el.code.placeholder = "•".repeat(len);
    startTimers(d);
    el.code.focus();
  }

  function showVerified(d) {
    state.phone = d.phone_number;
    show("verified");
    el.verifiedNumber.textContent = d.phone_number;
    if (opts.onVerified && d.token) opts.onVerified(d);
  }

  const handlers = {
    code_generated(d) {
      showCodeForm(d);
      el.code.value = "";
      say("We sent a code to " + d.phone_number + ".", "code_generated");
    },
    update(d) {
      say(d.message, d.reason);
      switch (d.reason) {
        case "already_requested":
        case "code_pending":
          showCodeForm(d);
          break;
        case "already_verified":
          if (d.phone_number) showVerified(d);
          break;
        case "wrong_code":
          el.code.value = "";
          el.code.focus();
          break;
      }
    },
    verified(d) {
      say("Your phone number is verified.", "verified");
      showVerified(d);
    },
    reset(d) {
      show("phone");
      say(d.message || RESET_MESSAGES[d.reason] || "Please start again.", d.reason);
      el.phone.focus();
    },
  };

  function connect() {
    el.conn.dataset.state = "connecting";
    el.conn.textContent = "Connecting…";
    ws = new WebSocket(opts.url);
    ws.onopen = () => {
      backoff = 500;
      el.conn.dataset.state = "open";
      el.conn.textContent = "Connected";
      setBusy(false);
      // Back where the person was: hear the number again without a new text.
      if ((state.stage === "code" || state.stage === "verified") && state.phone) {
        send("resume", { phone_number: state.phone });
      }
    };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      setBusy(false);
      const h = handlers[msg.event];
      if (h) h(msg.data || {});
    };
    ws.onclose = () => {
      el.conn.dataset.state = "closed";
      el.conn.textContent = "Reconnecting…";
      setBusy(false);
      const delay = backoff * (0.75 + Math.random() / 2);
      backoff = Math.min(backoff * 2, 10000);
      setTimeout(connect, delay);
    };
  }

  el.registerForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (busy) return;
    const phone = el.phone.value.trim();
    if (!phone) { say("Enter your phone number first.", "invalid_phone"); el.phone.focus(); return; }
    send("register", { phone_number: phone, reverify: !!opts.reverify });
  });
  el.verifyForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (busy) return;
    const code = el.code.value.replace(/\s+/g, "");
    if (!/^[0-9]+$/.test(code)) { say("The code is made of digits only.", "wrong_code"); el.code.focus(); return; }
    send("verify", { phone_number: state.phone, code });
  });
  el.resendButton.addEventListener("click", () => {
    if (!busy) send("register", { phone_number: state.phone, reverify: !!opts.reverify });
  });
  el.changeNumber.addEventListener("click", () => { show("phone"); say(""); el.phone.focus(); });
  el.startOver.addEventListener("click", () => {
    show("phone");
    el.phone.value = "";
    say("");
    el.phone.focus();
  });

  if (state.phone && state.stage !== "phone") el.phone.value = state.phone;
  show(state.stage === "code" || state.stage === "verified" ? state.stage : "phone");
  if (state.stage === "verified") el.verifiedNumber.textContent = state.phone;
  setBusy(false);
  connect();
}

if (document.getElementById("verifier") && !window.__verifierWidget) {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  createFlow(document, { url: scheme + location.host + "/ws" });
}
