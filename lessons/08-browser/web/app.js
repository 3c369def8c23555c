// app.js - the page's side of lesson 08. Two WebSockets to the server's /ws: one for the console and the panel
// (commands, each answered in order), one subscribed to the channel "chat" (a subscribed connection may only
// subscribe, so it gets one of its own). Commands go out as RESP arrays in text frames, as redis-cli sends
// them; replies come back as RESP, in frames of any cut, and RespReader puts them back together.
"use strict";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// A command as redis-cli sends it: an array of bulk strings, each length in bytes, not characters.
function encodeCommand(words) {
  let text = `*${words.length}\r\n`;
  for (const word of words) text += `$${encoder.encode(word).length}\r\n${word}\r\n`;
  return text;
}

// Words split on blanks; "double quotes" keep blanks inside a word, and \" and \\ stand for " and \ there.
function splitWords(line) {
  const words = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let found; (found = pattern.exec(line)) !== null;)
    words.push(found[1] !== undefined ? found[1].replace(/\\(.)/g, "$1") : found[2]);
  return words;
}

// The RESP value that starts at pos in bytes (a Uint8Array), and where it ends: { value, end }; undefined
// while it has not all arrived. A simple string is a string, an error an Error, an integer a Number, a bulk
// string a string (null for $-1), an array an Array (null for *-1). Lengths count bytes, not characters.
function parseReply(bytes, pos) {
  const lineEnd = indexOfCrlf(bytes, pos);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(bytes[pos]);
  const line = decoder.decode(bytes.subarray(pos + 1, lineEnd));
  const after = lineEnd + 2;
  switch (type) {
    case "+": return { value: line, end: after };
    case "-": return { value: new Error(line), end: after };
    case ":": return { value: Number(line), end: after };
    case "$": {
      const len = Number(line);
      if (len < 0) return { value: null, end: after };
      if (bytes.length < after + len + 2) return undefined;
      return { value: decoder.decode(bytes.subarray(after, after + len)), end: after + len + 2 };
    }
    case "*": {
      const count = Number(line);
      if (count < 0) return { value: null, end: after };
      const items = [];
      let end = after;
      for (let i = 0; i < count; i++) {
        const item = parseReply(bytes, end);
        if (item === undefined) return undefined;
        items.push(item.value);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`not RESP: a reply starting with ${JSON.stringify(type)}`);
  }
}

// Where the next CRLF starts, at or after from; -1 when none has arrived.
function indexOfCrlf(bytes, from) {
  for (let i = from; i + 1 < bytes.length; i++)
    if (bytes[i] === 13 && bytes[i + 1] === 10) return i;
  return -1;
}

// RESP replies out of a stream of bytes that arrive in pieces, cut anywhere: next() gives a whole reply, or
// undefined.
class RespReader {
  constructor() { this.bytes = new Uint8Array(0); }

  push(chunk) {
    const joined = new Uint8Array(this.bytes.length + chunk.length);
    joined.set(this.bytes);
    joined.set(chunk, this.bytes.length);
    this.bytes = joined;
  }

  next() {
    const parsed = parseReply(this.bytes, 0);
    if (parsed === undefined) return undefined;
    this.bytes = this.bytes.slice(parsed.end);
    return parsed.value;
  }
}

// One WebSocket to the server: send(words) answers with a Promise of the reply (replies come in order);
// onPush gets what comes unasked (published messages, the stop's notice).
class Connection {
  constructor(onPush, onClose) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.socket = new WebSocket(`${scheme}//${location.host}/ws`);
    this.socket.binaryType = "arraybuffer";
    this.reader = new RespReader();
    this.waiting = [];
    this.opened = new Promise((resolve, reject) => {
      this.socket.onopen = resolve;
      this.socket.onerror = () => reject(new Error("the WebSocket could not open"));
    });
    this.socket.onmessage = (event) => {
      const data = typeof event.data === "string" ? encoder.encode(event.data) : new Uint8Array(event.data);
      this.reader.push(data);
      try {
        for (let reply; (reply = this.reader.next()) !== undefined;) {
          const asked = Array.isArray(reply) && reply[0] === "message" ? undefined : this.waiting.shift();
          if (asked) asked(reply);
          else onPush(reply);
        }
      } catch (error) {
        // Bytes that are not RESP2: nothing after them can be read right. Say so, and end the connection
        // (with 4000: a page may send only 1000 or an application's code, 3000 to 4999).
        onPush(error);
        this.socket.close(4000, "not RESP");
      }
    };
    this.socket.onclose = (event) => onClose(event);
  }

  send(words) {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.socket.send(encodeCommand(words));
    });
  }
}

