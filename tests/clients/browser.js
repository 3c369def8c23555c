// browser.js - drives lesson 08's page (lessons/08-browser/web) in a real browser, headless: Debian's Chromium
// through playwright-core, or Debian's Firefox ESR through puppeteer-core (WebDriver BiDi); neither package ever
// downloads a browser of its own. Run by tests/test_browser.py and scripts/screenshots.
//
//   node browser.js [OPTIONS] URL STEP...
//
// OPTIONS
//   --browser NAME        chromium (the default) or firefox
//   --timeout MS          how long each step may wait for the page (default 5000)
//   --ignore-https-errors take the server's certificate unchecked: the development CA is not the browser's,
//                         so the test checks the certificate against certs/ca.crt itself, apart from this
//   --viewport WxH        the pages' size (default 1200x800)
// STEPS, each an argument followed by its own
//   load                  opens a new page at URL (it becomes the current one) and waits until its status says
//                         "connected"; reports the status, and in Chromium the WebSockets the page opened and
//                         the TLS details (the two drivers share the rest of their interface, not these)
//   page N                makes page N (0, 1, ... in the order loaded) the current one
//   command LINE TEXT     types LINE in the console and Enter, and waits for a reply below it that holds TEXT
//   name NAME             sets the chat name (CLIENT SETNAME) and waits for "you are NAME"
//   say MESSAGE           publishes MESSAGE in the chat (Enter in the message box)
//   refused SELECTOR TEXT types TEXT into the box SELECTOR, which must refuse it (its checkValidity(): the
//                         box's pattern, or its other limits)
//   wait-text TEXT        waits until the current page shows TEXT, anywhere
//   wait-in SELECTOR TEXT waits until the element SELECTOR (e.g. "#clients") shows TEXT
//   chat                  two new pages: each sets a name (alice, bob), alice says hello (not in ASCII), both show it
//   screenshot PATH       a PNG of the current page
//
// Prints one JSON line per step as it ends: {"step": ..., "ok": true, "ms": ..., what it found}; a step that
// fails prints "ok": false, why, and what the page showed (status, console, chat, and in Chromium its last
// WebSocket frames), and the run exits 1. An error thrown in the page, or written to its console, fails the
// run too. Chromium is $CHROMIUM, else /usr/bin/chromium; Firefox is $FIREFOX, else /usr/bin/firefox-esr.
// Without the browser or its package, the first line is {"step": "launch", "ok": false, "missing": ...} and
// the exit code 3. Every wait has its deadline: no sleeps.
//
// Why two drivers: playwright-core drives Firefox only in builds of its own or newer than Debian's ESR (on
// Firefox 153 ESR its WebDriver BiDi path fails at once: emulation.setMediaFeaturesOverride, unknown command);
// puppeteer-core drives the Firefox that Debian ships.
'use strict';

const fs = require('fs');

function usage(why) {
  console.error(`browser.js: ${why}\nusage: node browser.js [--browser NAME] [--timeout MS] [--ignore-https-errors] ` +
    '[--viewport WxH] URL STEP...   (the comment at the top of browser.js lists the steps)');
  process.exit(2);
}

// How many arguments each step takes.
const ARITY = {
  load: 0, page: 1, command: 2, name: 1, say: 1, refused: 2, 'wait-text': 1, 'wait-in': 2, chat: 0, screenshot: 1,
};

const args = process.argv.slice(2);
const options = { browser: 'chromium', timeout: 5000, ignoreHTTPSErrors: false, width: 1200, height: 800 };
while (args.length && args[0].startsWith('--')) {
  const option = args.shift();
  if (option === '--browser') options.browser = args.shift();
  else if (option === '--timeout') options.timeout = Number(args.shift());
  else if (option === '--ignore-https-errors') options.ignoreHTTPSErrors = true;
  else if (option === '--viewport') [options.width, options.height] = (args.shift() || '').split('x').map(Number);
  else usage(`unknown option ${option}`);
}
if (!(options.timeout > 0) || !(options.width > 0) || !(options.height > 0)) usage('a bad --timeout or --viewport');
if (!['chromium', 'firefox'].includes(options.browser)) usage(`no browser called ${options.browser}`);
const url = args.shift();
if (!url) usage('no URL');
const steps = [];
while (args.length) {
  const name = args.shift();
  if (!(name in ARITY)) usage(`unknown step ${name}`);
  if (args.length < ARITY[name]) usage(`${name} takes ${ARITY[name]} argument(s)`);
  steps.push({ name, args: args.splice(0, ARITY[name]) });
}

function say(line) {
  // Long strings (a 16 KB ECHO, its reply) are cut: a failure's message must stay readable.
  console.log(JSON.stringify(line, (key, value) =>
    typeof value === 'string' && value.length > 400 ? `${value.slice(0, 200)}...(${value.length} characters)` : value));
}

// A whole run never outlives its steps' deadlines, whatever hangs (the browser's start included).
const watchdog = setTimeout(() => {
  say({ step: 'run', ok: false, error: 'the run outlived the deadlines of all its steps' });
  process.exit(1);
}, 20000 + options.timeout * (steps.length + 2));

