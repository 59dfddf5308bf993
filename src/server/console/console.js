// The console's progressive enhancement: every page works without this script.
(function () {
  "use strict";
  // Top-up form: the fee and the total as the amount is typed (the review page that
  // follows shows the figures the gateway computed; these are only a preview).
  var form = document.getElementById("topup-form");
  if (form) {
    var bp = parseInt(form.getAttribute("data-fee-bp"), 10);
    var input = document.getElementById("amount");
    var out = document.getElementById("fee-preview");
    var update = function () {
      var m = /^\s*\$?(\d{1,7})(?:\.(\d{1,2}))?\s*$/.exec(input.value);
      if (!m) { out.textContent = ""; return; }
      var cents = parseInt(m[1], 10) * 100 + parseInt(((m[2] || "") + "00").slice(0, 2), 10);
      // Half-up to the cent, as the gateway rounds the fee.
      var fee = Math.floor((cents * bp + 5000) / 10000);
      var fmt = function (c) { return "$" + Math.floor(c / 100) + "." + ("0" + (c % 100)).slice(-2); };
      out.textContent = "Fee " + fmt(fee) + ", charged " + fmt(cents + fee) + " in total.";
    };
    input.addEventListener("input", update);
    update();
  }
  // Copy buttons.
  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (b) {
    b.addEventListener("click", function () {
      var el = document.getElementById(b.getAttribute("data-copy"));
      if (el && navigator.clipboard) {
        navigator.clipboard.writeText(el.textContent).then(function () { b.textContent = "Copied"; });
      }
    });
  });
  // Buttons that cannot be undone ask first.
  Array.prototype.forEach.call(document.querySelectorAll("button[data-confirm]"), function (b) {
    b.addEventListener("click", function (e) {
      if (!window.confirm(b.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
  // Pages waiting for something (a payment's confirmation) reload themselves.
  var auto = document.querySelector("[data-auto-refresh]");
  if (auto) {
    setTimeout(function () { window.location.reload(); }, 1000 * parseInt(auto.getAttribute("data-auto-refresh"), 10));
  }
})();
