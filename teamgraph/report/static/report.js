/* teamgraph report: draws each topic's figure with plotly.js and fills the panels from the data blob.
   All text reaches the page through textContent (never innerHTML), so names and utterances show as written. */
(function () {
  "use strict";
  var state = window.teamgraphReport = {
    ready: false, topic: null, draws: 0, firstGraphMs: null, shown: null, errors: [], violations: []
  };
  document.addEventListener("securitypolicyviolation", function (e) {
    state.violations.push(e.violatedDirective + " " + e.blockedURI);
  });
  window.addEventListener("error", function (e) { state.errors.push(String(e.message)); });

  var t0 = performance.now();
  var doc = JSON.parse(document.getElementById("teamgraph-data").textContent);
  state.parseMs = performance.now() - t0;
  state.scriptStartMs = t0;
  state.drawMs = [];
  var agents = {};
  doc.agents.forEach(function (a) { agents[a.name] = a; });
  var graph = document.getElementById("graph");
  var details = document.getElementById("details");
  var plotConfig = {
    displaylogo: false, responsive: true, scrollZoom: true, showLink: false, showSendToCloud: false,
    showEditInChartStudio: false, modeBarButtonsToRemove: ["select2d", "lasso2d"]
  };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function fmt(x, digits) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits === undefined ? 3 : digits); }
  function facts(pairs) {
    var dl = el("dl", "facts");
    pairs.forEach(function (p) {
      if (p[1] === null || p[1] === undefined || p[1] === "") return;
      dl.appendChild(el("dt", null, p[0]));
      var dd = el("dd", p[2] || null);
      if (p[1] instanceof Node) dd.appendChild(p[1]); else dd.textContent = String(p[1]);
      dl.appendChild(dd);
    });
    return dl;
  }
  function linkButton(text, onClick) {
    var b = el("button", "link", text);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }
  function teamOf(view, name) { return Object.prototype.hasOwnProperty.call(view.membership, name) ? view.membership[name] : null; }
  function swatch(color) { var s = el("span", "swatch"); s.style.background = color; return s; }

  // -- the conversations: gzip + base64 in their own element, unpacked once, after the first graph is drawn --
  var conversationsPromise = null;
  function loadConversations() {
    if (!conversationsPromise) {
      conversationsPromise = new Promise(function (resolve, reject) {
        if (typeof DecompressionStream === "undefined") {
          reject(new Error("this browser cannot unpack the conversations: it needs DecompressionStream "
            + "(Chrome 80, Firefox 113, Safari 16.4 or later)"));
          return;
        }
        var started = performance.now();
        var binary = atob(document.getElementById("teamgraph-conversations").textContent.trim());
        var bytes = new Uint8Array(binary.length);
        for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
        var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
        new Response(stream).text().then(function (text) {
          var all = JSON.parse(text);
          state.conversationsMs = performance.now() - started;
          state.conversationsReady = true;
          resolve(all);
        }).catch(reject);
      });
      conversationsPromise.catch(function (err) { state.errors.push(String(err)); });
    }
    return conversationsPromise;
  }

  // -- details: a pair's conversations, an agent --------------------------------------------------
  function showPair(topic, a, b, weight, ids, drawn) {
    var view = doc.views[topic];
    state.shown = { kind: "pair", topic: topic, a: a, b: b };
    clear(details);
    details.appendChild(el("h2", null, a + " – " + b));
    var ta = teamOf(view, a), tb = teamOf(view, b);
    details.appendChild(facts([
      ["topic", topic],
      ["relationship value", fmt(weight) + (drawn ? "" : " (below the threshold: not drawn)")],
      ["conversations", ids.length],
      ["teams", ta !== null && ta === tb ? "both in team " + ta
        : (ta === null ? "alone" : "team " + ta) + " / " + (tb === null ? "alone" : "team " + tb)]
    ]));
    var box = el("div", "conversations");
    box.appendChild(el("p", "muted", "unpacking the conversations…"));
    details.appendChild(box);
    var shown = state.shown;
    loadConversations().then(function (all) {
      if (state.shown !== shown) return;  // another edge or agent was clicked meanwhile
      clear(box);
      ids.forEach(function (id) {
        var conv = all[id];
        box.appendChild(el("p", "conversation-head", "conversation " + id + (conv ? " · " + conv.topic : "")));
        if (!conv) { box.appendChild(el("p", "muted", "not in this report")); return; }
        var list = el("ol", "utterances");
        conv.utterances.forEach(function (u) {
          var li = el("li", u[0] === conv.agent_a ? "a" : "b");
          li.appendChild(el("span", "speaker", u[0]));
          li.appendChild(el("span", "text", u[1]));
          if (u[2] !== "ok") li.appendChild(el("span", "status", "(" + u[2] + ")"));
          list.appendChild(li);
        });
        box.appendChild(list);
      });
    }, function (err) {
      if (state.shown !== shown) return;
      clear(box);
      box.appendChild(el("p", "status", String(err && err.message || err)));
    });
  }
  function showEdge(topic, index) {
    var e = doc.views[topic].edges[index];
    if (e) showPair(topic, e[0], e[1], e[2], e[4], true);
  }
  function showAgent(topic, name) {
    var view = doc.views[topic], agent = agents[name] || { name: name, labels: [] };
    state.shown = { kind: "agent", topic: topic, name: name };
    clear(details);
    var h = el("h2");
    if (view.colors[name]) h.appendChild(swatch(view.colors[name]));
    h.appendChild(document.createTextNode(name));
    details.appendChild(h);
    var team = teamOf(view, name), teamText = null;
    if (team !== null) {
      var members = view.teams[team].members.filter(function (m) { return m !== name; });
      teamText = "team " + team + (members.length ? " with " + members.join(", ") : "");
    }
    details.appendChild(facts([
      ["model", agent.model || "unknown"], ["backend", agent.backend], ["format", agent.format],
      ["labels", agent.labels && agent.labels.length ? agent.labels.join(", ") : "none"],
      ["persona", agent.persona, "persona"], ["in " + topic, team !== null ? teamText : "alone (no team)"]
    ]));
    details.appendChild(el("h3", null, "Strongest partners in " + topic));
    var partners = view.partners[name] || [];
    if (!partners.length) details.appendChild(el("p", "muted", "no measured partner"));
    var list = el("ol");
    partners.forEach(function (p) {
      var li = el("li");
      li.appendChild(linkButton(p[0], function () { showPair(topic, name, p[0], p[1], p[3], p[2]); }));
      li.appendChild(document.createTextNode(" " + fmt(p[1]) + (p[2] ? "" : " (not drawn)")));
      list.appendChild(li);
    });
    details.appendChild(list);
  }

  // -- teams of a topic --------------------------------------------------------------------------
  function renderTeams(topic) {
    var view = doc.views[topic], s = view.summary;
    document.getElementById("teams-title").textContent = "Teams in " + topic;
    var summary = document.getElementById("summary");
    clear(summary);
    var threshold = s.threshold && s.threshold.rule ? s.threshold.rule + (s.threshold.value !== null ? " (" + fmt(s.threshold.value) + ")" : "") : "";
    summary.appendChild(el("p", "muted", s.n_agents + " agents, " + s.n_edges + " edges · metric " + (s.metric || "?")
      + (threshold ? " · threshold " + threshold : "") + (s.embedder ? " · embedder " + s.embedder : "")));
    summary.appendChild(el("p", null, "Modularity " + fmt(s.modularity) + " · stability " + fmt(s.stability, 2)
      + " (1.00: every Louvain seed found the same teams)"));
    summary.appendChild(el("p", "verdict", "Significance: " + s.verdict));
    if (!s.agreements.length) summary.appendChild(el("p", "muted", "Label agreement: no labels to compare with."));
    s.agreements.forEach(function (a) {
      summary.appendChild(el("p", null, "Labels" + (a.kind ? " (" + a.kind + ")" : "") + ": " + a.reading
        + " — ARI " + fmt(a.ari, 2) + " (p=" + a.p_value + "), NMI " + fmt(a.nmi, 2) + " (p=" + a.nmi_p_value + ")"));
    });
    var body = document.querySelector("#teams tbody");
    clear(body);
    view.teams.forEach(function (t) {
      var tr = el("tr"), first = el("td");
      first.appendChild(swatch(t.color));
      first.appendChild(document.createTextNode(String(t.id)));
      tr.appendChild(first);
      var members = el("td");
      t.members.forEach(function (m, i) {
        if (i) members.appendChild(document.createTextNode(", "));
        members.appendChild(linkButton(m, function () { showAgent(topic, m); }));
      });
      tr.appendChild(members);
      tr.appendChild(el("td", "num", t.size));
      tr.appendChild(el("td", "num", fmt(t.mean_internal_weight)));
      body.appendChild(tr);
    });
    if (!view.teams.length) {
      var tr = el("tr"), td = el("td", "muted", "no team of two or more agents");
      td.colSpan = 4; tr.appendChild(td); body.appendChild(tr);
    }
    document.getElementById("isolates").textContent = view.isolates.length ? "Alone: " + view.isolates.join(", ") : "";
  }

  // -- topic switcher ----------------------------------------------------------------------------
  function showTopic(topic) {
    if (!doc.views[topic]) return Promise.resolve();
    state.topic = topic;
    document.querySelectorAll("#topics button").forEach(function (b) {
      b.setAttribute("aria-pressed", b.dataset.topic === topic ? "true" : "false");
    });
    renderTeams(topic);
    var shown = state.shown;
    if (shown && shown.kind === "agent") showAgent(topic, shown.name);
    else if (shown && shown.kind === "pair") {
      var e = doc.views[topic].edges.filter(function (x) { return x[0] === shown.a && x[1] === shown.b; })[0];
      if (e) showPair(topic, e[0], e[1], e[2], e[4], true);
      else { clear(details); details.appendChild(el("h2", null, "Details"));
             details.appendChild(el("p", "muted", shown.a + " – " + shown.b + " is not an edge in " + topic + ".")); state.shown = null; }
    }
    var fig = doc.views[topic].figure, started = performance.now();
    return Plotly.react(graph, fig.data, fig.layout, plotConfig).then(function () {
      state.drawMs.push(performance.now() - started);
      state.draws += 1;
      if (!state.ready) {
        state.firstGraphMs = performance.now();
        graph.on("plotly_click", function (ev) {
          var p = ev.points && ev.points[0];
          if (!p) return;
          if (p.data.meta === "edges") showEdge(state.topic, p.customdata);
          else if (p.data.meta === "agents") showAgent(state.topic, p.customdata);
        });
        state.ready = true;
        requestAnimationFrame(function () { requestAnimationFrame(function () { state.firstGraphPaintedMs = performance.now(); }); });
        setTimeout(loadConversations, 0);
      }
    }).catch(function (err) { state.errors.push(String(err)); });
  }
  state.showTopic = showTopic;
  state.showEdge = function (index) { showEdge(state.topic, index); };

  var nav = document.getElementById("topics");
  doc.topics.forEach(function (topic) {
    var b = el("button", null, topic);
    b.type = "button";
    b.dataset.topic = topic;
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", function () { showTopic(topic); });
    nav.appendChild(b);
  });

  // -- evaluation and footer ---------------------------------------------------------------------
  if (doc.evaluation) {
    var ev = doc.evaluation;
    document.getElementById("evaluation-section").hidden = false;
    document.getElementById("evaluation-source").textContent = ev.source ? "from " + ev.source : "";
    var headRow = el("tr");
    ev.columns.forEach(function (c) { headRow.appendChild(el("th", null, c)); });
    document.querySelector("#evaluation thead").appendChild(headRow);
    var tbody = document.querySelector("#evaluation tbody");
    ev.rows.forEach(function (row) {
      var tr = el("tr");
      row.forEach(function (v) { tr.appendChild(el("td", null, v)); });
      tbody.appendChild(tr);
    });
    if (typeof ev.image === "string" && ev.image.indexOf("data:image/png;base64,") === 0) {
      document.getElementById("evaluation-chart").src = ev.image;
    }
  }
  document.getElementById("source").textContent = doc.source ? "from " + doc.source : "";
  document.getElementById("footer").textContent = "teamgraph " + doc.teamgraph_version + " · " + doc.agents.length
    + " agents · " + doc.topics.length + " topics · " + doc.n_conversations + " conversations (those behind the edges and partners shown) · "
    + doc.schema + " · works offline: every script is in this file";

  var loading = graph.querySelector(".loading");
  if (loading) graph.removeChild(loading);
  showTopic(doc.topics[0]);
})();
