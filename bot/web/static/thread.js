// The sandbox page: send follower actions without leaving the page, and keep the thread live
// by polling /api/thread (ETag) every few seconds. Posts arrive as server-escaped HTML.
// Each post shows its newest replies; "Show older replies" fetches the page before them.
"use strict";
(() => {
  const thread = document.getElementById("thread");
  const notice = document.getElementById("notice");
  if (!thread) return;
  let version = thread.dataset.version;
  let etag = null;
  let busy = false;

  const box = document.getElementById("reply-text");
  const counter = document.getElementById("reply-count");
  const max = box ? Number(box.dataset.max) : 0;
  // The server refuses a reply over the limit and says why; the browser's own maxlength
  // would cut a long paste mid-word instead, so the script counts and warns.
  if (box) box.removeAttribute("maxlength");

  // As the server counts: code points, CRLF as one, without the spaces around.
  const length = (text) => [...text.replace(/\r\n/g, "\n").trim()].length;

  function count() {
    if (!box || !counter) return;
    const n = length(box.value);
    const over = n - max;
    counter.textContent = over > 0
      ? `${n} / ${max} characters: too long by ${over}. Shorten it; nothing is cut for you.`
      : `${n} / ${max} characters`;
    counter.classList.toggle("over", over > 0);
  }

  // Verdicts from /reply: only "counts" is plain good news.
  const STYLE = { counts: "ok", held: "held", second: "warn", rejected: "warn", closed: "warn" };

  function say(text, ok, verdict) {
    notice.textContent = text;
    notice.className = ok ? (STYLE[verdict] || "ok") : "error";
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
    say(data.message || (res.ok ? "Done." : "That did not work."), res.ok, data.verdict);
    if (!res.ok) return;
    if (data.name) {
      const who = document.getElementById("whoami");
      who.textContent = "Posting as ";
      const b = document.createElement("b");
      b.textContent = data.name;
      who.append(b, ".");
      const join = document.querySelector("#name-form button");
      if (join) join.textContent = "Change name";
    }
    if (form.id === "reply-form") {
      form.reset();
      count();
    }
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
      // Votes per platform: the sandbox's and those read from the others, with their time.
      const split = li.querySelector("[data-split]");
      if (split) split.textContent = o.split;
      const meter = li.querySelector("meter");
      meter.max = Math.max(p.poll.total, 1);
      meter.value = o.votes;
      li.querySelector("button").disabled = !p.poll.open;
      li.classList.toggle("winner", Boolean(o.winner));
    }
    if (!p.poll.open) poll.querySelector(".countdown").textContent = "Voting has closed.";
  }

  function link(id, post) {
    const a = document.getElementById(id);
    if (!a) return;
    a.hidden = !post;
    if (post) a.href = "#p" + post;
  }

  // The panel at the top: the newest episode, the open poll and the post a reply answers.
  function updateNow(now) {
    if (!now) return;
    const title = document.getElementById("now-title");
    if (title && now.episode) {
      title.textContent = "Now: " + (now.episode.title || `Episode ${now.episode.number}`);
    }
    link("now-watch", now.episode && now.episode.post);
    link("now-vote", now.poll && now.poll.post);
    const closes = document.getElementById("now-closes");
    if (closes) {
      closes.dataset.closes = now.poll ? now.poll.closes_at : "";
      if (!now.poll) closes.textContent = "No poll is open right now.";
    }
    const to = document.getElementById("reply-to");
    const target = document.getElementById("reply-target");
    if (!to || !target || !now.answer) return;
    to.value = now.answer.post;
    const a = document.createElement("a");
    a.href = "#p" + now.answer.post;
    a.textContent = `${now.answer.what} (#${now.answer.post})`;
    const note = now.answer.counts
      ? "." : ". No round is open there, so it will not shape the story.";
    target.replaceChildren("Your reply answers ", a, note);
  }

  function apply(doc) {
    if (doc.version === version) return;
    version = doc.version;
    thread.dataset.version = version;
    for (const p of doc.posts) {
      let el = document.getElementById("p" + p.id);
      if (!el) {
        const parent = !p.is_bot && p.parent ? document.getElementById("r" + p.parent) : null;
        if (!p.is_bot && !parent) continue; // under a reply not shown here: behind a link
        el = fragment(p.html);
        (parent || thread).appendChild(el);
        if (p.is_bot) document.getElementById("empty")?.remove();
      }
      update(el, p);
    }
    updateNow(doc.now);
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

  // "Show older replies": the page before the oldest one shown, inserted above them.
  async function older(event) {
    const link = event.target instanceof Element ? event.target.closest("a[data-more]") : null;
    if (!link || link.dataset.busy) return;
    event.preventDefault();
    link.dataset.busy = "1";
    try {
      const res = await withTimeout(link.dataset.more, {
        headers: { Accept: "application/json" }, cache: "no-cache",
      }, 8000);
      if (!res.ok) throw new Error(res.statusText);
      const doc = await res.json();
      const t = document.createElement("template");
      t.innerHTML = doc.html;
      for (const el of t.content.querySelectorAll("article[id]")) {
        if (document.getElementById(el.id)) el.remove(); // arrived live meanwhile
      }
      const holder = link.parentElement;
      holder.after(t.content);
      if (doc.more) {
        link.href = doc.more.href;
        link.dataset.more = doc.more.api;
        link.textContent = doc.more.label;
      } else {
        holder.remove();
      }
    } catch (err) {
      say("Could not load the older replies; try again in a moment.", false);
    } finally {
      delete link.dataset.busy;
    }
  }

  function left(closes) {
    const ms = Date.parse(closes) - Date.now();
    if (Number.isNaN(ms)) return null;
    if (ms <= 0) return "Voting has closed; counting the votes…";
    const s = Math.floor(ms / 1000);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    return `Voting closes in ${h ? h + ":" : ""}${pad(m)}:${pad(s % 60)}`;
  }

  function countdown() {
    for (const poll of thread.querySelectorAll(".poll.open")) {
      const text = left(poll.dataset.closes);
      if (text === null) continue;
      poll.querySelector(".countdown").textContent = text;
      if (Date.parse(poll.dataset.closes) <= Date.now()) {
        poll.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      }
    }
    const top = document.getElementById("now-closes");
    const text = top && top.dataset.closes ? left(top.dataset.closes) : null;
    if (text !== null) top.textContent = text;
  }

  document.addEventListener("submit", submit);
  document.addEventListener("click", older);
  if (box) box.addEventListener("input", count);
  setInterval(refresh, 3000);
  setInterval(countdown, 1000);
  countdown();
})();
