// The sandbox page: send follower actions without leaving the page, and keep the thread live
// by polling /api/thread (ETag) every few seconds. Posts arrive as server-escaped HTML.
"use strict";
(() => {
  const thread = document.getElementById("thread");
  const notice = document.getElementById("notice");
  if (!thread) return;
  let version = thread.dataset.version;
  let etag = null;
  let busy = false;

  function say(text, ok) {
    notice.textContent = text;
    notice.className = ok ? "ok" : "error";
  }

  async function withTimeout(url, options, ms) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), ms);
    try {
      return await fetch(url, { ...options, signal: ctl.signal, credentials: "same-origin" });
    } finally {
      clearTimeout(timer);
    }
  }

  async function submit(event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("act")) return;
    event.preventDefault();
    const body = new URLSearchParams(new FormData(form));
    let res;
    try {
      res = await withTimeout(form.action, {
        method: "POST", body, headers: { Accept: "application/json" },
      }, 15000);
    } catch (err) {
      say("Could not reach the bot; try again in a moment.", false);
      return;
    }
    let data = {};
    try { data = await res.json(); } catch (err) { data = { message: res.statusText }; }
    say(data.message || (res.ok ? "Done." : "That did not work."), res.ok);
    if (!res.ok) return;
    if (data.name) {
      const who = document.getElementById("whoami");
      who.textContent = "Posting as ";
      const b = document.createElement("b");
      b.textContent = data.name;
      who.append(b, ".");
    }
    if (form.id === "reply-form") form.reset();
    refresh();
  }

  function fragment(html) {
    const t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function update(el, p) {
    const likes = el.querySelector(":scope > footer [data-likes]");
    if (likes) likes.textContent = String(p.likes);
    if (!p.poll) return;
    const poll = el.querySelector(":scope > .poll");
    if (!poll) return;
    poll.classList.toggle("open", p.poll.open);
    poll.classList.toggle("closed", !p.poll.open);
    for (const o of p.poll.options) {
      const li = poll.querySelector(`li[data-position="${o.position}"]`);
      if (!li) continue;
      li.querySelector("[data-votes]").textContent = String(o.votes);
      const meter = li.querySelector("meter");
      meter.max = Math.max(p.poll.total, 1);
      meter.value = o.votes;
      li.querySelector("button").disabled = !p.poll.open;
    }
    if (!p.poll.open) poll.querySelector(".countdown").textContent = "Voting has closed.";
  }

  function apply(doc) {
    if (doc.version === version) return;
    version = doc.version;
    thread.dataset.version = version;
    for (const p of doc.posts) {
      let el = document.getElementById("p" + p.id);
      if (!el) {
        el = fragment(p.html);
        const parent = !p.is_bot && p.parent ? document.getElementById("r" + p.parent) : null;
        (parent || thread).appendChild(el);
        if (p.is_bot) document.getElementById("empty")?.remove();
      }
      update(el, p);
    }
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const headers = { Accept: "application/json" };
      if (etag) headers["If-None-Match"] = etag;
      const res = await withTimeout("/api/thread", { headers, cache: "no-cache" }, 8000);
      if (res.status === 200) {
        etag = res.headers.get("ETag");
        apply(await res.json());
      }
    } catch (err) {
      // The bot may be restarting; the next poll tries again.
    } finally {
      busy = false;
    }
  }

  function countdown() {
    for (const poll of thread.querySelectorAll(".poll.open")) {
      const left = Date.parse(poll.dataset.closes) - Date.now();
      const out = poll.querySelector(".countdown");
      if (Number.isNaN(left)) continue;
      if (left <= 0) {
        out.textContent = "Voting has closed; counting the votes…";
        poll.querySelectorAll("button").forEach((b) => { b.disabled = true; });
        continue;
      }
      const s = Math.floor(left / 1000);
      const h = Math.floor(s / 3600);
      const m = Math.floor((s % 3600) / 60);
      const pad = (n) => String(n).padStart(2, "0");
      out.textContent = `Voting closes in ${h ? h + ":" : ""}${pad(m)}:${pad(s % 60)}`;
    }
  }

  document.addEventListener("submit", submit);
  setInterval(refresh, 3000);
  setInterval(countdown, 1000);
  countdown();
})();
