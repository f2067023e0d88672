// Tiny HTTPS GET helper for run.sh (accepts kaigi's self-signed certificate).
// Usage: node http-get.mjs URL [--wait SECONDS] [--pid PID] [--out FILE]
//   --wait: retry until a 2xx answer, for at most SECONDS (fails at once if --pid is no longer alive)
//   --out:  write the body to FILE (default: stdout)
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const args = process.argv.slice(2);
const url = args.shift();
let wait = 0, pid = 0, out = '';
while (args.length) {
  const a = args.shift();
  if (a === '--wait') wait = Number(args.shift());
  else if (a === '--pid') pid = Number(args.shift());
  else if (a === '--out') out = args.shift();
  else { console.error(`http-get: unknown argument ${a}`); process.exit(2); }
}
if (!url) { console.error('usage: node http-get.mjs URL [--wait S] [--pid PID] [--out FILE]'); process.exit(2); }

function get(u) {
  return new Promise((resolve, reject) => {
    const req = (u.startsWith('https:') ? httpsRequest : httpRequest)(u, { rejectUnauthorized: false, timeout: 5000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const deadline = Date.now() + wait * 1000;
let last = '';
for (;;) {
  if (pid) {
    try { process.kill(pid, 0); } catch { console.error(`http-get: process ${pid} exited before ${url} answered (${last})`); process.exit(1); }
  }
  try {
    const r = await get(url);
    if (r.status >= 200 && r.status < 300) {
      if (out) writeFileSync(out, r.body); else process.stdout.write(r.body);
      process.exit(0);
    }
    last = `HTTP ${r.status}`;
  } catch (e) {
    last = String(e.code || e.message || e);
  }
  if (Date.now() >= deadline) { console.error(`http-get: ${url}: ${last}`); process.exit(1); }
  await sleep(200);
}
