// A webhook receiver written the way Selz's developer page says, to prove that what
// hookline sends is accepted by a receiver that knows nothing about hookline.
//
// The signature check is the page's Node.js example, unchanged in substance:
//   crypto.createHmac('sha256', key).update(`${json.timestamp}${json.token}`, 'ascii')
//         .digest('base64') === request.headers['x-selz-signature']
// Only node's built-in `http` and `crypto` are used, so nothing needs installing.
//
// Usage:
//   node seed_receiver.js --port 0 --key KEY [--log requests.jsonl]
//       Serve. Any POST is checked: 200 when the signature matches, 400 otherwise.
//       Prints "listening <port>" once ready. Every request (method, path, headers,
//       body, verdict) is appended to --log as one JSON line and kept for GET /_log.
//   node seed_receiver.js --sign < vectors.json
//       Print, one per line, the signature of each {key, timestamp, token} in the
//       JSON array read from stdin: the same function the server uses.
// The key may also come from the SEED_KEY environment variable.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

const createSignature = (key, message) =>
  crypto.createHmac('sha256', key).update(message, 'ascii').digest('base64');

// The page builds the message from the parsed body with a template string, so a
// missing field becomes the text "undefined"; keeping that is part of being faithful.
const messageOf = (json) => `${json['timestamp']}${json['token']}`;

const validateSignature = (key, json, signature) =>
  signature === createSignature(key, messageOf(json));

function parseArgs(argv) {
  const args = { port: 0, key: process.env.SEED_KEY, log: null, sign: false };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    if (name === '--sign') args.sign = true;
    else if (name === '--port') args.port = Number(argv[++i]);
    else if (name === '--key') args.key = argv[++i];
    else if (name === '--log') args.log = argv[++i];
    else throw new Error(`unknown argument ${name}`);
  }
  return args;
}

function judge(key, rawBody, headers) {
  let json;
  try {
    json = JSON.parse(rawBody);
  } catch (err) {
    return { status: 400, verdict: 'bad_json' };
  }
  if (json === null || typeof json !== 'object') return { status: 400, verdict: 'bad_json' };
  const ok = validateSignature(key, json, headers['x-selz-signature']);
  return ok ? { status: 200, verdict: 'accepted' } : { status: 400, verdict: 'bad_signature' };
}

function serve(args) {
  if (!args.key) throw new Error('a key is needed: --key KEY or SEED_KEY');
  const log = [];
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/_log') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(log));
      return;
    }
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const { status, verdict } = req.method === 'POST'
        ? judge(args.key, body, req.headers)
        : { status: 405, verdict: 'method_not_allowed' };
      const entry = { method: req.method, path: req.url, headers: req.headers, body, status, verdict };
      log.push(entry);
      // Written before answering, so a client that saw the answer finds the line.
      if (args.log) fs.appendFileSync(args.log, JSON.stringify(entry) + '\n');
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(verdict);
    });
  });
  server.listen(args.port, '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // keep-alive clients must not hold the exit back
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function signFromStdin() {
  const vectors = JSON.parse(fs.readFileSync(0, 'utf8'));
  for (const v of vectors) {
    process.stdout.write(createSignature(v.key, messageOf(v)) + '\n');
  }
}

const args = parseArgs(process.argv.slice(2));
if (args.sign) signFromStdin();
else serve(args);
