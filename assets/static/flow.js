// The verification flow: forms that swap as the server's events arrive over
// one WebSocket. It runs on a document (the page) or a shadow root (the
// widget). I18N, CARD, CALLS (the server can place calls), WHATSAPP (the
// server can send codes on WhatsApp) and DEV (true when the server sends no
// texts: the console sender) are put in front of this file by the server.

const ERROR_REASONS = new Set(["invalid_phone", "rate_limited", "send_failed", "wrong_code",
  "bad_request", "not_requested", "too_many_attempts", "expired", "digits_only", "enter_phone",
  "country_not_allowed", "sms_failed"]);

// pickLanguage takes the first of the wanted languages that I18N has.
function pickLanguage(wanted) {
  const candidates = [wanted, ...(navigator.languages || [navigator.language])];
  for (const tag of candidates) {
    const primary = String(tag || "").toLowerCase().split("-")[0];
    if (I18N[primary]) return primary;
  }
  return "en";
}

function translator(lang) {
  const table = I18N[lang] || I18N.en;
  const t = (key, vars) => {
    const text = table[key] ?? I18N.en[key];
    if (text === undefined) return undefined;
    return text.replace(/\{(\w+)\}/g, (m, name) => (vars && name in vars ? vars[name] : m));
  };
  t.has = (key) => key in table || key in I18N.en;
  return t;
}

