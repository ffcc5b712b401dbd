/* goodcry session page: a gentle "now playing" guide through the arc.
   The page works without it (a static outline); this only adds a timer and a highlight.
   Self-hosted, no dependencies, nothing sent anywhere. */
(function () {
  "use strict";
  var live = document.querySelector("[data-player]");
  var items = Array.prototype.slice.call(document.querySelectorAll(".item[data-start]"));
  if (!live || !items.length) { return; }

  var key = "goodcry:" + location.pathname;
  var total = items.reduce(function (sum, el) { return sum + Number(el.dataset.duration); }, 0);
  var state = { index: -1, elapsed: 0, running: false };
  try { Object.assign(state, JSON.parse(sessionStorage.getItem(key)) || {}, { running: false }); }
  catch (e) { /* a fresh start is fine */ }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text) { node.textContent = text; }
    return node;
  }
  function clock(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  var now = el("p", { "class": "now", "aria-live": "polite" });
  var bar = el("progress", { max: String(total), value: "0", "aria-label": "Progress through the session" });
  var time = el("p", { "class": "time" });
  var controls = el("div", { "class": "controls" });
  var toggle = el("button", { type: "button" }, "Begin");
  var next = el("button", { type: "button", "class": "quiet" }, "Next");
  var show = el("a", { href: "#" }, "Show me");
  controls.append(toggle, next);
  live.replaceChildren(now, bar, time, controls);

  function current() { return items[state.index]; }
  function save() {
    try { sessionStorage.setItem(key, JSON.stringify({ index: state.index, elapsed: state.elapsed })); }
    catch (e) { /* private mode: no memory across reloads */ }
  }
  var announced = null;
  function announce(text, withLink) {
    // The line is a live region: rewrite it only when the item changes, never every second.
    if (announced === state.index) { return; }
    announced = state.index;
    now.textContent = text;
    if (withLink) { now.append(" ", show); }
  }
  function render() {
    items.forEach(function (item, i) {
      item.classList.toggle("now", i === state.index);
      if (i === state.index) { item.setAttribute("aria-current", "step"); }
      else { item.removeAttribute("aria-current"); }
    });
    var item = current();
    if (!item) {
      announce(state.index >= items.length
        ? "That was the whole session. Take a breath, drink some water."
        : "Ready when you are.", false);
      bar.value = state.index >= items.length ? total : 0;
      time.textContent = "About " + Math.round(total / 60) + " minutes in all.";
      toggle.textContent = state.index >= items.length ? "Start again" : "Begin";
      next.disabled = state.index >= items.length;
      return;
    }
    show.href = "#" + item.id;
    announce("Now: " + item.dataset.title, true);
    var done = Number(item.dataset.start) + state.elapsed;
    bar.value = done;
    time.textContent = clock(done) + " of " + clock(total) +
      (state.running ? "" : " · paused");
    toggle.textContent = state.running ? "Pause" : "Continue";
    next.disabled = false;
  }
  function go(index) {
    state.index = index;
    state.elapsed = 0;
    if (index >= items.length) { state.running = false; }
    save();
    render();
  }

  toggle.addEventListener("click", function () {
    if (state.index < 0 || state.index >= items.length) {
      state.running = true;
      go(0);
      return;
    }
    state.running = !state.running;
    render();
  });
  next.addEventListener("click", function () { go(state.index + 1); });

  var last = Date.now();
  setInterval(function () {
    var t = Date.now(), dt = (t - last) / 1000;
    last = t;
    var item = current();
    if (!state.running || !item) { return; }
    state.elapsed += dt;
    if (state.elapsed >= Number(item.dataset.duration)) { go(state.index + 1); return; }
    save();
    render();
  }, 1000);

  render();
}());
