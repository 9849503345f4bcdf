// Follows an order's status over server-sent events (GET /api/orders/{id}/events/) and redraws
// the page's main section from the server when a change arrives, without reloading the page.
// Where the stream is unavailable, the page reloads itself every few seconds instead.
(function () {
  "use strict";
  const root = document.querySelector("[data-order-events]");
  if (!root) return;
  let known = Number(root.dataset.position || 0);
  let fallback = null;
  function fallBack() {
    if (fallback === null) fallback = setInterval(() => location.reload(), 5000);
  }
  if (!("EventSource" in window)) return fallBack();
  const source = new EventSource(root.dataset.orderEvents);
  source.addEventListener("status", async (event) => {
    const position = Number(event.lastEventId);
    if (position <= known) return;
    known = position;
    try {
      const response = await fetch(location.pathname, { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      document.querySelector("main").innerHTML = page.querySelector("main").innerHTML;
    } catch (error) {
      location.reload();
    }
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) fallBack();
  };
})();
