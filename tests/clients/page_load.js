// page_load.js - how long lesson 08's page takes, in a real browser, from the start of its navigation to the
// first reply it shows: scripts/bench's part "web". Debian's Chromium (or $CHROMIUM), headless, through
// playwright-core.
//
//   node page_load.js [--loads N] [--timeout MS] URL
//
// Each load is a new browser context (no cache, no open connection: a first visit), after one load that is not
// counted (the browser's own first start). In the page, from its first script on, a MutationObserver notes
// performance.now() - milliseconds since the navigation began - when:
//   connected   the status says "connected to ...": both WebSockets are open and the first command (SUBSCRIBE
//               on the chat connection) is answered: the first reply;
//   panel       the panel's "Clients" shows a number: INFO, the first reply shown as such;
// and on the way, when the first of its two WebSockets opened (ws_open), when both had (ws_open_all), when the
// first command left (first_send) and when the first message came (first_message); and then, with the page loaded, a PING typed in the console (the form submitted from a script) until "PONG"
// shows below it: console_ping. Also the navigation's own marks (response end, DOMContentLoaded).
//
// Prints one JSON line: {"loads": N, "median": {...}, "min": {...}, "max": {...}, "runs": [...]} in
// milliseconds; exit 1 when a load fails, 3 when Chromium or playwright-core is missing.
'use strict';

const fs = require('fs');

const args = process.argv.slice(2);
let loads = 10;
let timeout = 10000;
while (args.length && args[0].startsWith('--')) {
  const option = args.shift();
  if (option === '--loads') loads = Number(args.shift());
  else if (option === '--timeout') timeout = Number(args.shift());
  else break;
}
const url = args.shift();
if (!url || args.length || !(loads >= 1) || !(timeout > 0)) {
  console.error('usage: node page_load.js [--loads N] [--timeout MS] URL');
  process.exit(2);
}

let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (error) {
  console.log(JSON.stringify({ ok: false, missing: 'playwright-core' }));
  process.exit(3);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(executablePath)) {
  console.log(JSON.stringify({ ok: false, missing: executablePath }));
  process.exit(3);
}

// Runs in the page before its own scripts.
function watch() {
  const marks = {};
  window.__marks = marks;
  // The page's WebSockets, as app.js makes them, with a listener of our own: when the first opened, and when the
  // first message (a reply) came.
  const Native = window.WebSocket;
  let opened = 0;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('open', () => {
        opened += 1;
        marks[opened === 1 ? 'ws_open' : 'ws_open_all'] = performance.now();
      });
      this.addEventListener('message', () => {
        if (marks.first_message === undefined) marks.first_message = performance.now();
      });
    }

    send(data) {
      if (marks.first_send === undefined) marks.first_send = performance.now();
      super.send(data);
    }
  };
  const check = () => {
    const status = document.getElementById('status');
    if (marks.connected === undefined && status && /^connected/.test(status.textContent))
      marks.connected = performance.now();
    const clients = document.getElementById('clients');
    if (marks.panel === undefined && clients && /^\d+$/.test(clients.textContent.trim()))
      marks.panel = performance.now();
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true, characterData: true });
}

// Runs in the loaded page: a PING through the console, from the form's submit until its reply shows.
function consolePing() {
  return new Promise((resolve) => {
    const log = document.getElementById('console-log');
    let started;
    const observer = new MutationObserver(() => {
      const items = [...log.querySelectorAll('li')].map((li) => li.textContent);
      const at = items.lastIndexOf('> PING');
      if (at >= 0 && items.slice(at + 1).some((text) => text.includes('PONG'))) {
        observer.disconnect();
        resolve(performance.now() - started);
      }
    });
    observer.observe(log, { childList: true, subtree: true, characterData: true });
    document.getElementById('command').value = 'PING';
    started = performance.now();
    document.getElementById('console-form').requestSubmit();
  });
}

async function one(browser) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.addInitScript(watch);
    await page.goto(url, { timeout, waitUntil: 'load' });
    await page.waitForFunction(() => window.__marks.connected !== undefined && window.__marks.panel !== undefined,
      null, { timeout });
    const marks = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      return { response_end: nav.responseEnd, dom_content_loaded: nav.domContentLoadedEventEnd,
        ws_open: window.__marks.ws_open, ws_open_all: window.__marks.ws_open_all,
        first_send: window.__marks.first_send, first_message: window.__marks.first_message,
        connected: window.__marks.connected, panel: window.__marks.panel };
    });
    marks.console_ping = await page.evaluate(consolePing);
    return marks;
  } finally {
    await context.close();
  }
}

function summary(runs, pick) {
  const out = {};
  for (const key of Object.keys(runs[0])) {
    const values = runs.map((run) => run[key]).sort((a, b) => a - b);
    out[key] = Math.round(pick(values) * 100) / 100;
  }
  return out;
}

(async () => {
  const watchdog = setTimeout(() => {
    console.log(JSON.stringify({ ok: false, error: 'the run outlived its deadlines' }));
    process.exit(1);
  }, 30000 + timeout * (loads + 1) * 2);
  const browser = await chromium.launch({ executablePath, headless: true, timeout });
  try {
    await one(browser); // the browser's first page: not counted
    const runs = [];
    for (let i = 0; i < loads; i++) runs.push(await one(browser));
    console.log(JSON.stringify({ ok: true, loads, version: browser.version(),
      median: summary(runs, (v) => v[Math.floor(v.length / 2)]), min: summary(runs, (v) => v[0]),
      max: summary(runs, (v) => v[v.length - 1]), runs }));
  } catch (error) {
    console.log(JSON.stringify({ ok: false, error: String(error.message).split('\n')[0] }));
    process.exitCode = 1;
  } finally {
    await browser.close();
    clearTimeout(watchdog);
  }
})();
