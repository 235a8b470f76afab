// FinCore dashboard: the only script, first party, loaded with this response's CSP nonce and
// an integrity hash. Progressive enhancement only: every page works without it.
(function () {
  "use strict";
  // Ask before destructive actions (buttons carrying data-confirm).
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
  // The server ends a session after its idle timeout (PCI DSS 8.2.8); show the login page
  // when that time has passed without a request, instead of a stale page.
  var idle = parseInt(document.body.getAttribute("data-idle-seconds") || "0", 10);
  if (idle > 0) {
    window.setTimeout(function () {
      window.location.assign("/login?ended=idle_timeout");
    }, (idle + 2) * 1000);
  }
})();
