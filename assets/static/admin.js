"use strict";
(function () {
  const key = new URLSearchParams(location.search).get("key");
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/admin/ws" + (key ? "?key=" + encodeURIComponent(key) : "");
  const ws = new WebSocket(url);
  const $ = (id) => document.getElementById(id);
  ws.onopen = () => { $("connection").dataset.state = "open"; $("connection").textContent = "Live"; };
  ws.onclose = () => { $("connection").dataset.state = "closed"; $("connection").textContent = "Disconnected"; };
  ws.onmessage = (e) => {
    const s = JSON.parse(e.data);
    $("sent").textContent = s.sent;
    $("verified").textContent = s.verified;
    $("failed").textContent = s.failed;
  };
})();
