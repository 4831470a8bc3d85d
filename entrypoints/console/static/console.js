// The console's own script: no inline code anywhere (the Content-Security-Policy allows
// scripts from this origin only), so what the pages do beyond htmx attributes is here.
(function () {
  "use strict";

  // htmx sends forms and button values as JSON: the API's boundary takes only JSON bodies.
  htmx.defineExtension("json-enc", {
    onEvent: function (name, event) {
      if (name === "htmx:configRequest") {
        event.detail.headers["Content-Type"] = "application/json";
      }
    },
    encodeParameters: function (xhr, parameters) {
      xhr.overrideMimeType("text/json");
      var body = {};
      parameters.forEach(function (value, key) { body[key] = value; });
      return JSON.stringify(body);
    },
  });

  var COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var POINTS_KEPT = 150; // five minutes at one point every two seconds

  function lagChart(element) {
    var groups = JSON.parse(element.dataset.groups);
    var data = [[]].concat(groups.map(function () { return []; }));
    var series = [{}].concat(groups.map(function (group, index) {
      return { label: group, stroke: COLOURS[index % COLOURS.length], width: 1.5 };
    }));
    var plot = new uPlot({
      width: Math.max(element.clientWidth, 600),
      height: 280,
      series: series,
      axes: [{}, { label: "lag (messages)" }],
      scales: { y: { range: function (self, min, max) { return [0, Math.max(10, max)]; } } },
    }, data, element);
    return function (point) {
      data[0].push(point.at);
      groups.forEach(function (group, index) { data[index + 1].push(point.lag[group] || 0); });
      if (data[0].length > POINTS_KEPT) { data.forEach(function (column) { column.shift(); }); }
      plot.setData(data);
      element.dataset.totalLag = String(point.total);
    };
  }

  // A live panel: its stream's "panel" events replace it (server-rendered HTML), and a
  // "lag" event adds a point to the page's chart.
  function follow(panel) {
    var chartElement = document.getElementById("lag-chart");
    var addPoint = chartElement ? lagChart(chartElement) : null;
    var source = new EventSource(panel.dataset.live);
    source.addEventListener("panel", function (event) {
      panel.innerHTML = event.data;
      htmx.process(panel);
    });
    source.addEventListener("lag", function (event) {
      if (addPoint) { addPoint(JSON.parse(event.data)); }
    });
    source.addEventListener("open", function () { panel.dataset.connected = "true"; });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(follow);
  });
})();
