// The strangler dashboard: draws the charts (uPlot, vendored) and keeps the
// page up to date by polling its JSON (body[data-api]) every few seconds.
// Elements with data-k="a/b/c" show that path of the snapshot, formatted as
// data-f says; rows with data-cls get the class ok/bad/na from a boolean.
// When the structure changes (a route's state, a new history entry) the page
// reloads instead. No inline script: the CSP allows scripts from here only.
(function () {
  "use strict";
  var REFRESH_MS = 5000;
  var COLOURS = {
    legacy: "#8a6d3b",
    legacyFill: "rgba(138,109,59,0.18)",
    service: "#1f7a5a",
    serviceFill: "rgba(31,122,90,0.18)",
    burn: "#3558a8",
    burnFill: "rgba(53,88,168,0.15)",
    bad: "#b3261e",
    limit: "#b3261e",
  };

  function get(obj, path) {
    var parts = path.split("/");
    for (var i = 0; i < parts.length; i++) {
      if (obj === null || obj === undefined) return undefined;
      obj = obj[parts[i]];
    }
    return obj;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function fmt(value, kind) {
    if (value === null || value === undefined) return "–";
    switch (kind) {
      case "int": return Math.round(value).toLocaleString("en-US");
      case "pct": return (value * 100).toFixed(2) + "%";
      case "pct100": return value.toFixed(1) + "%";
      case "ratio": return value.toFixed(2) + "×";
      case "time":
        var d = new Date(value * 1000);
        return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" +
          pad(d.getUTCDate()) + " " + pad(d.getUTCHours()) + ":" +
          pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + "Z";
      default: return String(value);
    }
  }

  // Axis labels: HH:MM in UTC, as every time on the page.
  function clock(ts) {
    var d = new Date(ts * 1000);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
  }

  // Rows [[t, a, b, ...], ...] -> uPlot's columns [[t...], [a...], [b...]].
  function columns(rows, width) {
    var cols = [];
    for (var c = 0; c < width; c++) cols.push([]);
    (rows || []).forEach(function (row) {
      for (var c = 0; c < width; c++) cols[c].push(row[c] === undefined ? null : row[c]);
    });
    return cols;
  }

  function points(data) {
    var n = 0;
    for (var s = 1; s < data.length; s++) {
      data[s].forEach(function (v) { if (v !== null && v !== undefined) n++; });
    }
    return n;
  }

  var KINDS = {
    burn: function (rows) {
      return {
        data: columns(rows, 2),
        series: [{}, {
          label: "monolith share %", stroke: COLOURS.burn, fill: COLOURS.burnFill,
          width: 2, spanGaps: true,
          value: function (u, v) { return v === null ? "–" : v.toFixed(1) + "%"; },
        }],
        scales: { y: { range: [0, 100] } },
        height: 210,
      };
    },
    split: function (rows) {
      return {
        data: columns(rows, 3),
        series: [{},
          { label: "monolith", stroke: COLOURS.legacy, fill: COLOURS.legacyFill, width: 2 },
          { label: "service", stroke: COLOURS.service, fill: COLOURS.serviceFill, width: 2 }],
        scales: { y: { range: function (u, lo, hi) { return [0, Math.max(hi, 1)]; } } },
        height: 150,
      };
    },
    mismatch: function (rows, el) {
      var max = parseFloat(el.getAttribute("data-max") || "0");
      var data = columns(rows, 4);
      var limit = data[0].map(function () { return max; });
      return {
        data: [data[0], data[3], limit],
        series: [{},
          { label: "mismatch %", stroke: COLOURS.bad, width: 2, spanGaps: false,
            points: { show: true, size: 4 },
            value: function (u, v) { return v === null ? "–" : v.toFixed(2) + "%"; } },
          { label: "gate max", stroke: COLOURS.limit, dash: [6, 4], width: 1 }],
        scales: { y: { range: function (u, lo, hi) { return [0, Math.max(hi, max * 2, 1)]; } } },
        height: 190,
      };
    },
    latency: function (rows) {
      return {
        data: columns(rows, 5),
        series: [{},
          { label: "monolith p50", stroke: COLOURS.legacy, width: 2, spanGaps: true },
          { label: "monolith p95", stroke: COLOURS.legacy, width: 1, dash: [5, 4], spanGaps: true },
          { label: "service p50", stroke: COLOURS.service, width: 2, spanGaps: true },
          { label: "service p95", stroke: COLOURS.service, width: 1, dash: [5, 4], spanGaps: true }],
        scales: { y: { range: function (u, lo, hi) { return [0, Math.max(hi || 0, 1)]; } } },
        height: 190,
      };
    },
  };

  var charts = [];

  function draw(el, snapshot) {
    var make = KINDS[el.getAttribute("data-chart")];
    if (!make || typeof uPlot === "undefined") return;
    var spec = make(get(snapshot, el.getAttribute("data-src")), el);
    var opts = {
      width: Math.max(el.clientWidth, 200),
      height: spec.height,
      series: spec.series,
      scales: Object.assign({ x: { time: true } }, spec.scales),
      axes: [
        { stroke: "#555", grid: { stroke: "#eee" }, ticks: { stroke: "#ddd" },
          values: function (u, ticks) { return ticks.map(clock); } },
        { stroke: "#555", grid: { stroke: "#eee" }, ticks: { stroke: "#ddd" }, size: 48 },
      ],
      // The captions carry the keys; hovering shows the values.
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
    };
    el.textContent = "";
    var chart = new uPlot(opts, spec.data, el);
    el.setAttribute("data-points", String(points(spec.data)));
    charts.push({ el: el, chart: chart, make: make });
  }

  function update(snapshot) {
    document.querySelectorAll("[data-k]").forEach(function (el) {
      var text = fmt(get(snapshot, el.getAttribute("data-k")), el.getAttribute("data-f"));
      if (el.textContent !== text) {
        el.textContent = text;
        el.classList.remove("changed");
        void el.offsetWidth; // restart the highlight
        el.classList.add("changed");
      }
    });
    document.querySelectorAll("[data-cls]").forEach(function (el) {
      var ok = get(snapshot, el.getAttribute("data-cls"));
      el.classList.remove("ok", "bad", "na");
      el.classList.add(ok === null || ok === undefined ? "na" : ok ? "ok" : "bad");
    });
    charts.forEach(function (c) {
      var spec = c.make(get(snapshot, c.el.getAttribute("data-src")), c.el);
      c.chart.setData(spec.data);
      c.el.setAttribute("data-points", String(points(spec.data)));
    });
  }

  function start() {
    var holder = document.getElementById("snapshot");
    var snapshot = holder ? JSON.parse(holder.textContent) : {};
    var signature = snapshot.signature;
    document.querySelectorAll("[data-chart]").forEach(function (el) { draw(el, snapshot); });

    var team = document.getElementById("team");
    if (team) {
      team.addEventListener("change", function () { team.form.submit(); });
    }
    window.addEventListener("resize", function () {
      charts.forEach(function (c) {
        c.chart.setSize({ width: Math.max(c.el.clientWidth, 200), height: c.chart.height });
      });
    });

    var api = document.body.getAttribute("data-api");
    var live = document.getElementById("live");
    var refreshes = 0;
    function poll() {
      fetch(api, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { location.reload(); throw new Error("session"); }
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (next) {
          if (next.signature !== signature) { location.reload(); return; }
          update(next);
          refreshes++;
          document.body.setAttribute("data-refreshes", String(refreshes));
          if (live) live.classList.remove("stale");
        })
        .catch(function () { if (live) live.classList.add("stale"); })
        .then(function () { setTimeout(poll, REFRESH_MS); });
    }
    if (api) setTimeout(poll, REFRESH_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
