// Refresh the hotline wall from /dashboard/wall.json without reloading the page.
// Everything is written with textContent: no markup from the data is ever parsed.
"use strict";
(function () {
  const main = document.getElementById("wall");
  if (!main) return;
  const every = Number(main.dataset.wallRefresh || "2") * 1000;
  const names = { talking: "通话中", ringing: "振铃", free: "空闲", paused: "示忙", offline: "未登录" };

  function duration(seconds) {
    if (seconds == null) return "—";
    const m = Math.floor(seconds / 60), s = seconds % 60;
    return m ? m + "分" + String(s).padStart(2, "0") + "秒" : s + "秒";
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function figure(key, label, value, unit) {
    const box = el("div", "figure");
    const v = el("div", "value");
    const span = el("span", null, value);
    span.dataset.w = key;
    v.append(span, unit);
    box.append(v, el("div", "label", label));
    return box;
  }

  function queue(q) {
    const section = el("section", "card wide queue");
    section.dataset.queue = q.queue;
    section.append(el("h2", null, "队列 " + q.queue));
    const wall = el("div", "wall");
    wall.append(
      figure("waiting", "排队等候", String(q.waiting), " 人"),
      figure("longest", "最长等待", duration(q.longest_wait_s), ""),
      figure("talking", "通话中", String(q.seats.talking), " 席"),
      figure("free", "空闲", String(q.seats.free), " 席"),
      figure("paused", "示忙", String(q.seats.paused), " 席"),
    );
    const others = el("p", "sub", ["ringing", "paused", "offline"]
      .map((s) => names[s] + " " + q.seats[s]).join("，"));
    others.dataset.w = "others";
    const seats = el("div", "seats");
    for (const m of q.members) {
      const seat = el("div", "seat " + m.state);
      seat.dataset.seat = m.interface;
      seat.dataset.state = m.state;
      seat.append(el("b", null, m.name), el("br"), (names[m.state] || m.state) + " " + duration(m.seconds));
      seats.append(seat);
    }
    section.append(wall, others, seats);
    return section;
  }

  async function refresh() {
    let response;
    try {
      response = await fetch("/dashboard/wall.json", { credentials: "same-origin" });
    } catch (e) {
      return; // the gateway is restarting; try again at the next tick
    }
    if (response.status === 401) {
      window.location.assign("/login");
      return;
    }
    if (!response.ok) return;
    const data = await response.json();
    if (!data.connected || !data.queues.length) return;
    main.replaceChildren(...data.queues.map(queue));
    main.dataset.updated = String(Date.now());
  }

  setInterval(refresh, every);
})();
