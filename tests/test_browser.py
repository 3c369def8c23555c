"""Lesson 08 on: the server's own page (lessons/08-browser/web) in a real browser, headless Chromium driven by
tests/clients/browser.js through playwright-core (and, in one test, Firefox ESR through puppeteer-core). The
page loads over HTTP (--http-port) and talks to the server over WebSocket (GET /ws): a command typed in its
console gets its reply, two pages chat through SUBSCRIBE and PUBLISH, a message that redis-cli publishes shows
in the page, and so does Ctrl+C's stop notice; over HTTPS (--https-port) the same goes through wss://. The
browser always runs on Linux; the server is either build.

The browser takes the development certificate unchecked (the course's CA is no browser's), so the HTTPS test
checks it apart, with the CA: Python's ssl fetches the page, and python3-websockets speaks RESP over wss://.

Each test starts one browser (Chromium starts in about a quarter of a second here, node and all in about one)."""

import http.client
import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import time

import pytest

from harness import CourseFailure, OutputReader
from test_clients import CLIENTS, missing
from test_commands import redis_cli
from test_tls import certs

pytestmark = [pytest.mark.needs("commands"), pytest.mark.needs("browser")]

HTTP_LISTENING = re.compile(r"listening for HTTP on (\S+):(\d+)")
HTTPS_LISTENING = re.compile(r"listening for HTTPS on (\S+):(\d+)")
STOP_NOTICE = "(error) ERR server shutting down"  # app.js shows an error reply as redis-cli does


def start_web(start_server, target, https=False):
    """A server with its HTTP port (and HTTPS port, with the stage's development certificate); returns it with
    .http_port (and .https_port) set."""
    extra = []
    if https:
        folder = certs(target)
        extra = ["--https-port", "0", "--tls-cert-file", target.path_argument(folder / "server.crt"),
                 "--tls-key-file", target.path_argument(folder / "server.key")]
    server = start_server("--http-port", "0", *extra)
    for name, pattern in (("http", HTTP_LISTENING),) + ((("https", HTTPS_LISTENING),) if https else ()):
        found = server.stdout.wait_for(pattern.pattern, target.deadline(5))
        if found is None:
            line = pattern.pattern.replace(r"(\S+):(\d+)", "HOST:PORT")
            raise CourseFailure(f"the server did not say '{line}'\n{server.log()}", kind="start")
        setattr(server, f"{name}_port", int(found.group(2)))
    return server


# Each browser: its driver (an npm package in tests/clients), the variable that may say where it is, where it is
# otherwise, and its Debian package.
BROWSERS = {"chromium": ("playwright-core", "CHROMIUM", "/usr/bin/chromium", "chromium"),
            "firefox": ("puppeteer-core", "FIREFOX", "/usr/bin/firefox-esr", "firefox-esr")}


def node_with_a_browser(name):
    """The path of node, once Node.js, the browser's driver and the browser are all there; each one missing is
    said (missing(): a skip, or a failure on CI), before any server starts."""
    package, variable, default, debian = BROWSERS[name]
    node = shutil.which("node")
    if node is None:
        missing("Node.js", "nodejs")
    if not (CLIENTS / "node_modules" / package).exists():
        missing(f"the npm package {package}", "it with npm ci in tests/clients")
    path = os.environ.get(variable) or default
    if not os.path.exists(path):
        missing(f"{name} ({path})", debian)
    return node