// A reply as redis-cli shows it.
function format(reply, indent = "") {
  if (reply instanceof Error) return `(error) ${reply.message}`;
  if (reply === null) return "(nil)";
  if (typeof reply === "number") return `(integer) ${reply}`;
  if (Array.isArray(reply)) {
    if (reply.length === 0) return "(empty array)";
    return reply.map((item, i) => `${indent}${i + 1}) ${format(item, indent + "   ")}`).join("\n");
  }
  return reply.includes("\n") ? reply : JSON.stringify(reply);
}

function append(list, text, className) {
  const item = document.createElement("li");
  item.textContent = text; // text, never HTML: a message may hold anything
  if (className) item.className = className;
  list.append(item);
  item.scrollIntoView({ block: "nearest" });
}

const $ = (id) => document.getElementById(id);
let control, chat, panelTimer, lastCount;

function serverGone(event) {
  $("status").textContent = `the server closed the connection (code ${event.code}${event.reason ? ": " + event.reason : ""})`;
  $("reconnect").hidden = false;
  clearInterval(panelTimer);
}

function shown(reply) {
  // The stop's notice comes unasked, as an error reply: show it where the user is looking.
  append($("console-log"), format(reply), reply instanceof Error ? "error" : "push");
}

async function refreshPanel() {
  const info = await control.send(["INFO"]);
  const field = (name) => Number((String(info).match(new RegExp(`^${name}:(\\d+)`, "m")) || [])[1]);
  $("clients").textContent = field("connected_clients");
  $("channels").textContent = field("pubsub_channels");
  const count = field("total_commands_processed");
  if (lastCount !== undefined) $("rate").textContent = count - lastCount;
  lastCount = count;
  const list = await control.send(["CLIENT", "LIST"]);
  const rows = String(list).trim().split("\n").map((line) =>
    Object.fromEntries(line.split(" ").map((pair) => pair.split("="))));
  $("connections").replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    for (const key of ["id", "addr", "name", "idle", "cmd"]) {
      const td = document.createElement("td");
      td.textContent = row[key] ?? "";
      tr.append(td);
    }
    return tr;
  }));
}

async function connect() {
  $("reconnect").hidden = true;
  $("status").textContent = "connecting…";
  control = new Connection(shown, serverGone);
  chat = new Connection((reply) => {
    if (Array.isArray(reply) && reply[0] === "message") append($("chat-log"), reply[2]);
    else shown(reply);
  }, () => {});
  try {
    await Promise.all([control.opened, chat.opened]);
  } catch (error) {
    $("status").textContent = error.message;
    $("reconnect").hidden = false;
    return;
  }
  await chat.send(["SUBSCRIBE", "chat"]);
  $("status").textContent = `connected to ${location.host}`;
  lastCount = undefined;
  await refreshPanel();
  panelTimer = setInterval(refreshPanel, 1000);
}

// Commands that would change the connection the console shares with the panel: a subscribed connection may
// only subscribe, HELLO 3 speaks RESP3 (which parseReply() does not read), QUIT and RESET end or reset it.
const NOT_IN_THE_CONSOLE = ["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "HELLO", "QUIT", "RESET"];

$("console-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const line = $("command").value;
  const words = splitWords(line);
  if (words.length === 0) return;
  $("command").value = "";
  append($("console-log"), `> ${line}`, "command");
  if (NOT_IN_THE_CONSOLE.includes(words[0].toUpperCase())) {
    append($("console-log"), `(page) not here: ${words[0]} would change the connection the panel uses too ` +
      "(the chat has its own for SUBSCRIBE; redis-cli can do the rest)", "error");
    return;
  }
  append($("console-log"), format(await control.send(words)));
});

$("name-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reply = await control.send(["CLIENT", "SETNAME", $("name").value]);
  append($("chat-log"), reply instanceof Error ? format(reply) : `you are ${$("name").value}`, "note");
});

$("chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("name").value || "someone";
  await control.send(["PUBLISH", "chat", `${name}: ${$("message").value}`]);
  $("message").value = "";
});

$("reconnect").addEventListener("click", connect);
connect();
