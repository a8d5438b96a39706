// The single page: the flow on the document, in the browser's language
// unless ?lang= says otherwise.
{
  const lang = pickLanguage(new URLSearchParams(location.search).get("lang"));
  document.documentElement.lang = lang;
  document.title = translator(lang)("title");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  createFlow(document, { url: scheme + location.host + "/ws", lang, keepVerified: true });
}