class Browser:
    """tests/clients/browser.js running its steps against the page at url; step(name) waits for that step's
    JSON line and fails the test, with all the browser and the server said, if the step failed."""

    def __init__(self, node, server, url, *steps, name="chromium", ignore_https_errors=False):
        self.server = server
        self.step_seconds = server.target.reply_deadline(5)
        self.command = [node, str(CLIENTS / "browser.js"), "--browser", name,
                        "--timeout", str(int(self.step_seconds * 1000)),
                        *(["--ignore-https-errors"] if ignore_https_errors else []), url, *steps]
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        self.out = OutputReader(self.process.stdout)
        self.err = OutputReader(self.process.stderr)
        self.read = 0  # lines taken so far
        self.steps = []  # each step's line, as taken

    def said(self):
        """Everything the browser and the server said, for a failure's message."""
        shown = [arg if len(arg) <= 80 else f"{arg[:40]}...({len(arg)} characters)" for arg in self.command]
        return (f"{shlex.join(shown)} printed:\n{self.out.text()}\n{self.err.text()}\n"
                f"{self.server.log()}")

    def step(self, name, seconds=None):
        """The JSON line of the next step called name (skipping pageerror lines, which the last line repeats)."""
        end = time.monotonic() + (seconds or self.step_seconds + 10)
        while True:
            count = self.out.wait_for_count(r".", self.read + 1, max(0.0, end - time.monotonic()))
            if count <= self.read:
                if self.out.closed:
                    raise CourseFailure(f"browser.js ended before its step {name}\n{self.said()}", kind="closed")
                raise CourseFailure(f"browser.js said nothing of its step {name} in time\n{self.said()}",
                                    kind="timeout")
            line = self.out.lines[self.read]
            self.read += 1
            try:
                found = json.loads(line)
            except ValueError:
                raise CourseFailure(f"browser.js printed a line that is not JSON: {line!r}\n{self.said()}") from None
            if "event" in found:
                continue
            self.steps.append(found)
            for browser, (package, _, _, debian) in BROWSERS.items():
                if found.get("missing") == browser:
                    missing(f"{browser} ({found.get('error')})", debian)
                if found.get("missing") == package:
                    missing(f"the npm package {package}", "it with npm ci in tests/clients")
            if not found.get("ok"):
                waited = "timeout" if "Timeout" in str(found.get("error")) else "other"
                raise CourseFailure(f"in the browser, step {found.get('step')} {found.get('args', '')} failed: "
                                    f"{found.get('error')}\n{self.said()}", kind=waited)
            if found.get("step") == "launch" and name != "launch":
                continue  # the browser started (its "ms" says how fast)
            if found.get("step") != name:
                raise CourseFailure(f"browser.js reported step {found.get('step')} where {name} was awaited\n"
                                    f"{self.said()}")
            return found

    def finish(self):
        """Waits for the last line and the exit; fails if the page reported an error on the way."""
        self.step("done")
        try:
            code = self.process.wait(10)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, f"browser.js exited {code} after all its steps\n{self.said()}"
        return self.steps

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for reader in (self.out, self.err):
            reader.thread.join(5)
        self.process.stdout.close()
        self.process.stderr.close()


def browser_runs(name):
    """A fixture's body: starts browser.js runs in the browser called name (Browser's arguments after node); each
    is ended at the end of the test, pass or fail. A test without Node.js, the driver or the browser is skipped
    here, before its server starts."""
    node = node_with_a_browser(name)
    started = []

    def start(*args, **options):
        run = Browser(node, *args, name=name, **options)
        started.append(run)
        return run

    yield start
    for run in started:
        run.close()


@pytest.fixture
def browser():
    """Chromium (playwright-core)."""
    yield from browser_runs("chromium")


@pytest.fixture
def firefox():
    """Firefox ESR (puppeteer-core, over WebDriver BiDi)."""
    yield from browser_runs("firefox")


def page_url(server, scheme="http", host="127.0.0.1"):
    return f"{scheme}://{host}:{server.https_port if scheme == 'https' else server.http_port}/"


# A reply of exactly WS_AHEAD (16384) bytes but its last CRLF: the server's frames cut it just before the CRLF.
CUT = "x" * (16384 - len("$16376\r\n"))


def test_the_page_loads_and_a_command_typed_in_its_console_gets_its_reply(start_server, target, browser):
    server = start_web(start_server, target)
    run = browser(server, page_url(server), "load", "command", "PING", "PONG",
                  "command", 'ECHO "two words"', '"two words"', "command", "NOSUCH thing", "(error) ERR",
                  "command", "CLIENT GETNAME", "(nil)", "command", "PUBLISH nobody hello", "(integer) 0",
                  "command", f"ECHO {CUT}", CUT[:40], "command", "PING", "PONG",
                  "wait-in", "#connections", "subscribe")
    loaded = run.step("load")
    assert loaded["http"] == 200, f"GET / answered {loaded['http']}\n{run.said()}"
    assert loaded["ws"] == [f"ws://127.0.0.1:{server.http_port}/ws"] * 2, \
        f"the page opened the WebSockets {loaded['ws']}, not two to /ws\n{run.said()}"
    assert run.step("command")["reply"][0] == '"PONG"'
    assert run.step("command")["reply"][0] == '"two words"'
    run.step("command")
    run.step("command")  # a bulk string's null, as redis-cli shows it
    run.step("command")  # an integer
    run.step("command")  # a reply cut across two frames just before its CRLF...
    run.step("command")  # ...and the reply after it, read from the right place
    run.step("wait-in")  # the panel: CLIENT LIST shows the page's chat connection, subscribed
    run.finish()


def test_two_pages_chat_through_subscribe_and_publish(start_server, target, browser):
    server = start_web(start_server, target)
    run = browser(server, page_url(server), "chat", "refused", "#name", "a b")
    run.step("chat")
    run.step("refused")  # a name CLIENT SETNAME would refuse is refused by the page first (the box's pattern)
    run.finish()


# A message longer than WS_AHEAD: the push that carries it (an array of three) is cut across two frames inside its
# last item, so the page's reader must wait for the whole array, not return the two items it has.
LONG_MESSAGE = "from redis-cli: " + "z" * 16384 + " (the end)"


