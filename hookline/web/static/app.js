// While a page shows deliveries in flight, reload it every few seconds so their
// outcome appears without a click -- unless someone is using a form on it.
(function () {
  var seconds = Number(document.body.dataset.refresh || 0);
  if (!seconds) return;
  setTimeout(function tick() {
    var busy = document.activeElement && document.activeElement.closest("form");
    var open = document.querySelector("details[open]");
    if (busy || open) { setTimeout(tick, seconds * 1000); return; }
    location.reload();
  }, seconds * 1000);
})();
