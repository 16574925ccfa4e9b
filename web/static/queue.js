// Keeps the lead's queue current. Several tend replicas share one
// database, so the page simply asks again every 15 seconds for the part
// that changes (the #live fragment, rendered and escaped by the server)
// and swaps it in. No inline script: the page's CSP allows only 'self'.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch || !window.DOMParser) {
    return;
  }
  var every = parseInt(live.getAttribute("data-every"), 10) || 15000;
  var timer = null;

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, every);
  }

  function refresh() {
    if (document.hidden) {
      return; // resumed on visibilitychange
    }
    fetch(live.getAttribute("data-src"), { credentials: "same-origin", cache: "no-store" })
      .then(function (res) {
        var path = new URL(res.url).pathname;
        if (res.redirected && path === "/login") {
          window.location.assign("/login"); // the session ended
          return null;
        }
        return res.ok ? res.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          // DOMParser never runs scripts; the fragment is our own markup.
          var doc = new DOMParser().parseFromString(html, "text/html");
          live.replaceChildren.apply(live, Array.prototype.slice.call(doc.body.childNodes));
          live.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { /* offline for a moment: try again later */ })
      .then(schedule);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      refresh();
    }
  });
  schedule();
})();
