// Keeps the queue and the ticket page current without reloading them.
// The server pushes one Server-Sent Event per ticket change
// (/api/events, fed by the database so that every replica hears every
// change); on each, the page fetches its changing parts again (rendered
// and escaped by the server) and swaps them in. Bursts are coalesced:
// one fetch at a time, and one more if anything changed meanwhile. A slow
// timer still redraws now and then, because "waiting 5 min" ages. No
// inline script: the page's CSP allows only 'self'.
//
// The root element says what to do:
//   data-live-src     the URL to fetch
//   data-live-ticket  only this ticket's events matter (the ticket page)
//   data-live-parts   ids of elements to take from the fetched page; without
//                     it the root's own children are replaced by the
//                     fetched fragment (the queue)
//   data-every        the slow redraw, in milliseconds
//   data-live-events  the event stream (absent: the server has none, and
//                     only the slow redraw runs)
(function () {
  "use strict";
  var root = document.querySelector("[data-live-src]");
  if (!root || !window.fetch || !window.DOMParser) {
    return;
  }
  var src = root.getAttribute("data-live-src");
  var only = root.getAttribute("data-live-ticket") || "";
  var parts = (root.getAttribute("data-live-parts") || "").split(" ").filter(Boolean);
  var every = parseInt(root.getAttribute("data-every"), 10) || 60000;
  var busy = false, again = false, slow = null;

  function swap(html) {
    // DOMParser never runs scripts; the markup is our own.
    var doc = new DOMParser().parseFromString(html, "text/html");
    if (!parts.length) {
      root.replaceChildren.apply(root, Array.prototype.slice.call(doc.body.childNodes));
      return;
    }
    parts.forEach(function (id) {
      var cur = document.getElementById(id), next = doc.getElementById(id);
      if (!cur || !next || cur.isEqualNode(next)) {
        return; // unchanged parts stay: no flicker, and a button being clicked stays the button
      }
      if (cur.contains(document.activeElement) && document.activeElement !== document.body) {
        again = true; // someone is choosing in there: later
        return;
      }
      cur.replaceWith(next);
    });
    // A reply form says which message its writer has seen (the collision
    // warning compares); what is on screen now has been seen.
    var tl = document.getElementById("timeline");
    document.querySelectorAll("input[data-live-seen]").forEach(function (inp) {
      if (tl && tl.getAttribute("data-newest")) {
        inp.value = tl.getAttribute("data-newest");
      }
    });
  }

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    again = false;
    fetch(src, { credentials: "same-origin", cache: "no-store" })
      .then(function (res) {
        var path = new URL(res.url).pathname;
        if (res.redirected && path === "/login") {
          window.location.assign("/login"); // the session ended
          return null;
        }
        if (res.redirected && only && path !== src) {
          window.location.assign(res.url); // merged: its number leads elsewhere now
          return null;
        }
        return res.ok ? res.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          swap(html);
          root.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { /* offline for a moment: the next event or tick retries */ })
      .then(function () {
        busy = false;
        schedule();
        if (again) {
          refresh();
        }
      });
  }

  function schedule() {
    clearTimeout(slow);
    slow = setTimeout(function () {
      if (document.hidden) {
        again = true; // redrawn on visibilitychange
        return;
      }
      refresh();
    }, every);
  }

  function changed() {
    if (document.hidden) {
      again = true;
      return;
    }
    refresh();
  }

  var events = root.getAttribute("data-live-events");
  if (events && window.EventSource) {
    var es = new EventSource(events);
    es.addEventListener("open", function () {
      root.setAttribute("data-live", "connected");
    });
    es.addEventListener("ticket", function (ev) {
      if (only) {
        try {
          if (String(JSON.parse(ev.data).ticket) !== only) {
            return;
          }
        } catch (e) {
          return;
        }
      }
      changed();
    });
    es.addEventListener("reset", changed);
    es.addEventListener("error", function () {
      // EventSource reconnects by itself (Last-Event-ID replays what was
      // missed); the slow timer covers the gap.
      root.setAttribute("data-live", es.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
    });
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && again) {
      refresh();
    }
  });
  schedule();
})();
