// logfill dashboard: the only script. Pages work without it; it adds two things.
//
// 1. Live parts. An element with data-live="URL" is replaced, every
//    data-live-interval ms (default 1000), by the HTML fragment URL answers
//    (the server renders it with the same template as the page). It stops once
//    the fragment says data-live-final, and pauses while the tab is hidden.
//    Elements after the first one in the answer that carry data-live-swap replace
//    the page's element of the same id (a request's header: status and buttons).
// 2. Forms with data-once are sent once: their submit buttons are disabled on
//    submit (the server's idempotency key makes a resubmission harmless anyway).
(function () {
  "use strict";

  function follow(element) {
    var url = element.getAttribute("data-live");
    var every = parseInt(element.getAttribute("data-live-interval") || "1000", 10);
    var timer = null;

    function schedule() {
      timer = window.setTimeout(refresh, every);
    }

    function refresh() {
      if (document.hidden) {
        schedule();
        return;
      }
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html.trim();
          var fresh = holder.firstElementChild;
          if (!fresh) return schedule();
          Array.prototype.slice.call(holder.children, 1).forEach(function (part) {
            var old = part.id && part.hasAttribute("data-live-swap") && document.getElementById(part.id);
            if (old) old.replaceWith(part);
          });
          element.replaceWith(fresh);
          element = fresh;
          if (fresh.hasAttribute("data-live-final")) {
            document.dispatchEvent(new CustomEvent("logfill:final"));
            return;
          }
          schedule();
        })
        .catch(function () {
          every = Math.min(every * 2, 15000); // back off while the server is away
          schedule();
        });
    }

    if (!element.hasAttribute("data-live-final")) schedule();
  }

  // Delegated, so that forms swapped in later (a request's buttons) are covered too.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-once")) return;
    window.setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (button) {
        button.disabled = true;
      });
    }, 0);
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(follow);
  });
})();
