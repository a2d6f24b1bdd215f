// Refresh the dashboard's figures from /dashboard/data.json every few seconds.
// Everything is written with textContent: no markup from the data is ever parsed.
"use strict";
(function () {
  const main = document.querySelector("main[data-refresh]");
  if (!main) return;
  const every = Number(main.dataset.refresh || "10") * 1000;
  const colourNames = { green: "绿", yellow: "黄", red: "红", none: "—" };

  function pick(data, path) {
    return path.split(".").reduce((v, k) => (v == null ? v : v[k]), data);
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function emptyRow(body, columns, text) {
    const row = document.createElement("tr");
    const td = cell(row, text, "empty");
    td.colSpan = columns;
    body.replaceChildren(row);
  }

  function units(list) {
    const body = document.getElementById("units");
    if (!list.length) return emptyRow(body, 7, "暂无评价");
    body.replaceChildren(...list.map((u) => {
      const row = document.createElement("tr");
      row.dataset.unit = u.key;
      row.dataset.colour = u.colour;
      cell(row, u.label);
      for (const k of ["rated", "satisfied", "basically_satisfied", "dissatisfied", "percent"]) {
        cell(row, String(u[k]), "n");
      }
      const mark = document.createElement("span");
      mark.className = "mark " + u.colour;
      mark.textContent = colourNames[u.colour] || "—";
      cell(row, "").appendChild(mark);
      return row;
    }));
  }

  function orders(list) {
    const body = document.getElementById("orders");
    if (!list.length) return emptyRow(body, 6, "暂无在办整改工单");
    body.replaceChildren(...list.map((o) => {
      const row = document.createElement("tr");
      row.dataset.ref = o.ref;
      row.dataset.level = String(o.level);
      cell(row, o.ref, "mono");
      cell(row, o.unit);
      const level = cell(row, " " + o.level_name);
      const badge = document.createElement("span");
      badge.className = "level l" + o.level;
      badge.textContent = o.level + "级";
      level.prepend(badge);
      cell(row, o.status_name);
      cell(row, o.age);
      const due = cell(row, o.deadline + " ");
      if (o.overdue) {
        const late = document.createElement("span");
        late.className = "late";
        late.textContent = "已超期";
        due.appendChild(late);
      }
      return row;
    }));
  }

  function categories(list) {
    const ul = document.getElementById("categories");
    if (!list.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "当日暂无";
      return ul.replaceChildren(li);
    }
    ul.replaceChildren(...list.map((c) => {
      const li = document.createElement("li");
      li.textContent = c.name;
      const b = document.createElement("b");
      b.textContent = String(c.count);
      li.appendChild(b);
      return li;
    }));
  }

  async function refresh() {
    let response;
    try {
      response = await fetch("/dashboard/data.json" + window.location.search, { credentials: "same-origin" });
    } catch (e) {
      return; // the gateway is restarting; try again at the next tick
    }
    if (response.status === 401) {
      window.location.assign("/login");
      return;
    }
    if (!response.ok) return;
    const data = await response.json();
    for (const el of document.querySelectorAll("[data-k]")) {
      const value = pick(data, el.dataset.k);
      el.textContent = value == null ? "—" : String(value);
    }
    const overall = document.getElementById("overall");
    overall.className = "big " + data.callbacks.satisfaction.colour;
    units(data.callbacks.units);
    orders(data.orders.open);
    categories(data.cases.by_category);
  }

  setInterval(refresh, every);
})();
