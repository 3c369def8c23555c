// ws_client.js - drives the server's WebSocket (GET /ws) with Node's ws package, nobody here's code,
// with its default options (it offers permessage-deflate), as a Node program would. Run by
// tests/test_websocket.py.
//
//   node ws_client.js ws://127.0.0.1:PORT/ws
//   node ws_client.js wss://localhost:PORT/ws CA-FILE
//
// The server answers in binary messages holding RESP, cut anywhere: the replies are put back together
// here. Prints one line per step, then "ok"; on a failure, the step and why, and exits 1. It gives up
// by itself after 20 s.
'use strict';

const fs = require('fs');
const WebSocket = require('ws');

const [url, caFile] = process.argv.slice(2);
const deadline = setTimeout(() => fail('the whole run', 'did not finish within 20 s'), 20000);

function fail(step, why) {
  console.log(`FAIL ${step}: ${why}`);
  process.exit(1);
}

function expect(step, got, want) {
  const [g, w] = [JSON.stringify(got), JSON.stringify(want)];
  if (g !== w) fail(step, `got ${g.slice(0, 300)}, expected ${w.slice(0, 300)}`);
  console.log(`${step}: ${g.slice(0, 80)}`);
}

// One RESP2 value from buf at `at`: [value, end], or null while it is not whole. Bulk strings are
// Buffers; simple strings and errors are {ok} and {err}.
function parse(buf, at) {
  const lineEnd = buf.indexOf('\r\n', at);
  if (lineEnd < 0) return null;
  const kind = String.fromCharCode(buf[at]);
  const line = buf.toString('latin1', at + 1, lineEnd);
  let after = lineEnd + 2;
  if (kind === '+') return [{ ok: line }, after];
  if (kind === '-') return [{ err: line }, after];
  if (kind === ':') return [Number(line), after];
  if (kind === '$') {
    const size = Number(line);
    if (size < 0) return [null, after];
    if (buf.length < after + size + 2) return null;
    return [buf.subarray(after, after + size), after + size + 2];
  }
  if (kind === '*') {
    const items = [];
    for (let i = 0; i < Number(line); i++) {
      const got = parse(buf, after);
      if (got === null) return null;
      items.push(got[0]);
      after = got[1];
    }
    return [items, after];
  }
  fail('parse the replies', `not RESP: ${JSON.stringify(buf.toString('latin1', at, at + 40))}`);
}

let stream = Buffer.alloc(0);
let waiting = null; // {count, values, resolve}

function takeReplies() {
  while (waiting) {
    const got = parse(stream, 0);
    if (got === null) return;
    stream = stream.subarray(got[1]);
    waiting.values.push(got[0]);
    if (waiting.values.length === waiting.count) {
      const done = waiting;
      waiting = null;
      done.resolve(done.values);
    }
  }
}

function replies(count) {
  return new Promise((resolve) => {
    waiting = { count, values: [], resolve };
    takeReplies();
  });
}

function resp(...words) {
  const parts = [Buffer.from(`*${words.length}\r\n`)];
  for (const word of words) {
    const bytes = Buffer.isBuffer(word) ? word : Buffer.from(word);
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

async function main() {
  const ws = new WebSocket(url, caFile ? { ca: fs.readFileSync(caFile) } : {});
  ws.on('error', (e) => fail('the connection', e.message));
  ws.on('message', (data, isBinary) => {
    if (!isBinary) fail('a message', 'a text message came: the replies come in binary ones');
    stream = Buffer.concat([stream, data]);
    takeReplies();
  });
  await new Promise((resolve) => ws.on('open', resolve));
  expect('extensions agreed', ws.extensions, '');

  ws.send('PING\r\n'); // a string goes as a text message
  expect('PING', await replies(1), [{ ok: 'PONG' }]);

  const big = Buffer.alloc(100000, 'n');
  ws.send(Buffer.concat([resp('ECHO', big), resp('ECHO', 'été')])); // a Buffer: a binary message
  const [echoed, accented] = await replies(2);
  expect('ECHO of 100000 bytes', echoed.equals(big), true);
  expect('ECHO été', accented.toString('utf8'), 'été');

  ws.send('ECHO cut-acr');
  ws.send('oss\r\n');
  expect('a command cut across two messages', (await replies(1))[0].toString(), 'cut-across');

  const pong = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping('node');
  expect('pong', (await pong).toString(), 'node');

  const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  ws.close(1000, 'done');
  expect('the close answered', await closed, 1000);
  clearTimeout(deadline);
  console.log('ok');
}

main().catch((e) => fail('main', e.stack));
