/* GE-Lab viewer. Reads the globals of data/env.js, data/index.js and data/summary.js and loads
 * the steps of episodes on demand from data/chunks/MODEL/K.js (script tags: fetch of local files is
 * refused under file://). Routes: #/env/ENV/PAGE, #/episodes?filters, #/episode/N, #/failures/MODEL.
 * Coordinates are 0..1000 of the canvas; boxes and click points are placed in percent. */
(function () {
  "use strict";

  var ENV = window.GELAB_ENV;
  var IDX = window.GELAB_INDEX;
  var SUM = window.GELAB_SUMMARY || {};
  var app = document.getElementById("app");
  var OUTCOME_LABEL = {success: "success", premature_complete: "premature complete",
                       cap: "no complete (cap reached)", unfinished: "unfinished"};
  var FLAG = {loop: 1, miss: 2, invalid: 4};
  var KINDS = [["", "any"], ["failure", "any failure"], ["premature_complete", "premature complete"],
               ["cap", "missing complete (cap reached)"], ["cap_reached", "target reached, no complete"],
               ["loop", "loop (page revisited)"], ["miss", "miss"], ["invalid", "invalid output"],
               ["unfinished", "unfinished"]];
  var SUCCESS_FILTERS = [["", "any"], ["strict", "strict success"], ["strict-fail", "strict failure"],
                         ["lenient", "lenient success"], ["lenient-fail", "lenient failure"]];

  // --- small DOM helpers ------------------------------------------------------------------------
  function el(tag, attrs) {
    var node = document.createElement(tag);
    var a = attrs || {};
    Object.keys(a).forEach(function (k) {
      var v = a[k];
      if (v === null || v === undefined) return;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k === "style") node.setAttribute("style", v);
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.keys(v).forEach(function (d) { node.dataset[d] = v[d]; });
      else node.setAttribute(k, v);
    });
    for (var i = 2; i < arguments.length; i++) add(node, arguments[i]);
    return node;
  }
  function add(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(node, c); }); return; }
    node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  function svg(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function pageNum(p) { return parseInt(String(p).split("_").pop(), 10); }
  function byPage(a, b) { return pageNum(a) - pageNum(b); }
  function clicks(n) { return n + (n === 1 ? " click" : " clicks"); }
  function link(href, text, attrs) { var a = el("a", attrs || {}); a.href = href; a.textContent = text; return a; }
  function envHref(env, page) { return "#/env/" + encodeURIComponent(env) + "/" + encodeURIComponent(page); }

  // --- screenshots with boxes and click points --------------------------------------------------
  function screen(envName, page, opts) {
    var env = ENV.envs[envName];
    var o = opts || {};
    var box = el("div", {"class": "screen " + (o.size || ""), dataset: {env: envName, page: page},
                         style: "aspect-ratio: " + env.canvas[0] + " / " + env.canvas[1]});
    box.appendChild(el("img", {src: env.pages[page].image, alt: page + " (" + envName + ")"}));
    if (o.hotspots !== false) {
      env.pages[page].elements.forEach(function (e) {
        var b = e[2];
        var cls = "hotspot " + (e[1] === "system" ? "system" : "") + (e[3] ? "" : " dead") +
                  (o.onHotspot ? "" : " passive") + (o.hit && o.hit === e[0] ? " hit" : "");
        var spot = el("div", {"class": cls, title: e[0] + (e[3] ? " → " + e[3] : " (leads nowhere)"),
                              dataset: {name: e[0], target: e[3] || ""},
                              style: "left:" + b[0] / 10 + "%;top:" + b[1] / 10 + "%;width:" + (b[2] - b[0]) / 10 +
                                     "%;height:" + (b[3] - b[1]) / 10 + "%"});
        if (o.onHotspot) spot.addEventListener("click", function () { o.onHotspot(e[0], e[3]); });
        box.appendChild(spot);
      });
    }
    if (o.click) {
      box.appendChild(el("div", {"class": "click-marker", title: "click (" + o.click[0] + "," + o.click[1] + ")",
                                 dataset: {x: o.click[0], y: o.click[1]},
                                 style: "left:" + o.click[0] / 10 + "%;top:" + o.click[1] / 10 + "%"}));
    }
    return box;
  }

  // --- environment browser ----------------------------------------------------------------------
  var graphCache = null;

  function buildGraph() {
    var base = ENV.envs.base;
    var L = ENV.layout;
    // radial drawing: the root in the centre, depth d on the circle of radius d * ring, leaves spread
    // evenly round the circle in tree order (layout x = leaf column), so subtrees are wedges
    var ring = 60, pad = 14, cols = 0, depth = 0;
    Object.keys(L).forEach(function (p) { cols = Math.max(cols, L[p][0] + 1); depth = Math.max(depth, L[p][1]); });
    var half = depth * ring + pad, w = 2 * half, h = 2 * half;
    var root = svg("svg", {viewBox: "0 0 " + w + " " + h, id: "graph"});
    function at(p) {
      var a = 2 * Math.PI * (L[p][0] + 0.5) / cols - Math.PI / 2, r = L[p][1] * ring;
      return [half + r * Math.cos(a), half + r * Math.sin(a)];
    }
    var edgesOf = {};
    var layers = {tree: svg("g"), back: svg("g"), home: svg("g"), other: svg("g")};
    Object.keys(base.edges).forEach(function (kind) {
      base.edges[kind].forEach(function (pair) {
        var a = at(pair[0]), b = at(pair[1]), shape;
        if (kind === "back") {  // child -> parent, bowed to one side of the tree edge
          var ex = b[0] - a[0], ey = b[1] - a[1], len = Math.sqrt(ex * ex + ey * ey) || 1;
          var mx = (a[0] + b[0]) / 2 - 8 * ey / len, my = (a[1] + b[1]) / 2 + 8 * ex / len;
          shape = svg("path", {d: "M" + a[0] + "," + a[1] + " Q" + mx + "," + my + " " + b[0] + "," + b[1]});
        } else {
          shape = svg("line", {x1: a[0], y1: a[1], x2: b[0], y2: b[1]});
        }
        shape.setAttribute("class", "edge " + kind);
        layers[kind].appendChild(shape);
        (edgesOf[pair[0]] = edgesOf[pair[0]] || []).push(shape);
      });
    });
    ["home", "back", "tree", "other"].forEach(function (k) { root.appendChild(layers[k]); });
    var nodes = {};
    Object.keys(L).forEach(function (p) {
      var xy = at(p);
      var g = svg("g", {"class": "node", "data-page": p, transform: "translate(" + xy[0] + "," + xy[1] + ")"});
      var t = svg("title"); t.textContent = p; g.appendChild(t);
      g.appendChild(svg("circle", {r: 7}));
      var label = svg("text", {y: 2.5}); label.textContent = pageNum(p); g.appendChild(label);
      g.addEventListener("click", function () { location.hash = envHref(graphCache.env, p); });
      root.appendChild(g);
      nodes[p] = g;
    });
    return {svg: root, nodes: nodes, edgesOf: edgesOf, env: "base", current: null};
  }

  function showEnv(envName, page) {
    if (!ENV.envs[envName]) envName = "base";
    var env = ENV.envs[envName];
    if (!env.pages[page]) page = ENV.root;
    if (!graphCache) graphCache = buildGraph();
    var g = graphCache;
    g.env = envName;
    if (g.current) {
      g.nodes[g.current].classList.remove("current");
      (g.edgesOf[g.current] || []).forEach(function (s) { s.classList.remove("active"); });
      g.svg.querySelectorAll(".node.neighbour").forEach(function (n) { n.classList.remove("neighbour"); });
    }
    g.current = page;
    if (g.nodes[page]) g.nodes[page].classList.add("current");
    (g.edgesOf[page] || []).forEach(function (s) { s.classList.add("active"); });
    env.pages[page].elements.forEach(function (e) { if (e[3] && g.nodes[e[3]]) g.nodes[e[3]].classList.add("neighbour"); });

    var message = el("div", {id: "nav-message"});
    function go(name, target) {
      if (target) location.hash = envHref(envName, target);
      else message.textContent = name + " leads nowhere";
    }
    var crumbs = [], p = page;
    while (p) { crumbs.unshift(p); p = env.pages[p].parent; }
    var select = el("select", {id: "env-select", onchange: function () { location.hash = envHref(select.value, page); }});
    Object.keys(ENV.envs).forEach(function (name) {
      var opt = el("option", {value: name, text: name === "base" ? "Env-Base" : "Env-" + name});
      if (name === envName) opt.selected = true;
      select.appendChild(opt);
    });
    var rows = env.pages[page].elements.map(function (e) {
      return el("tr", {}, el("td", {}, e[0]), el("td", {"class": "muted"}, e[1]),
                el("td", {}, e[3] ? link(envHref(envName, e[3]), e[3]) : el("span", {"class": "muted", text: "leads nowhere"})));
    });
    var onlyCurrent = el("input", {type: "checkbox", id: "only-current", onchange: function () {
      g.svg.classList.toggle("only-current", onlyCurrent.checked); }});
    onlyCurrent.checked = g.svg.classList.contains("only-current");
    var panel = el("div", {"class": "page-panel"},
      el("div", {"class": "panel"},
        el("h2", {}, el("span", {id: "page-id", text: page}), " ",
           el("span", {"class": "muted", text: "depth " + env.pages[page].depth})),
        el("div", {}, "Environment ", select),
        el("div", {"class": "crumbs"}, "Path from the root: ", crumbs.map(function (c, i) {
          return [i ? " › " : "", link(envHref(envName, c), c)]; })),
        el("p", {"class": "muted", text: "Click an icon to go where it leads (back, home and content icons), as in the app."}),
        message,
        el("div", {"class": "page-row"},
          screen(envName, page, {onHotspot: go}),
          el("table", {id: "elements"}, el("tr", {}, el("th", {text: "element"}), el("th", {text: "kind"}),
                                            el("th", {text: "leads to"})), rows))));
    var names = Object.keys(ENV.envs);
    if (names.length > 1) {
      panel.appendChild(el("div", {"class": "panel", id: "variants"},
        el("h3", {text: "The same page in every environment"}),
        el("div", {"class": "variants"}, names.map(function (name) {
          return el("figure", {dataset: {env: name}},
            el("figcaption", {text: name === "base" ? "Env-Base" : "Env-" + name}),
            screen(name, page, {size: "small", onHotspot: function (n, t) {
              if (t) location.hash = envHref(name, t); else message.textContent = n + " leads nowhere (" + name + ")"; }}));
        }))));
    }
    var graphBox = el("div", {"class": "graph panel"},
      el("h3", {text: "Page graph (" + Object.keys(env.pages).length + " pages)"}),
      el("div", {"class": "legend"}, el("span", {"class": "k-tree", text: "── content icon (tree)"}),
         el("span", {"class": "k-back", text: "╌╌ back"}), el("span", {"class": "k-home", text: "┈┈ home"}),
         el("label", {}, onlyCurrent, " back/home of this page only")),
      g.svg);
    app.replaceChildren(el("div", {"class": "env-view"}, graphBox, panel));
  }

  // --- episodes: index columns, chunks ---------------------------------------------------------
  var E = IDX.episodes;
  var N = E.model.length;
  var tasks = IDX.tasks;
  var outcomeIndex = {};
  IDX.outcomes.forEach(function (o, i) { outcomeIndex[o] = i; });
  var lengthOf = new Int8Array(N), startOf = new Int32Array(N), targetOf = new Int32Array(N);
  for (var i = 0; i < N; i++) {
    var t = tasks[E.task[i]];
    lengthOf[i] = t.length; startOf[i] = pageNum(t.start); targetOf[i] = pageNum(t.target);
  }

  var chunks = {}, waiting = {};
  window.gelabChunk = function (model, k, episodes) {
    var key = model + "/" + k;
    chunks[key] = episodes;
    (waiting[key] || []).forEach(function (w) { w[0](episodes); });
    delete waiting[key];
  };
  function loadChunk(model, k) {
    var key = model + "/" + k;
    if (chunks[key]) return Promise.resolve(chunks[key]);
    return new Promise(function (resolve, reject) {
      if (waiting[key]) { waiting[key].push([resolve, reject]); return; }
      waiting[key] = [[resolve, reject]];
      var s = document.createElement("script");
      s.src = "data/chunks/" + encodeURIComponent(model) + "/" + k + ".js";
      s.onerror = function () {
        (waiting[key] || []).forEach(function (w) { w[1](new Error("cannot load " + s.src)); });
        delete waiting[key];
      };
      document.head.appendChild(s);
    });
  }
  function episodeSteps(i) {
    var m = IDX.models[E.model[i]];
    var pos = i - m.first;
    return loadChunk(m.name, Math.floor(pos / IDX.chunk_size)).then(function (eps) { return eps[pos % IDX.chunk_size]; });
  }

  // --- trajectory explorer --------------------------------------------------------------------
  var state = {model: "", length: "", success: "", start: "", target: "", kind: "", shown: 100, list: null};
  var FILTER_KEYS = ["model", "length", "success", "start", "target", "kind"];

  function matcher() {
    var m = state.model === "" ? -1 : IDX.models.findIndex(function (x) { return x.name === state.model; });
    var len = state.length === "" ? -1 : parseInt(state.length, 10);
    var st = state.start === "" ? -1 : pageNum(state.start);
    var tg = state.target === "" ? -1 : pageNum(state.target);
    var succ = state.success, kind = state.kind;
    var oSuccess = outcomeIndex.success, oPremature = outcomeIndex.premature_complete,
        oCap = outcomeIndex.cap, oUnfinished = outcomeIndex.unfinished;
    return function (i) {
      if (m >= 0 && E.model[i] !== m) return false;
      if (len >= 0 && lengthOf[i] !== len) return false;
      if (st >= 0 && startOf[i] !== st) return false;
      if (tg >= 0 && targetOf[i] !== tg) return false;
      var o = E.outcome[i], strict = o === oSuccess, lenient = strict || E.reached[i] === 1;
      if (succ === "strict" && !strict) return false;
      if (succ === "strict-fail" && strict) return false;
      if (succ === "lenient" && !lenient) return false;
      if (succ === "lenient-fail" && lenient) return false;
      switch (kind) {
        case "failure": return !strict;
        case "premature_complete": return o === oPremature;
        case "cap": return o === oCap;
        case "cap_reached": return o === oCap && E.reached[i] === 1;
        case "unfinished": return o === oUnfinished;
        case "loop": case "miss": case "invalid": return (E.flags[i] & FLAG[kind]) !== 0;
        default: return true;
      }
    };
  }

  function filtered() {
    var keep = matcher(), out = [];
    for (var i = 0; i < N; i++) if (keep(i)) out.push(i);
    return out;
  }

  function marks(i) {
    var f = E.flags[i], out = [];
    if (f & FLAG.loop) out.push("loop");
    if (f & FLAG.miss) out.push("miss");
    if (f & FLAG.invalid) out.push("invalid");
    return out.join(", ");
  }

  function resultRow(i) {
    var t = tasks[E.task[i]], o = IDX.outcomes[E.outcome[i]];
    return el("tr", {dataset: {episode: i}},
      el("td", {"class": "num"}, link("#/episode/" + i, String(i))),
      el("td", {}, IDX.models[E.model[i]].name),
      el("td", {}, t.start + " → " + t.target),
      el("td", {"class": "num"}, t.length),
      el("td", {"class": "num"}, E.attempt[i]),
      el("td", {}, el("span", {"class": "badge " + o, text: OUTCOME_LABEL[o]}),
         o !== "success" && E.reached[i] ? el("span", {"class": "muted", text: " (reached)"}) : null),
      el("td", {"class": "num"}, E.steps[i]),
      el("td", {"class": "muted"}, marks(i)));
  }

  function renderResults() {
    var t0 = performance.now();
    state.list = filtered();
    var list = state.list;
    var table = document.getElementById("results");
    var head = el("tr", {}, ["#", "model", "task", "path", "attempt", "outcome", "steps", "marks"].map(function (h) {
      return el("th", {text: h}); }));
    table.replaceChildren.apply(table, [head].concat(list.slice(0, state.shown).map(resultRow)));
    document.getElementById("result-count").textContent =
      list.length + " of " + N + " episodes" + (list.length > state.shown ? " (first " + state.shown + " shown)" : "");
    document.getElementById("more").hidden = list.length <= state.shown;
    window.gelabLastFilterMs = performance.now() - t0;
    window.gelabFilterRuns = (window.gelabFilterRuns || 0) + 1;
  }

  function options(select, pairs, value) {
    pairs.forEach(function (p) {
      var opt = el("option", {value: p[0], text: p[1]});
      if (String(p[0]) === String(value)) opt.selected = true;
      select.appendChild(opt);
    });
    return select;
  }

  function showEpisodes(params) {
    var given = FILTER_KEYS.some(function (k) { return params.has(k); });
    if (given) FILTER_KEYS.forEach(function (k) { state[k] = params.get(k) || ""; });
    state.shown = 100;
    var lengths = [], pages = {};
    tasks.forEach(function (t) {
      if (lengths.indexOf(t.length) < 0) lengths.push(t.length);
      pages[t.start] = 1; pages[t.target] = 1;
    });
    lengths.sort(function (a, b) { return a - b; });
    var pageList = Object.keys(pages).sort(byPage);
    function control(key, label, pairs) {
      var s = el("select", {id: "f-" + key, onchange: function () { state[key] = s.value; state.shown = 100; renderResults(); }});
      return el("label", {}, label, options(s, pairs, state[key]));
    }
    var all = [["", "all"]];
    app.replaceChildren(
      el("div", {"class": "panel"},
        el("h2", {text: "Trajectories of the interactive evaluation"}),
        N ? null : el("p", {"class": "muted", text: "No trajectory log was given to gelab view."}),
        el("div", {"class": "filters"},
          control("model", "model", all.concat(IDX.models.map(function (m) { return [m.name, m.name + " (" + m.episodes + ")"]; }))),
          control("length", "path length", all.concat(lengths.map(function (n) { return [n, String(n)]; }))),
          control("success", "success", SUCCESS_FILTERS),
          control("start", "start", all.concat(pageList.map(function (p) { return [p, p]; }))),
          control("target", "target", all.concat(pageList.map(function (p) { return [p, p]; }))),
          control("kind", "failure kind", KINDS))),
      el("div", {id: "result-count"}),
      el("table", {id: "results"}),
      el("p", {}, el("button", {id: "more", type: "button", text: "show 100 more",
                                onclick: function () { state.shown += 100; renderResults(); }})));
    renderResults();
  }

  // --- one episode ----------------------------------------------------------------------------
  function describe(step) {  // step: [page, output, action, click, claimed, hit, new_page, error]
    if (step[2] === "complete") return "complete";
    if (step[2] === "invalid") return "invalid output";
    return "click " + (step[4] || "(no name)") + " at (" + step[3][0] + "," + step[3][1] + ")";
  }

  function showEpisode(i) {
    if (!(i >= 0 && i < N)) { app.replaceChildren(el("p", {text: "No episode " + i + "."})); return; }
    var model = IDX.models[E.model[i]], t = tasks[E.task[i]], o = IDX.outcomes[E.outcome[i]];
    var list = state.list || [];
    var at = list.indexOf(i);
    var nav = el("p", {}, link("#/episodes", "← all trajectories"),
      at > 0 ? [" · ", link("#/episode/" + list[at - 1], "previous", {id: "prev"})] : null,
      at >= 0 && at < list.length - 1 ? [" · ", link("#/episode/" + list[at + 1], "next", {id: "next"})] : null,
      at >= 0 ? el("span", {"class": "muted", text: " (" + (at + 1) + " of " + list.length + " in the filter)"}) : null);
    var strict = o === "success", lenient = strict || E.reached[i] === 1;
    var header = el("div", {"class": "panel"}, nav,
      el("h2", {id: "episode-title"}, model.name + " · " + t.subtree + ": " + t.start + " → " + t.target +
         " · attempt " + E.attempt[i]),
      el("p", {}, el("span", {"class": "badge " + o, id: "episode-outcome", text: OUTCOME_LABEL[o]}),
         " strict " + (strict ? "✓" : "✗") + " · lenient " + (lenient ? "✓" : "✗") + " · shortest path " + clicks(t.length) +
         " · " + E.steps[i] + " steps" + (marks(i) ? " · " + marks(i) : "")));
    var body = el("div", {id: "episode-body"}, el("p", {"class": "muted", text: "loading steps…"}));
    app.replaceChildren(header, body);
    episodeSteps(i).then(function (ep) {
      if (location.hash !== "#/episode/" + i) return;
      body.dataset.key = ep.key;
      var optimal = el("ol", {id: "optimal-path"}, t.optimal.map(function (s) {
        return el("li", {}, link(envHref("base", s[0]), s[0]), ": click " + s[1] + " → " + s[2]); }),
        el("li", {}, t.target + ": complete"));
      var agent = el("ol", {id: "agent-path"}, ep.steps.map(function (s) {
        return el("li", {"class": s[7] ? "error" : ""}, s[0] + ": " + describe(s) +
                  (s[6] !== s[0] ? " → " + s[6] : "") + (s[7] ? " (" + s[7] + ")" : "")); }));
      var cards = ep.steps.map(function (s, k) {
        return el("div", {"class": "step", dataset: {step: k}},
          screen("base", s[0], {size: "step", click: s[3], hit: s[5]}),
          el("div", {"class": "step-info"},
            el("h3", {}, "Step " + (k + 1) + " on ", link(envHref("base", s[0]), s[0])),
            el("dl", {},
              el("dt", {text: "action"}), el("dd", {"class": "parsed-action", text: describe(s)}),
              el("dt", {text: "claimed"}), el("dd", {"class": "claimed", text: s[4] || "—"}),
              el("dt", {text: "hit"}), el("dd", {"class": "hit", text: s[5] || "nothing"}),
              el("dt", {text: "error"}), el("dd", {"class": "step-error" + (s[7] ? " error" : ""), text: s[7] || "—"}),
              el("dt", {text: "then on"}), el("dd", {"class": "new-page", text: s[6]})),
            el("div", {"class": "muted", text: "raw output"}),
            el("pre", {"class": "raw-output", text: s[1]})));
      });
      var last = ep.steps.length ? ep.steps[ep.steps.length - 1][6] : t.start;
      cards.push(el("div", {"class": "step final"}, screen("base", last, {size: "step"}),
        el("div", {"class": "step-info"}, el("h3", {text: "Ended on " + last}),
           el("p", {text: last === t.target ? "the target page" : "not the target (" + t.target + ")"}))));
      body.replaceChildren(
        el("div", {"class": "panel paths"},
          el("div", {}, el("h3", {text: "Optimal path (" + clicks(t.length) + ")"}), optimal),
          el("div", {}, el("h3", {text: "The agent (" + ep.steps.length + " steps)"}), agent)),
        el("div", {"class": "steps", id: "steps"}, cards));
    }, function (err) { body.replaceChildren(el("p", {"class": "error", text: String(err)})); });
  }

  // --- failure summaries ------------------------------------------------------------------------
  function episodesLink(model, kind, text) {
    return link("#/episodes?model=" + encodeURIComponent(model) + "&kind=" + kind, String(text));
  }
  function rateCell(r) {
    return r.rate === null ? "—" : r.rate.toFixed(2) + "% [" + r.low.toFixed(1) + ", " + r.high.toFixed(1) + "]";
  }
  function bar(r) {  // rate with its 95% interval, 0..100% over 120 px
    var s = svg("svg", {width: 124, height: 12, "class": "bar"});
    s.appendChild(svg("rect", {x: 2, y: 3, width: 120, height: 6, fill: "#eef0f4"}));
    if (r.rate !== null) {
      s.appendChild(svg("rect", {x: 2, y: 3, width: 1.2 * r.rate, height: 6, fill: "#7d9ad6"}));
      s.appendChild(svg("line", {x1: 2 + 1.2 * r.low, x2: 2 + 1.2 * r.high, y1: 6, y2: 6, stroke: "#1d2330", "stroke-width": 1.5}));
    }
    return s;
  }
  function tally(title, rows, first, makeName) {
    var top = rows.slice(0, 15);
    return el("div", {"class": "panel"}, el("h3", {text: title + (rows.length > 15 ? " (top 15 of " + rows.length + ")" : "")}),
      top.length ? el("table", {}, el("tr", {}, el("th", {text: first}), el("th", {"class": "num", text: "count"})),
        top.map(function (r) { return el("tr", {}, el("td", {}, makeName ? makeName(r[0]) : r[0]), el("td", {"class": "num", text: r[1]})); }))
        : el("p", {"class": "muted", text: "none"}));
  }

  function showFailures(model) {
    var names = IDX.models.map(function (m) { return m.name; });
    if (!names.length) { app.replaceChildren(el("p", {text: "No trajectory log was given to gelab view."})); return; }
    if (names.indexOf(model) < 0) model = names[0];
    var S = SUM[model];
    var overview = el("table", {id: "models-overview"},
      el("tr", {}, ["model", "episodes", "strict success [95% CI]", "lenient", "premature complete", "cap reached",
                    "loops", "misses / step", "invalid / step"].map(function (h) { return el("th", {text: h}); })),
      names.map(function (n) {
        var s = SUM[n];
        return el("tr", {"class": n === model ? "current" : ""},
          el("td", {}, link("#/failures/" + encodeURIComponent(n), n)), el("td", {"class": "num", text: s.episodes}),
          el("td", {"class": "num", text: rateCell(s.strict)}), el("td", {"class": "num", text: rateCell(s.lenient)}),
          el("td", {"class": "num", text: s.outcomes.premature_complete}), el("td", {"class": "num", text: s.outcomes.cap}),
          el("td", {"class": "num", text: s.loops}),
          el("td", {"class": "num", text: s.steps ? (s.misses / s.steps).toFixed(3) : "—"}),
          el("td", {"class": "num", text: s.steps ? (s.invalid / s.steps).toFixed(3) : "—"}));
      }));
    var outcomes = el("table", {id: "outcomes"}, el("tr", {}, el("th", {text: "how episodes ended / what went wrong"}),
                                                     el("th", {"class": "num", text: "episodes"})),
      [["success", S.outcomes.success, "strict"], ["premature complete (said on another page)", S.outcomes.premature_complete, "premature_complete"],
       ["missing complete (step cap reached)", S.outcomes.cap, "cap"],
       ["… of which the target was reached", S.reached_without_complete, "cap_reached"],
       ["unfinished (log ends mid-episode)", S.outcomes.unfinished, "unfinished"],
       ["with a loop (a page revisited)", S.loops, "loop"]].map(function (r) {
        var href = r[2] === "strict" ? link("#/episodes?model=" + encodeURIComponent(model) + "&success=strict", String(r[1]))
                                     : episodesLink(model, r[2], r[1]);
        return el("tr", {dataset: {kind: r[2]}}, el("td", {text: r[0]}), el("td", {"class": "num"}, href));
      }),
      el("tr", {}, el("td", {text: "misses (steps)"}), el("td", {"class": "num"}, episodesLink(model, "miss", S.misses))),
      el("tr", {}, el("td", {text: "invalid outputs (steps)"}), el("td", {"class": "num"}, episodesLink(model, "invalid", S.invalid))));
    var byLength = el("table", {id: "by-length"},
      el("tr", {}, ["path length", "episodes", "strict success [95% Wilson]", "", "lenient [95% Wilson]", ""].map(function (h) {
        return el("th", {text: h}); })),
      S.by_length.map(function (r) {
        return el("tr", {}, el("td", {"class": "num"}, link("#/episodes?model=" + encodeURIComponent(model) + "&length=" + r.length, String(r.length))),
          el("td", {"class": "num", text: r.episodes}), el("td", {"class": "num", text: rateCell(r.strict)}), el("td", {}, bar(r.strict)),
          el("td", {"class": "num", text: rateCell(r.lenient)}), el("td", {}, bar(r.lenient)));
      }));
    function pageLink(p) { return link(envHref("base", p), p); }
    app.replaceChildren(
      el("div", {"class": "panel"}, el("h2", {text: "Failure summaries"}), overview,
         el("p", {"class": "muted", text: "Intervals: 95% Wilson score intervals over episodes (the attempts of a task count as separate trials)."})),
      el("h2", {id: "failures-model", text: model}),
      el("div", {"class": "panel"}, outcomes),
      el("div", {"class": "panel"}, el("h3", {text: "Success by path length"}), byLength),
      el("div", {"class": "steps"},
        tally("Misses by page", S.misses_by_page, "page", pageLink),
        tally("Misses by icon (claimed, or hit when it leads nowhere)", S.misses_by_icon, "icon"),
        tally("Invalid outputs by page", S.invalid_by_page, "page", pageLink),
        tally("Invalid outputs by reason", S.invalid_by_reason, "reason")));
  }

  // --- routing ----------------------------------------------------------------------------------
  function route() {
    var h = location.hash.replace(/^#\/?/, "");
    var q = h.indexOf("?");
    var path = q < 0 ? h : h.slice(0, q);
    var params = new URLSearchParams(q < 0 ? "" : h.slice(q + 1));
    var parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    var view = parts[0] || "env";
    ["env", "episodes", "failures"].forEach(function (tab) {
      document.getElementById("tab-" + tab).classList.toggle("active", tab === view || (tab === "episodes" && view === "episode"));
    });
    if (view === "episodes") showEpisodes(params);
    else if (view === "episode") showEpisode(parseInt(parts[1], 10));
    else if (view === "failures") showFailures(parts[1]);
    else showEnv(parts[1] || "base", parts[2] || ENV.root);
    window.scrollTo(0, 0);
  }

  document.getElementById("meta").textContent = Object.keys(ENV.envs.base.pages).length + " pages · " +
    N + " episodes of " + IDX.models.length + " model(s)";
  window.addEventListener("hashchange", route);
  route();
  window.gelabReady = true;
}());