def test_a_message_published_by_redis_cli_shows_in_the_page(start_server, target, browser):
    server = start_web(start_server, target)
    run = browser(server, page_url(server), "load", "wait-in", "#chat-log", "from redis-cli: hello",
                  "wait-in", "#chat-log", LONG_MESSAGE)
    run.step("load")  # the page is subscribed to "chat" once it says it is connected
    for message in ("from redis-cli: hello", LONG_MESSAGE):
        assert redis_cli(server, "PUBLISH", "chat", message) == (0, "1\n"), \
            f"PUBLISH from redis-cli did not reach the page's one subscription\n{run.said()}"
        run.step("wait-in")
    run.finish()


def test_ctrl_c_shows_the_stop_notice_and_a_closed_connection_in_the_page(start_server, target, browser):
    server = start_web(start_server, target)
    run = browser(server, page_url(server), "load", "wait-in", "#console-log", STOP_NOTICE,
                  "wait-in", "#status", "closed")
    run.step("load")
    expect_the_stop_shown(server, target, run)


def expect_the_stop_shown(server, target, run):
    """Ctrl+C, with the run's last two steps waiting for the notice and for the status: the page shows both,
    the close code says "going away", and the server exits 0."""
    server.interrupt()
    run.step("wait-in")
    status = run.step("wait-in")["shows"]
    run.finish()
    assert server.wait(target.deadline(5)) == 0, f"after Ctrl+C the server did not exit 0\n{server.log()}"
    assert "code 1001" in status, f"the page's status after the stop: {status!r}; a server that goes away " \
                                  f"closes with 1001 (going away)\n{run.said()}"


def test_the_page_and_its_websockets_over_https_with_the_development_ca(start_server, target, browser):
    server = start_web(start_server, target, https=True)
    context = ssl.create_default_context(cafile=str(certs(target) / "ca.crt"))
    # The certificate, checked with the course's CA, by Python: the page itself...
    fetch = http.client.HTTPSConnection("localhost", server.https_port, context=context,
                                        timeout=target.reply_deadline(5))
    try:
        fetch.connect()  # the handshake, the certificate checked
        issuer = dict(pair[0] for pair in fetch.sock.getpeercert()["issuer"])["commonName"]
        fetch.request("GET", "/")
        response = fetch.getresponse()
        body = response.read()
    finally:
        fetch.close()
    assert response.status == 200 and b"<title>Course server</title>" in body, \
        f"GET / over HTTPS: {response.status} {body[:200]!r}\n{server.log()}"
    # ...and a WebSocket over it, from a client nobody here wrote (websockets' asyncio API, Debian 12's 10.4 on).
    try:
        import asyncio

        import websockets
    except ImportError:
        missing("python3-websockets", "python3-websockets (for the Python that has pytest)")

    async def ping():
        async with websockets.connect(f"wss://localhost:{server.https_port}/ws", ssl=context,
                                      open_timeout=target.reply_deadline(5)) as ws:
            await ws.send("*1\r\n$4\r\nPING\r\n")
            return await asyncio.wait_for(ws.recv(), target.reply_deadline(5))

    got = asyncio.run(ping())
    assert got == b"+PONG\r\n", f"PING over wss:// (python3-websockets, the CA checked) got {got!r}\n{server.log()}"
    # The browser, which cannot know the CA, takes the same certificate unchecked.
    run = browser(server, page_url(server, "https", "localhost"), "load", "command", "PING", "PONG",
                  ignore_https_errors=True)
    loaded = run.step("load")
    assert loaded["ws"] == [f"wss://localhost:{server.https_port}/ws"] * 2, \
        f"over HTTPS the page opened {loaded['ws']}, not two wss:// to /ws\n{run.said()}"
    assert loaded.get("tls", {}).get("issuer") == issuer, \
        f"the browser got a certificate from {loaded.get('tls')}, Python one from {issuer}\n{run.said()}"
    run.step("command")
    run.finish()


def test_the_page_works_the_same_in_firefox(start_server, target, firefox):
    """The issue asks for the same page in Chromium and Firefox: Debian's Firefox ESR, through puppeteer-core over
    WebDriver BiDi (playwright-core cannot drive it), runs the console, the reply cut before its CRLF, a chat
    between two pages in non-ASCII text, a name the box refuses, and Ctrl+C's notice with its close code."""
    server = start_web(start_server, target)
    run = firefox(server, page_url(server), "load", "command", "PING", "PONG",
                  "command", 'ECHO "two words"', '"two words"', "command", "NOSUCH thing", "(error) ERR",
                  "command", f"ECHO {CUT}", CUT[:40], "command", "PING", "PONG",
                  "chat", "refused", "#name", "a b",
                  "page", "0", "wait-in", "#console-log", STOP_NOTICE, "wait-in", "#status", "closed")
    loaded = run.step("load")
    assert loaded["http"] == 200, f"GET / answered {loaded['http']}\n{run.said()}"
    assert run.step("command")["reply"][0] == '"PONG"'
    assert run.step("command")["reply"][0] == '"two words"'
    for _ in range(3):
        run.step("command")
    run.step("chat")
    run.step("refused")
    run.step("page")
    expect_the_stop_shown(server, target, run)
