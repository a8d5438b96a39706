// The verification flow: forms that swap as the server's events arrive over
// one WebSocket. It runs on a document (the page) or a shadow root (the
// widget). I18N, CARD, CALLS (the server can place calls), WHATSAPP (the
// server can send codes on WhatsApp), INBOUND (the number people may text
// their code to, "" for none), APPS (numbers may add an authenticator app)
// and DEV (true when the server sends no texts: the console sender) are put
// in front of this file by the server.

const ERROR_REASONS = new Set(["invalid_phone", "rate_limited", "send_failed", "wrong_code",
  "bad_request", "not_requested", "too_many_attempts", "expired", "digits_only", "enter_phone",
  "country_not_allowed", "sms_failed", "app_not_set", "app_not_allowed", "app_already_set"]);
const OK_REASONS = new Set(["verified", "sms_delivered", "app_added", "app_removed"]);

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

// formatNumber spaces a North American E.164 number as people write it
// (+1 500 555 0006); other numbers stay as they are.
function formatNumber(e164) {
  const m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(e164 || "");
  return m ? `+1 ${m[1]} ${m[2]} ${m[3]}` : e164 || "";
}

// groupKey splits an authenticator key into groups of 4, for typing.
function groupKey(secret) {
  return (secret || "").replace(/(.{4})(?=.)/g, "$1 ");
}

