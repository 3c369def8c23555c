// redis_clients.js - drives a server with a Redis client library from the npm registry, with its
// default options, as an application would: connect, single commands, a transaction, a pipeline,
// and publish/subscribe on a second connection. Run by tests/test_clients.py.
//
//   node redis_clients.js node-redis|ioredis HOST PORT
//
// Prints one line per step, then "ok"; on a failure, the step and why, and exits 1. It gives up by
// itself after 20 s: a library that never connects retries for ever.
'use strict';

const [library, host, port] = process.argv.slice(2);
const deadline = setTimeout(() => fail('the whole run', 'did not finish within 20 s'), 20000);

function fail(step, why) {
  console.log(`FAIL ${step}: ${why}`);
  process.exit(1);
}

function expect(step, got, want) {
  const [g, w] = [JSON.stringify(got), JSON.stringify(want)];
  if (g !== w) fail(step, `got ${g}, expected ${w}`);
  console.log(`${step}: ${g}`);
}

// Resolves with the first message on the channel, or fails after 5 s.
function firstMessage(subscribe, step) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => fail(step, 'no message within 5 s'), 5000);
    subscribe((message, channel) => {
      clearTimeout(timer);
      resolve([channel, message]);
    });
  });
}

async function nodeRedis() {
  const { createClient } = require('redis');
  const client = createClient({ socket: { host, port: Number(port), reconnectStrategy: false } });
  client.on('error', (e) => fail('connection', e.message));
  await client.connect(); // HELLO 3 and CLIENT SETINFO first, as node-redis does
  expect('PING', await client.ping(), 'PONG');
  expect('ECHO', await client.echo('hello'), 'hello');
  expect('CLIENT SETNAME', await client.clientSetName('app'), 'OK');
  expect('CLIENT GETNAME', await client.clientGetName(), 'app');
  expect('MULTI/EXEC', await client.multi().ping().echo('in a transaction').exec(), ['PONG', 'in a transaction']);
  expect('pipeline', await client.multi().ping().echo('piped').execAsPipeline(), ['PONG', 'piped']);
  expect('auto-pipelining', await Promise.all([client.echo('a'), client.echo('b'), client.ping()]), ['a', 'b', 'PONG']);
  const subscriber = client.duplicate();
  subscriber.on('error', (e) => fail('subscriber', e.message));
  await subscriber.connect();
  const got = firstMessage((listener) => subscriber.subscribe('news', listener), 'SUBSCRIBE and PUBLISH');
  await new Promise((r) => setTimeout(r, 0));
  let reached = 0;
  for (let tries = 0; reached === 0 && tries < 100; tries++) // until the subscription has been made
    reached = await client.publish('news', 'hello all');
  expect('PUBLISH', reached, 1);
  expect('message', await got, ['news', 'hello all']);
  await subscriber.unsubscribe('news');
  await subscriber.close();
  await client.close();
}

async function ioredis() {
  const Redis = require('ioredis');
  const options = { host, port: Number(port), retryStrategy: () => null, maxRetriesPerRequest: 0 };
  const client = new Redis(options); // HELLO 3, CLIENT SETINFO and INFO first, as ioredis does
  client.on('error', (e) => fail('connection', e.message));
  expect('PING', await client.ping(), 'PONG');
  expect('ECHO', await client.echo('hello'), 'hello');
  expect('CLIENT SETNAME', await client.client('SETNAME', 'app'), 'OK');
  expect('CLIENT GETNAME', await client.client('GETNAME'), 'app');
  expect('MULTI/EXEC', await client.multi().ping().echo('in a transaction').exec(),
    [[null, 'PONG'], [null, 'in a transaction']]);
  expect('pipeline', await client.pipeline().ping().echo('piped').exec(), [[null, 'PONG'], [null, 'piped']]);
  const subscriber = new Redis(options);
  subscriber.on('error', (e) => fail('subscriber', e.message));
  const got = firstMessage((listener) => subscriber.on('message', (channel, message) => listener(message, channel)),
    'SUBSCRIBE and PUBLISH');
  expect('SUBSCRIBE', await subscriber.subscribe('news'), 1);
  expect('PUBLISH', await client.publish('news', 'hello all'), 1);
  expect('message', await got, ['news', 'hello all']);
  await subscriber.unsubscribe('news');
  await subscriber.quit();
  expect('QUIT', await client.quit(), 'OK');
}

const run = { 'node-redis': nodeRedis, ioredis }[library];
if (!run) fail('arguments', `unknown library ${library}: node-redis or ioredis`);
run().then(() => {
  clearTimeout(deadline);
  console.log('ok');
}, (e) => fail('a command', e && (e.stack || e.message || e)));
