// The embeddable widget: <script src="https://VERIFIER/widget.js"
// data-container="#phone-check" [data-lang] [data-theme] [data-callback]>.
// It renders the flow in an open shadow root inside the container and, on
// success, fills the hidden input phone_verification_token of the
// container's form and fires "phone-verified" on the container.
{
  const script = document.currentScript;
  const server = new URL(script.src);
  const container = (() => {
    try { return document.querySelector(script.dataset.container); } catch { return null; }
  })();
  const lang = pickLanguage(script.dataset.lang);
  const t = translator(lang);
  const theme = { light: "light", dark: "dark" }[script.dataset.theme] || "";

  function tokenInput() {
    const form = container.closest("form");
    const name = "phone_verification_token";
    let input = container.querySelector(`input[name="${name}"]`);
    if (!input && form && form.querySelectorAll(`input[name="${name}"]`).length === 1) {
      input = form.querySelector(`input[name="${name}"]`);
    }
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      container.appendChild(input); // light DOM: it is submitted with the form
    }
    return input;
  }

  function verified(d) {
    const detail = { phone_number: d.phone_number, token: d.token };
    tokenInput().value = d.token;
    container.dispatchEvent(new CustomEvent("phone-verified", { detail, bubbles: true, composed: true }));
    const callback = script.dataset.callback && window[script.dataset.callback];
    if (typeof callback === "function") callback(detail);
  }

  function mount() {
    if (!container) {
      console.error("verifier widget: no element matches data-container", script.dataset.container);
      return;
    }
    const shadow = container.shadowRoot || container.attachShadow({ mode: "open" });
    // A constructed style sheet is not an inline style, so a host page's
    // Content-Security-Policy does not block it.
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(":host{all:initial;display:block}\n" + CSS);
    shadow.adoptedStyleSheets = [sheet];
    const wrap = document.createElement("div");
    wrap.className = ("vf vf-widget " + theme).trim();
    wrap.lang = lang;
    shadow.replaceChildren(wrap);

    function fail(message) {
      const p = document.createElement("p");
      p.className = "vf-error";
      p.setAttribute("role", "alert");
      p.textContent = message;
      wrap.replaceChildren(p);
    }

    // Ask first whether this site may use the verifier, so a foreign page
    // gets a clear message and opens no socket.
    fetch(new URL("/widget/config", server), { credentials: "omit" })
      .then((r) => r.json())
      .then((cfg) => {
        if (!cfg.allowed) return fail(t("origin_not_allowed", { origin: location.origin }));
        wrap.innerHTML = CARD;
        const scheme = server.protocol === "https:" ? "wss://" : "ws://";
        createFlow(shadow, {
          url: scheme + server.host + "/ws", lang, reverify: true, onVerified: verified,
          storageKey: "verifier.widget." + script.dataset.container,
        });
      })
      .catch(() => fail(t("server_unreachable")));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
}
