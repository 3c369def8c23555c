// ws_echo_server.js - the Node side of scripts/bench's part "web": a WebSocket echo server on the npm package
// `ws` (tests/clients/package.json), with its default options (no permessage-deflate), on 127.0.0.1. Each
// message comes back as it came, in one binary frame. One process, one event loop: as lesson 08's server is
// one loop (its workers run only slow commands).
//
//   node ws_echo_server.js [--port PORT]   (0, the default, for any free port)
//
// Prints "listening on 127.0.0.1:PORT" when it accepts connections; SIGINT or SIGTERM ends it.
'use strict';

const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
let port = 0;
while (args.length) {
  const option = args.shift();
  if (option === '--port' && args.length) port = Number(args.shift());
  else {
    console.error('usage: node ws_echo_server.js [--port PORT]');
    process.exit(2);
  }
}
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`ws_echo_server.js: a bad port ${port}`);
  process.exit(2);
}

const server = new WebSocketServer({ host: '127.0.0.1', port });
server.on('connection', (socket) => {
  socket.on('message', (data) => socket.send(data, { binary: true }));
  socket.on('error', () => {}); // a client gone mid-frame: only that connection ends
});
server.on('listening', () => console.log(`listening on 127.0.0.1:${server.address().port}`));
server.on('error', (error) => {
  console.error(`ws_echo_server.js: ${error.message}`);
  process.exit(1);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