function createFlow(root, opts) {
  const t = translator(opts.lang);
  const $ = (id) => root.getElementById(id);
  const el = {
    conn: $("connection"), update: $("update"),
    registerForm: $("register_form"), phone: $("phone_number"), registerButton: $("register_button"),
    otherWays: $("other_ways"), inboundButton: $("inbound_button"), appButton: $("app_button"),
    verifyForm: $("verify_form"), verifyInstructions: $("verify_instructions"), code: $("code"),
    codeEntry: $("code_entry"), verifyButton: $("verify_button"),
    timers: $("timers"), expires: $("expires"), resendWait: $("resend_wait"),
    resendButton: $("resend_button"), callButton: $("call_button"), whatsappButton: $("whatsapp_button"),
    inboundPanel: $("inbound_panel"), inboundCode: $("inbound_code"), inboundLink: $("inbound_link"),
    changeNumber: $("change_number"),
    verifiedPanel: $("verified_panel"), verifiedText: $("verified_text"), startOver: $("start_over"),
    appAdd: $("app_add_button"), appRemove: $("app_remove_button"),
    appPanel: $("app_panel"), appInstructions: $("app_instructions"), appQR: $("app_qr"),
    appSecret: $("app_secret"), appForm: $("app_form"), appCode: $("app_code"),
    appConfirm: $("app_confirm_button"), appCancel: $("app_cancel"),
    inbox: $("dev_inbox"), inboxList: $("dev_messages"), devBanner: $("dev_banner"),
  };
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  el.appQR.alt = t("app_qr_alt");
  // Development mode is loud: nobody should mistake it for a live service.
  if (el.devBanner) el.devBanner.hidden = !DEV;
  // The ways to a code that need no text from us, where the server offers them.
  el.inboundButton.hidden = !INBOUND;
  el.appButton.hidden = !APPS;
  el.otherWays.hidden = !INBOUND && !APPS;

  const key = opts.storageKey || "verifier.state";
  let state = loadState();
  let ws = null, backoff = 500, busy = false, stopped = false;
  let expiresAt = 0, resendAt = 0, ticker = null, othersOffered = false;
  // asked is the channel of the last register; verifiedHere the number this
  // connection verified (by which channel), which may change its app;
  // hasApp whether that number is known to have one.
  let asked = "sms", verifiedHere = null, hasApp = false;

  function loadState() {
    try { return JSON.parse(sessionStorage.getItem(key)) || { stage: "phone" }; } catch { return { stage: "phone" }; }
  }
  function saveState() {
    // An app being added is not kept: its key is for this connection only.
    let kept = state.stage === "app" ? { ...state, stage: "verified" } : state;
    if (kept.stage === "verified" && !opts.keepVerified) kept = { stage: "phone" };
    try { sessionStorage.setItem(key, JSON.stringify(kept)); } catch { /* storage off: memory only */ }
  }

  function say(message, reason) {
    el.update.textContent = message || "";
    el.update.hidden = !message;
    el.update.classList.toggle("error", ERROR_REASONS.has(reason));
    el.update.classList.toggle("ok", OK_REASONS.has(reason));
  }

  // sayReason prefers the person's language; the server's message (in the
  // language asked for) is the fallback for reasons this script does not
  // know, and says what went wrong while an app is being added.
  function sayReason(d) {
    const vars = { phone: d.phone_number, attempts: d.attempts_left, time: formatSeconds(d.retry_after || 0) };
    const key = "reason_" + d.reason;
    const own = t.has(key) && !(state.stage === "app" && d.message);
    say(own ? t(key, vars) : d.message, d.reason);
  }

  function show(stage) {
    state.stage = stage;
    saveState();
    el.registerForm.hidden = stage !== "phone";
    el.verifyForm.hidden = stage !== "code";
    el.verifiedPanel.hidden = stage !== "verified";
    el.appPanel.hidden = stage !== "app";
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
    for (const button of [el.registerButton, el.verifyButton, el.resendButton, el.callButton, el.whatsappButton,
      el.inboundButton, el.appButton, el.appAdd, el.appRemove, el.appConfirm]) {
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
    // An app's code needs no new code and no other channel: none is offered.
    const via = state.channel || "sms", app = via === "app";
    const offered = (channel) => !app && (wait <= 0 || (channel !== via && (othersOffered || via === "whatsapp")));
    el.timers.hidden = app;
    el.resendWait.hidden = wait <= 0;
    el.resendButton.hidden = !offered("sms");
    el.resendButton.textContent = t(via === "sms" ? "resend" : "text_me");
    el.callButton.hidden = !CALLS || !offered("call");
    el.whatsappButton.hidden = !WHATSAPP || !offered("whatsapp");
  }

  // showCodeForm opens the code form for the channel the code went by: a
  // code to type, or, when the person texts us the code, the code to send.
  function showCodeForm(d) {
    state.phone = d.phone_number;
    if (d.channel) state.channel = d.channel;
    if (d.channel === "inbound" && d.code) state.inbound = { phone: d.phone_number, code: d.code, to: d.send_to };
    show("code");
    startTimers(d);
    if (fitCodeForm()) showCodeToText(d.phone_number);
    else showCodeEntry(d);
  }

  // fitCodeForm shows the code input, or the code to text us, and reports
  // whether it is the latter.
  function fitCodeForm() {
    const inbound = state.channel === "inbound";
    el.codeEntry.hidden = inbound;
    el.inboundPanel.hidden = !inbound;
    return inbound;
  }

  function showCodeEntry(d) {
    const instructions = { call: "verify_instructions_call", whatsapp: "verify_instructions_whatsapp",
      app: "verify_instructions_app" };
    el.verifyInstructions.textContent = t(instructions[state.channel] || "verify_instructions", { phone: d.phone_number });
    const len = d.code_length || 6;
    el.code.maxLength = len;
    el.code.setAttribute("pattern", "[0-9]{" + len + "}");
    el.code.placeholder = "•".repeat(len);
    el.code.focus();
    if (state.channel !== "app") askBrowserForCode();
  }

  // showCodeToText shows the code the person texts us, and a link that
  // opens their messages app with it written ("?&body=" works on iOS and
  // Android alike). A page that no longer knows the code (its storage was
  // cleared) names our number and the way to a new code.
  function showCodeToText(phone) {
    const known = state.inbound && state.inbound.phone === phone ? state.inbound : null;
    const to = (known && known.to) || INBOUND;
    el.inboundCode.hidden = el.inboundLink.hidden = !known;
    el.verifyInstructions.textContent = known
      ? t("inbound_instructions", { code: known.code, to: formatNumber(to), phone })
      : t("inbound_instructions_lost", { to: formatNumber(to) });
    if (!known) return;
    el.inboundCode.textContent = known.code;
    el.inboundLink.href = "sms:" + to + "?&body=" + encodeURIComponent(known.code);
  }

  function showVerified(d) {
    state.phone = d.phone_number;
    show("verified");
    el.verifiedText.textContent = t("verified_number", { phone: d.phone_number });
    showAppLinks();
    if (opts.onVerified && d.token) opts.onVerified(d);
  }

  // The app may be added or removed only by the connection that just
  // verified the number, by a channel other than the app itself. Removing
  // is offered once the number is known to have one.
  function mayChangeApp() {
    return APPS && !!verifiedHere && verifiedHere.phone === state.phone && verifiedHere.via !== "app";
  }
  function showAppLinks() {
    el.appAdd.hidden = !mayChangeApp() || hasApp;
    el.appRemove.hidden = !mayChangeApp() || !hasApp;
  }

  function showAppSetup(d) {
    show("app");
    say("");
    el.appInstructions.textContent = d.message || "";
    el.appQR.hidden = !d.qr;
    if (d.qr) el.appQR.src = d.qr;
    el.appSecret.textContent = groupKey(d.secret);
    el.appCode.value = "";
    el.appCode.focus();
  }

  // appUpdate follows the answers about the app; say has told the person.
  function appUpdate(d) {
    switch (d.reason) {
      case "app_added": hasApp = true; show("verified"); break;
      case "app_already_set": hasApp = true; break;
      case "app_removed": hasApp = false; break;
      case "app_not_set": hasApp = false; break;
      case "app_not_allowed": verifiedHere = null; if (state.stage === "app") show("verified"); break;
      case "wrong_code": if (state.stage === "app") { el.appCode.value = ""; el.appCode.focus(); } return;
      default: return;
    }
    if (state.stage === "verified") showAppLinks();
  }

  const handlers = {
    code_generated(d) {
      othersOffered = false;
      showCodeForm(d);
      el.code.value = "";
      const sent = { call: "called", whatsapp: "sent_whatsapp", inbound: "", app: "" };
      const key = sent[d.channel] ?? "sent";
      say(key && t(key, { phone: d.phone_number }), "code_generated");
    },
    update(d) {
      sayReason(d);
      // A code already asked for went by the channel asked for again.
      if (d.reason === "already_requested") showCodeForm({ ...d, channel: asked });
      if (d.reason === "code_pending") showCodeForm(d);
      if (d.reason === "already_verified" && d.phone_number) showVerified(d);
      if (d.reason === "wrong_code" && state.stage === "code") { el.code.value = ""; el.code.focus(); }
      if (d.reason === "sms_failed" || d.reason === "sms_late") { othersOffered = true; tick(); }
      appUpdate(d);
    },
    verified(d) {
      // Only the connection that verified gets the token, and only it may
      // then change the number's app.
      if (d.token) { verifiedHere = { phone: d.phone_number, via: state.channel || "sms" }; hasApp = false; }
      say(t("verified"), "verified");
      showVerified(d);
    },
    app_setup(d) { showAppSetup(d); },
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
      // A new connection has not verified anything: its app is not to change.
      verifiedHere = null;
      if (state.stage === "app") show("verified");
      if (state.stage === "verified") showAppLinks();
      setBusy(false);
      const delay = backoff * (0.75 + Math.random() / 2);
      backoff = Math.min(backoff * 2, 10000);
      setTimeout(connect, delay);
    };
  }

  // register asks for a code: by text, or by the channel named ("call",
  // "whatsapp", "inbound", "app").
  // Every register goes through here, so all carry the same reverify; the
  // app's, always: a number with an app is verified already, and whoever
  // takes the app's code wants to prove it now.
  function register(phone, channel) {
    if (busy) return;
    const data = { phone_number: phone, reverify: !!opts.reverify || channel === "app" };
    if (channel) data.channel = channel;
    asked = channel || "sms";
    send("register", data);
  }

  // registerTyped asks for a code for the number typed, by channel.
  function registerTyped(channel) {
    if (busy) return;
    const phone = el.phone.value.trim();
    if (!phone) { say(t("enter_phone"), "enter_phone"); el.phone.focus(); return; }
    register(phone, channel);
  }

  el.registerForm.addEventListener("submit", (e) => {
    e.preventDefault();
    registerTyped();
  });
  el.inboundButton.addEventListener("click", () => registerTyped("inbound"));
  el.appButton.addEventListener("click", () => registerTyped("app"));
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
  el.appAdd.addEventListener("click", () => { if (!busy) send("app_add", { phone_number: state.phone }); });
  el.appRemove.addEventListener("click", () => { if (!busy) send("app_remove", { phone_number: state.phone }); });
  el.appForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (busy) return;
    const code = el.appCode.value.replace(/\s+/g, "");
    if (!/^[0-9]+$/.test(code)) { say(t("digits_only"), "digits_only"); el.appCode.focus(); return; }
    send("app_confirm", { phone_number: state.phone, code });
  });
  el.appCancel.addEventListener("click", () => { show("verified"); say(""); showAppLinks(); });

  if (state.phone) el.phone.value = state.phone;
  show(state.stage === "code" || state.stage === "verified" ? state.stage : "phone");
  if (state.stage === "verified") el.verifiedText.textContent = t("verified_number", { phone: state.phone });
  if (state.stage === "code" && fitCodeForm()) showCodeToText(state.phone);
  setBusy(false);
  connect();
  return { stop() { stopped = true; if (ws) ws.close(); } };
}
