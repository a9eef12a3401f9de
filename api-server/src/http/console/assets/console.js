// Faxbot console: the little script the pages use. Served from the binary; no inline script anywhere (the
// Content-Security-Policy allows only this file). It never logs anything, so nothing reaches the console.
"use strict";
(function () {
  // Times in the viewer's time zone.
  for (const el of document.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when.getTime())) {
      el.textContent = when.toLocaleString();
      el.title = el.getAttribute("datetime");
    }
  }
  // A job that is not finished yet: reload its page every few seconds until it is.
  const refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    const seconds = Math.max(1, parseInt(refresh.getAttribute("data-refresh"), 10) || 2);
    setTimeout(function () { window.location.replace(window.location.pathname); }, seconds * 1000);
  }
  // While the next page loads (a long list, a slow upload), say so: a bar at the top, and the page marked
  // busy for assistive technology.
  const busy = function () { document.body.setAttribute("aria-busy", "true"); };
  for (const link of document.querySelectorAll("a[href^='/admin/ui/']")) {
    link.addEventListener("click", busy);
  }
  // Forms: disable the button while the request runs, so a slow upload is not sent twice. (Not for a form
  // that downloads a file: no new page comes, and the button must work again.)
  for (const form of document.querySelectorAll("form")) {
    form.addEventListener("submit", function () {
      if (form.hasAttribute("data-download")) return;
      busy();
      for (const b of form.querySelectorAll("button[type=submit]")) {
        b.disabled = true;
        b.setAttribute("aria-busy", "true");
      }
    });
  }
})();