function formatSeconds(s) {
  s = Math.max(0, Math.ceil(s));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function createFlow(root, opts) {
  const t = translator(opts.lang);
  const $ = (id) => root.getElementById(id);
  const el = {
    conn: $("connection"), update: $("update"),
    registerForm: $("register_form"), phone: $("phone_number"), registerButton: $("register_button"),
    verifyForm: $("verify_form"), verifyInstructions: $("verify_instructions"), code: $("code"),
    verifyButton: $("verify_button"), expires: $("expires"), resendWait: $("resend_wait"),
    resendButton: $("resend_button"), callButton: $("call_button"), whatsappButton: $("whatsapp_button"),
    changeNumber: $("change_number"),
    verifiedPanel: $("verified_panel"), verifiedText: $("verified_text"), startOver: $("start_over"),
    inbox: $("dev_inbox"), inboxList: $("dev_messages"), devBanner: $("dev_banner"),
  };
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  // Development mode is loud: nobody should mistake it for a live service.
  if (el.devBanner) el.devBanner.hidden = !DEV;

  const key = opts.storageKey || "verifier.state";
  let state = loadState();
  let ws = null, backoff = 500, busy = false, stopped = false;
  let expiresAt = 0, resendAt = 0, ticker = null, othersOffered = false;

  function loadState() {
    try { return JSON.parse(sessionStorage.getItem(key)) || { stage: "phone" }; } catch { return { stage: "phone" }; }
  }
  function saveState() {
    const kept = state.stage === "verified" && !opts.keepVerified ? { stage: "phone" } : state;
    try { sessionStorage.setItem(key, JSON.stringify(kept)); } catch { /* storage off: memory only */ }
  }

  function say(message, reason) {
    el.update.textContent = message || "";
    el.update.hidden = !message;
    el.update.classList.toggle("error", ERROR_REASONS.has(reason));
    el.update.classList.toggle("ok", reason === "verified" || reason === "sms_delivered");
  }

  // sayReason prefers the person's language; the server's English message
  // is the fallback for reasons this script does not know.
  function sayReason(d) {
    const vars = { phone: d.phone_number, attempts: d.attempts_left, time: formatSeconds(d.retry_after || 0) };
    const key = "reason_" + d.reason;
    say(t.has(key) ? t(key, vars) : d.message, d.reason);
  }

  function show(stage) {
    state.stage = stage;
    saveState();
    el.registerForm.hidden = stage !== "phone";
    el.verifyForm.hidden = stage !== "code";
    el.verifiedPanel.hidden = stage !== "verified";
    if (stage !== "code") { stopTimers(); stopAskingBrowser(); }
  }

  // WebOTP: where the browser reads the text's "@host #code" line, the code
  // fills itself in and is checked. The request ends when the code form
  // closes; Safari offers the code through autocomplete="one-time-code".
  let otpAbort = null;
  function askBrowserForCode() {
    stopAskingBrowser();
    if (!("OTPCredential" in window) || !navigator.credentials) return;
    const abort = otpAbort = new AbortController();
    navigator.credentials.get({ otp: { transport: ["sms"] }, signal: abort.signal }).then((otp) => {
      if (abort.signal.aborted || !otp || !otp.code || state.stage !== "code") return;
      el.code.value = otp.code;
      el.verifyForm.requestSubmit();
    }).catch(() => { /* aborted or declined: the person types the code */ });
  }
  function stopAskingBrowser() {
    if (otpAbort) otpAbort.abort();
    otpAbort = null;
  }

  function connected() { return ws && ws.readyState === WebSocket.OPEN; }

  function setBusy(b) {
    busy = b;
    for (const button of [el.registerButton, el.verifyButton, el.resendButton, el.callButton, el.whatsappButton]) {
      button.disabled = b || !connected();
    }
  }

  function send(event, data) {
    if (!connected()) return;
    ws.send(JSON.stringify({ event, data: { ...data, lang: opts.lang } }));
    setBusy(true);
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
    el.expires.textContent = left > 0 ? t("expires_in", { time: formatSeconds(left) }) : t("code_expired");
    el.resendWait.textContent = wait > 0 ? t("resend_in", { time: formatSeconds(wait) }) : "";
    el.resendWait.hidden = wait <= 0;
    // The channel the code went by is offered again once the wait is over;
    // the others also sooner, since the server skips the resend wait for
    // switching channel: at once after a text that failed or went
    // unreported, and all along after a WhatsApp message (the person took
    // it because the text did not come).
    const via = state.channel || "sms";
    const offered = (channel) => wait <= 0 || (channel !== via && (othersOffered || via === "whatsapp"));
    el.resendButton.hidden = !offered("sms");
    el.resendButton.textContent = t(via === "sms" ? "resend" : "text_me");
    el.callButton.hidden = !CALLS || !offered("call");
    el.whatsappButton.hidden = !WHATSAPP || !offered("whatsapp");
  }

  function showCodeForm(d) {
    state.phone = d.phone_number;
    show("code");
    if (d.channel) state.channel = d.channel;
    const instructions = { call: "verify_instructions_call", whatsapp: "verify_instructions_whatsapp" };
    el.verifyInstructions.textContent = t(instructions[state.channel] || "verify_instructions", { phone: d.phone_number });
    const len = d.code_length || 6;
    el.code.maxLength = len;
    el.code.setAttribute("pattern", "[0-9]{" + len + "}");
    el.code.placeholder = "•".repeat(len);
    startTimers(d);
    el.code.focus();
    askBrowserForCode();
  }

  function showVerified(d) {
    state.phone = d.phone_number;
    show("verified");
    el.verifiedText.textContent = t("verified_number", { phone: d.phone_number });
    if (opts.onVerified && d.token) opts.onVerified(d);
  }

  const handlers = {
    code_generated(d) {
      othersOffered = false;
      showCodeForm(d);
      el.code.value = "";
      const sent = { call: "called", whatsapp: "sent_whatsapp" };
      say(t(sent[d.channel] || "sent", { phone: d.phone_number }), "code_generated");
    },
    update(d) {
      sayReason(d);
      if (d.reason === "already_requested" || d.reason === "code_pending") showCodeForm(d);
      if (d.reason === "already_verified" && d.phone_number) showVerified(d);
      if (d.reason === "wrong_code") { el.code.value = ""; el.code.focus(); }
      if (d.reason === "sms_failed" || d.reason === "sms_late") { othersOffered = true; tick(); }
    },
    verified(d) {
      say(t("verified"), "verified");
      showVerified(d);
    },
    reset(d) {
      show("phone");
      sayReason(d);
      el.phone.focus();
    },
    dev_sms(d) {
      const item = document.createElement("li");
      const to = document.createElement("b");
      to.textContent = d.phone_number;
      item.append(to, d.body);
      el.inboxList.prepend(item);
      el.inbox.hidden = false;
    },
  };

  function setConn(stateName, key) {
    el.conn.dataset.state = stateName;
    el.conn.textContent = t(key);
  }

  function connect() {
    if (stopped) return;
    setConn("connecting", "connecting");
    ws = new WebSocket(opts.url);
    ws.onopen = () => {
      backoff = 500;
      setConn("open", "connected");
      setBusy(false);
      // Back where the person was: hear the number again without a new text.
      if (state.stage === "code" && state.phone) send("resume", { phone_number: state.phone });
    };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      setBusy(false);
      const h = handlers[msg.event];
      if (h) h(msg.data || {});
    };
    ws.onclose = () => {
      setConn("closed", "reconnecting");
      setBusy(false);
      const delay = backoff * (0.75 + Math.random() / 2);
      backoff = Math.min(backoff * 2, 10000);
      setTimeout(connect, delay);
    };
  }

  // register asks for a code: by text, or by the channel named ("call",
  // "whatsapp").
  // Every register goes through here, so all carry the same reverify.
  function register(phone, channel) {
    if (busy) return;
    const data = { phone_number: phone, reverify: !!opts.reverify };
    if (channel) data.channel = channel;
    send("register", data);
  }

  el.registerForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (busy) return;
    const phone = el.phone.value.trim();
    if (!phone) { say(t("enter_phone"), "enter_phone"); el.phone.focus(); return; }
    register(phone);
  });
  el.verifyForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (busy) return;
    const code = el.code.value.replace(/\s+/g, "");
    if (!/^[0-9]+$/.test(code)) { say(t("digits_only"), "digits_only"); el.code.focus(); return; }
    send("verify", { phone_number: state.phone, code });
  });
  el.resendButton.addEventListener("click", () => register(state.phone));
  el.callButton.addEventListener("click", () => register(state.phone, "call"));
  el.whatsappButton.addEventListener("click", () => register(state.phone, "whatsapp"));
  el.changeNumber.addEventListener("click", () => { show("phone"); say(""); el.phone.focus(); });
  el.startOver.addEventListener("click", () => { show("phone"); el.phone.value = ""; say(""); el.phone.focus(); });

  if (state.phone) el.phone.value = state.phone;
  show(state.stage === "code" || state.stage === "verified" ? state.stage : "phone");
  if (state.stage === "verified") el.verifiedText.textContent = t("verified_number", { phone: state.phone });
  setBusy(false);
  connect();
  return { stop() { stopped = true; if (ws) ws.close(); } };
}
