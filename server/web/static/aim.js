// Redraw a device's door line on its aim picture: two clicks on the sill, then one inside
// the home. The form then carries normalized coordinates (0..1 of the picture), so nobody
// types them. Plain JS; the server checks the line again, and so does the device.
(function () {
  "use strict";
  var box = document.getElementById("aim");
  var form = document.getElementById("door-line-form");
  if (!box || !form) { return; }
  var img = document.getElementById("aim-picture");
  var svg = document.getElementById("aim-overlay");
  var step = document.getElementById("aim-step");
  var send = document.getElementById("aim-send");
  var current = document.getElementById("current-line");
  var steps = [box.dataset.step1, box.dataset.step2, box.dataset.step3, box.dataset.ready];
  var points = null;
  var NS = "http://www.w3.org/2000/svg";

  function clamp(v) { return Math.min(1, Math.max(0, v)); }

  function mark(x1, y1, x2, y2, colour, width) {
    var line = document.createElementNS(NS, "line");
    line.setAttribute("x1", x1); line.setAttribute("y1", y1);
    line.setAttribute("x2", x2); line.setAttribute("y2", y2);
    line.setAttribute("stroke", colour); line.setAttribute("stroke-width", width);
    line.setAttribute("stroke-linecap", "round");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    line.setAttribute("class", "drawn");
    svg.appendChild(line);
  }

  function draw() {
    Array.prototype.forEach.call(svg.querySelectorAll(".drawn"), function (n) { n.remove(); });
    if (points.length >= 1) { mark(points[0][0], points[0][1], points[0][0], points[0][1], "#e02424", 10); }
    if (points.length >= 2) { mark(points[0][0], points[0][1], points[1][0], points[1][1], "#e02424", 3); }
    if (points.length >= 3) { mark(points[2][0], points[2][1], points[2][0], points[2][1], "#0a9e3a", 12); }
    step.textContent = steps[points.length];
  }

  document.getElementById("aim-redraw").addEventListener("click", function () {
    points = [];
    if (current) { current.setAttribute("visibility", "hidden"); }
    send.disabled = true;
    box.classList.add("drawing");
    draw();
  });

  img.addEventListener("click", function (event) {
    if (points === null || points.length >= 3) { return; }
    var r = img.getBoundingClientRect();
    points.push([clamp((event.clientX - r.left) / r.width), clamp((event.clientY - r.top) / r.height)]);
    draw();
    if (points.length === 3) {
      var values = [points[0][0], points[0][1], points[1][0], points[1][1], points[2][0], points[2][1]];
      ["x1", "y1", "x2", "y2", "inside_x", "inside_y"].forEach(function (name, i) {
        form.elements[name].value = values[i].toFixed(4);
      });
      send.disabled = false;
      box.classList.remove("drawing");
    }
  });
})();