// What differs between the two: the package, where the browser is, how it starts, and how a page waits.
const DRIVERS = {
  chromium: {
    package: 'playwright-core',
    seesWebSockets: true, // Playwright reports a page's WebSockets and their frames
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    async launch(driver, executablePath) {
      const browser = await driver.chromium.launch({ executablePath, headless: true, timeout: options.timeout * 2 });
      const context = await browser.newContext({
        ignoreHTTPSErrors: options.ignoreHTTPSErrors, viewport: { width: options.width, height: options.height },
      });
      return { browser, newPage: () => context.newPage() };
    },
    waitFor: (page, test, arg) => page.waitForFunction(test, arg, { timeout: options.timeout }),
    async tls(response) {
      const tls = await response.securityDetails();
      return tls && tls.protocol ? { protocol: tls.protocol, issuer: tls.issuer, subject: tls.subjectName } : undefined;
    },
  },
  firefox: {
    package: 'puppeteer-core',
    seesWebSockets: false,
    executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
    async launch(driver, executablePath) {
      const browser = await driver.launch({
        browser: 'firefox', executablePath, headless: true, timeout: options.timeout * 2,
        acceptInsecureCerts: options.ignoreHTTPSErrors,
        defaultViewport: { width: options.width, height: options.height },
      });
      return { browser, newPage: () => browser.newPage() };
    },
    // Every 50 ms: a page behind another gets no animation frames, on which puppeteer's waits poll by default.
    waitFor: (page, test, arg) => page.waitForFunction(test, { timeout: options.timeout, polling: 50 }, arg),
    tls: async () => undefined, // over WebDriver BiDi, puppeteer's securityDetails() is unsupported
  },
};
const chosen = DRIVERS[options.browser];
let driver;
try {
  driver = require(chosen.package);
} catch (error) {
  say({ step: 'launch', ok: false, missing: chosen.package, error: error.message.split('\n')[0] });
  process.exit(3);
}
if (!fs.existsSync(chosen.executablePath)) {
  say({ step: 'launch', ok: false, missing: options.browser, error: `no browser at ${chosen.executablePath}` });
  process.exit(3);
}

const pages = []; // {page, ws: [urls], frames: [last frames] (Chromium's), errors: [the page's errors]}
let current;
const pageErrors = [];

async function openPage(context) {
  const page = await context.newPage();
  const entry = { page, ws: [], frames: [], errors: [] };
  const keep = (what) => {
    entry.frames.push(what);
    if (entry.frames.length > 12) entry.frames.shift();
  };
  const shown = (payload) => (typeof payload === 'string' ? payload : `(binary) ${payload.toString('latin1')}`)
    .slice(0, 200);
  page.on('websocket', (ws) => { // Playwright's event: Chromium only
    entry.ws.push(ws.url());
    ws.on('framesent', (frame) => keep(`sent ${shown(frame.payload)}`));
    ws.on('framereceived', (frame) => keep(`received ${shown(frame.payload)}`));
    ws.on('close', () => keep('closed'));
    ws.on('socketerror', (error) => keep(`error ${error}`));
  });
  const pageError = (text) => {
    entry.errors.push(text);
    pageErrors.push(text);
    say({ event: 'pageerror', page: pages.indexOf(entry), error: text });
  };
  page.on('pageerror', (error) =>
    pageError(String(error && (error.stack || error.message) || error).split('\n').slice(0, 3).join(' | ')));
  // What the browser writes to the page's console as an error counts too: of an <input pattern> that is not a
  // valid expression, both browsers only say so there, and then check nothing. (puppeteer passes Firefox's
  // messages of that kind as page errors, whatever their level: a Firefox run is the stricter.)
  page.on('console', (message) => {
    if (message.type() === 'error') pageError(`console: ${message.text().split('\n')[0]}`);
  });
  pages.push(entry);
  current = entry;
  return entry;
}

// What the page shows, for a failure's message.
async function showing(entry) {
  if (!entry) return {};
  try {
    return await entry.page.evaluate(() => {
      const texts = (id) => [...document.querySelectorAll(`#${id} li`)].slice(-10).map((li) => li.textContent);
      const status = document.getElementById('status');
      return { status: status && status.textContent, console: texts('console-log'), chat: texts('chat-log') };
    });
  } catch (error) {
    return { showing: `could not read the page: ${error.message.split('\n')[0]}` };
  }
}

// Waits until the status line says "connected" (app.js: "connected to HOST:PORT", once both WebSockets are
// open and the chat one subscribed).
async function waitConnected(entry) {
  await chosen.waitFor(entry.page, () => /^connected/.test(document.getElementById('status').textContent), null);
}

async function load(context) {
  const entry = await openPage(context);
  const response = await entry.page.goto(url, { timeout: options.timeout, waitUntil: 'load' });
  const tls = response && await chosen.tls(response);
  await waitConnected(entry);
  return {
    page: pages.length - 1, http: response && response.status(), ...(chosen.seesWebSockets ? { ws: entry.ws } : {}),
    status: await entry.page.$eval('#status', (element) => element.textContent), ...(tls ? { tls } : {}),
  };
}

