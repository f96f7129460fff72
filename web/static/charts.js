// Draws the console's charts with uPlot. A chart is an element with
// data-chart="ID", where ID names a <script type="application/json">
// element holding {"x": [unix seconds...], "series": [{"label": "...",
// "values": [...]}], "bars": false}. The server renders a text summary in
// the chart's aria-label, so the chart itself is decoration for sighted
// readers and the page reads the same without JavaScript.
(function () {
  "use strict";

  var palette = ["#1f5fbf", "#b35900", "#1b7f3b", "#8a2be2", "#a4161a", "#00707a"];

  function options(spec, width) {
    var series = [{}];
    spec.series.forEach(function (s, i) {
      var colour = palette[i % palette.length];
      var line = { label: s.label, stroke: colour, width: 2 };
      if (spec.bars) {
        line.fill = colour;
        line.paths = uPlot.paths.bars({ size: [0.8, 40] });
        line.points = { show: false };
      }
      series.push(line);
    });
    return {
      width: width,
      height: spec.height || 160,
      series: series,
      legend: { show: spec.series.length > 1 },
      axes: [{}, { size: 50 }],
      scales: { x: { time: true } },
      // The console writes every time in UTC; the axes read the same.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
    };
  }

  function draw(el) {
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source || typeof uPlot === "undefined") {
      return;
    }
    var spec = JSON.parse(source.textContent);
    if (!spec.x || spec.x.length === 0) {
      return;
    }
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    var width = Math.max(el.clientWidth, 200);
    var plot = new uPlot(options(spec, width), data, el);
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(el.clientWidth, 200), height: spec.height || 160 });
    });
  }

  document.querySelectorAll("[data-chart]").forEach(draw);
})();
