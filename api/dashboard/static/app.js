// logfill dashboard: the only script. Pages work without it; it adds two things.
//
// 1. Live parts. An element with data-live="URL" is replaced, every
//    data-live-interval ms (default 1000), by the HTML fragment URL answers
//    (the server renders it with the same template as the page). It stops once
//    the fragment says data-live-final, and pauses while the tab is hidden.
//    When the fragment's data-live-reload differs from the element's, the whole
//    page is reloaded instead (parts outside the fragment depend on that value).
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
          var reload = element.getAttribute("data-live-reload");
          if (reload !== null && fresh.getAttribute("data-live-reload") !== reload) {
            window.location.reload();
            return;
          }
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

  function once(form) {
    form.addEventListener("submit", function () {
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (button) {
          button.disabled = true;
        });
      }, 0);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(follow);
    document.querySelectorAll("form[data-once]").forEach(once);
  });
})();
