// The dashboard: tell the operator when the thread has changed (new votes, replies or
// episodes) without reloading under their hands while they type a reason.
"use strict";
(() => {
  const banner = document.getElementById("activity");
  if (!banner) return;
  let first = null;
  async function check() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 8000);
    try {
      const res = await fetch("/api/thread", { signal: ctl.signal, cache: "no-cache" });
      if (!res.ok) return;
      const tag = res.headers.get("ETag");
      if (first === null) first = tag;
      else if (tag !== first) banner.hidden = false;
    } catch (err) {
      // try again on the next round
    } finally {
      clearTimeout(timer);
    }
  }
  check();
  setInterval(check, 5000);
})();
