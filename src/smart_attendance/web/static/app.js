/* Smart Attendance dashboard: small progressive enhancements, no library, no CDN.
 * - live regions: an element with data-live-src is refreshed from that URL (an HTML fragment)
 *   every data-live-every seconds, unless the user is working inside it; these requests say
 *   X-Live-Refresh, so they do not keep an idle session alive;
 * - window.attendance.post(url, body): a fetch POST with the page's CSRF token.
 * Every page works without this file: forms post and come back.
 */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function request(url, options) {
    options = options || {};
    options.headers = Object.assign({ "X-Requested-With": "fetch" }, options.headers || {});
    options.credentials = "same-origin";
    if (options.method && options.method !== "GET") {
      options.headers["X-CSRFToken"] = csrfToken();
    }
    return fetch(url, options);
  }

  function busy(region) {
    var active = document.activeElement;
    if (active && region.contains(active) && active.matches("input, textarea, select")) {
      return true;
    }
    return region.querySelector("details[open]") !== null;
  }

  function live(region) {
    var every = Math.max(2, parseInt(region.getAttribute("data-live-every") || "5", 10)) * 1000;
    var status = document.querySelector("[data-live-status]");
    var last = region.innerHTML;
    function say(text) { if (status) { status.textContent = text; } }
    function tick() {
      if (document.hidden || busy(region)) { return; }
      // X-Live-Refresh: a refresh is not the user's activity (an open board still ends idle)
      var refresh = { headers: { "X-Live-Refresh": "1" } };
      request(region.getAttribute("data-live-src"), refresh).then(function (response) {
        if (response.status === 401) {
          say("Signed out: reload the page to sign in again.");
          return null;
        }
        if (!response.ok) { say("Could not update (" + response.status + "); retrying."); return null; }
        return response.text();
      }).then(function (html) {
        if (html === null || html === undefined) { return; }
        var now = new Date().toLocaleTimeString();
        if (html !== last && !busy(region)) {
          region.innerHTML = html;
          last = html;
          say("Updated at " + now);
        } else {
          say("Up to date at " + now);
        }
      }).catch(function () { say("Server unreachable; retrying."); });
    }
    setInterval(tick, every);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { tick(); } });
  }

  window.attendance = {
    csrfToken: csrfToken,
    request: request,
    post: function (url, body) { return request(url, { method: "POST", body: body }); }
  };

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-src]").forEach(live);
  });
})();