// Types text into the box and presses Enter, as a user does (both drivers have these calls).
async function enter(page, selector, text) {
  await page.locator(selector).fill(text);
  await page.focus(selector);
  await page.keyboard.press('Enter');
}

async function command(line, expected) {
  const page = current.page;
  const before = await page.$$eval('#console-log li', (items) => items.length);
  await enter(page, '#command', line);
  // The first item from `before` on that is the echo of this line; the reply is in the items after it.
  const handle = await chosen.waitFor(page, ([from, line, expected]) => {
    const items = [...document.querySelectorAll('#console-log li')].slice(from).map((li) => li.textContent);
    const at = items.indexOf(`> ${line}`);
    if (at < 0) return false;
    const after = items.slice(at + 1);
    return after.some((text) => text.includes(expected)) ? after : false;
  }, [before, line, expected]);
  return { reply: await handle.jsonValue() };
}

async function setName(name) {
  await enter(current.page, '#name', name);
  await waitIn('#chat-log', `you are ${name}`);
  return { name };
}

async function publish(message) {
  await enter(current.page, '#message', message);
  // app.js empties the box once PUBLISH is answered.
  await chosen.waitFor(current.page, () => document.getElementById('message').value === '', null);
  return { said: message };
}

async function refused(selector, text) {
  await current.page.locator(selector).fill(text);
  if (await current.page.$eval(selector, (box) => box.checkValidity())) {
    throw new Error(`the box ${selector} takes ${JSON.stringify(text)}: its pattern checks nothing`);
  }
  return { refused: text };
}

async function waitIn(selector, text) {
  const handle = await chosen.waitFor(current.page, ([selector, text]) => {
    const element = document.querySelector(selector);
    const shows = element && element.innerText;
    return shows && shows.includes(text) ? shows : false;
  }, [selector, text]);
  return { shows: (await handle.jsonValue()).slice(-400) };
}

// Makes page n the current one, and brings it to the front: a page behind another gets no animation frames,
// and Playwright's waits poll on those.
async function use(n) {
  current = pages[n];
  await current.page.bringToFront();
}

async function chat(context) {
  const alice = (await load(context)).page;
  const bob = (await load(context)).page;
  await use(alice);
  await setName('alice');
  await use(bob);
  await setName('bob');
  await use(alice);
  // Not ASCII: RESP's lengths count bytes, and a page that counts characters sends a command the server cannot read.
  const said = 'alice: héllo from alice, wörld ✓';
  await publish(said.slice('alice: '.length));
  await waitIn('#chat-log', said);
  await use(bob);
  const seen = await waitIn('#chat-log', said);
  return { pages: [alice, bob], bob_sees: seen.shows };
}

async function run(step, context) {
  const [a, b] = step.args;
  switch (step.name) {
    case 'load': return load(context);
    case 'page':
      if (!pages[Number(a)]) throw new Error(`no page ${a}: ${pages.length} loaded`);
      await use(Number(a));
      return { page: Number(a) };
    case 'command': return command(a, b);
    case 'name': return setName(a);
    case 'say': return publish(a);
    case 'refused': return refused(a, b);
    case 'wait-text': return waitIn('body', a);
    case 'wait-in': return waitIn(a, b);
    case 'chat': return chat(context);
    case 'screenshot':
      await current.page.screenshot({ path: a, timeout: options.timeout });
      return { path: a };
    default: throw new Error(`unknown step ${step.name}`);
  }
}

async function main() {
  let started = Date.now();
  const { browser, newPage } = await chosen.launch(driver, chosen.executablePath);
  const version = await browser.version();
  say({ step: 'launch', ok: true, ms: Date.now() - started, browser: options.browser, version });
  let failed = false;
  try {
    const context = { newPage };
    for (const step of steps) {
      started = Date.now();
      if (!current && !['load', 'chat'].includes(step.name)) throw new Error(`${step.name} before any load`);
      try {
        const found = await run(step, context);
        say({ step: step.name, args: step.args, ok: true, ms: Date.now() - started, ...found });
      } catch (error) {
        say({ step: step.name, args: step.args, ok: false, ms: Date.now() - started,
          error: (error.message || error.name).split('\n').filter((line) => line.trim()).slice(0, 4).join(' | '),
          page: pages.indexOf(current), ...await showing(current),
          ...(chosen.seesWebSockets && current ? { frames: current.frames } : {}) });
        failed = true;
        break;
      }
    }
  } finally {
    await browser.close();
  }
  const ok = !failed && pageErrors.length === 0;
  const errors = pageErrors.length ? { error: 'the page reported errors', pageerrors: pageErrors } : {};
  say({ step: 'done', ok, ...errors });
  return ok;
}

main().then((ok) => {
  clearTimeout(watchdog);
  process.exit(ok ? 0 : 1);
}, (error) => {
  say({ step: 'run', ok: false, error: String(error && (error.stack || error.message) || error) });
  process.exit(1);
});
