// Live incidents: listen for server-sent events and insert the new rows, highlighted.
// Plain JS, no framework; the page works without it (reload shows the same rows).
(function () {
  "use strict";
  var table = document.getElementById("incidents");
  if (!table || !window.EventSource) { return; }
  var body = table.tBodies[0];
  var banner = document.getElementById("live-banner");
  var filtered = table.dataset.filtered === "1";
  var unseen = 0;
  var baseTitle = document.title;
  var source = new EventSource(table.dataset.live);
  source.addEventListener("incident", function (message) {
    var data = JSON.parse(message.data);
    if (filtered) {  // the new incident may not match the filters: offer a reload instead
      if (banner) { banner.hidden = false; }
      return;
    }
    if (body.querySelector('tr[data-id="' + data.id + '"]')) { return; }
    fetch("/incidents/" + data.id + "/row", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        if (!html) { return; }
        var holder = document.createElement("tbody");
        holder.innerHTML = html.trim();
        var row = holder.firstElementChild;
        if (!row || body.querySelector('tr[data-id="' + data.id + '"]')) { return; }
        body.insertBefore(row, body.firstChild);
        var empty = document.getElementById("empty");
        if (empty) { empty.remove(); }
        unseen += 1;
        document.title = "(" + unseen + ") " + baseTitle;
      });
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { unseen = 0; document.title = baseTitle; }
  });
}());
