// The browser side of benches/browser_pausing.sh: joins N Chromium participants, measures kaigi's
// forwarding with everyone on one page, then with 4 tiles per page. Not a test: it asserts
// nothing and writes figures.
import { writeFileSync, mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from '../tests/e2e/node_modules/playwright-core/index.mjs';

const [n, secs, out, machine, commit] = process.argv.slice(2);
const N = Number(n);
const SECS = Number(secs);
const BASE = process.env.KAIGI_URL;
const PID = process.env.KAIGI_PID;
const room = `pausing-${Date.now().toString(36)}`;
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection', '--mute-audio'];

function metrics() {
  return new Promise((resolve, reject) => {
    https.get(`${BASE}/metrics`, { rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        const v = (name) => Number(body.split('\n').find((l) => l.startsWith(name))?.split(' ').pop() ?? 0);
        resolve({
          bytesOut: v('kaigi_bytes_total{direction="out"}'),
          bytesIn: v('kaigi_bytes_total{direction="in"}'),
          forwarded: v('kaigi_rtp_forwarded_total'),
          paused: v('kaigi_rtp_paused_total'),
        });
      });
    }).on('error', reject);
  });
}
const cpuSeconds = () => {
  const f = readFileSync(`/proc/${PID}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};

async function phase(label) {
  const m0 = await metrics();
  const c0 = cpuSeconds();
  const t0 = Date.now();
  await sleep(SECS * 1000);
  const m1 = await metrics();
  const dt = (Date.now() - t0) / 1000;
  const r = {
    phase: label,
    forwarded_mbit_s: Math.round(((m1.bytesOut - m0.bytesOut) * 8) / dt / 1e4) / 100,
    received_mbit_s: Math.round(((m1.bytesIn - m0.bytesIn) * 8) / dt / 1e4) / 100,
    packets_forwarded_per_s: Math.round((m1.forwarded - m0.forwarded) / dt),
    packets_paused_per_s: Math.round((m1.paused - m0.paused) / dt),
    kaigi_cpu_pct: Math.round(((cpuSeconds() - c0) / dt) * 1000) / 10,
    // Publishers told nobody shows their camera (video_wanted false) stop encoding it.
    cameras_off: (await Promise.all(browsers.map((b) => b.pages()[0].evaluate(() => window.kaigi.publishPc
      .getSenders().some((x) => x.track?.kind === 'video' && x.getParameters().encodings.every((e) => e.active === false))))))
      .filter(Boolean).length,
  };
  console.log(JSON.stringify(r));
  return r;
}

const dirs = [];
const browsers = [];
try {
  for (let i = 0; i < N; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'kaigi-pausing-'));
    dirs.push(dir);
    const ctx = await chromium.launchPersistentContext(dir, {
      executablePath: '/usr/bin/chromium', headless: true, args: FLAGS, ignoreHTTPSErrors: true,
      viewport: { width: 1280, height: 720 },
    });
    browsers.push(ctx);
    const page = ctx.pages()[0] || (await ctx.newPage());
    await page.goto(`${BASE}/r/${room}?tiles=16`, { waitUntil: 'load' });
    await page.getByRole('textbox').first().fill(`p${i + 1}`);
    await page.getByRole('button', { name: /^\s*(Join|参加)\s*$/ }).click();
    await page.waitForFunction(() => document.body.dataset.state === 'joined', null, { timeout: 60_000 });
  }
  console.log(`${N} participants joined; settling`);
  await sleep(10_000);
  const all = await phase(`all ${N - 1} others on the page`);
  for (const ctx of browsers) await ctx.pages()[0].evaluate(() => window.kaigi.setTilesPerPage(4));
  await sleep(5_000);
  const paged = await phase('4 tiles per page (3 others shown)');
  const doc = { date: new Date().toISOString(), commit, machine, participants: N, seconds_per_phase: SECS,
    scenario: `${N} headless Chromium participants (fake camera and microphone) in one room, loopback, private network namespace`,
    phases: [all, paged],
    saving_pct: Math.round((1 - paged.forwarded_mbit_s / all.forwarded_mbit_s) * 1000) / 10 };
  writeFileSync(`${out}.json`, JSON.stringify(doc, null, 2) + '\n');
  const md = [`# Off-page pausing in a ${N}-person browser meeting, ${doc.date.slice(0, 10)} (commit ${commit})`, '',
    `Machine: ${machine}. ${doc.scenario}. Command: \`sudo benches/browser_pausing.sh ${N} ${SECS}\`.`, '',
    '| phase | forwarded Mbit/s | received Mbit/s | packets forwarded/s | packets paused/s | cameras not encoding | kaigi CPU % |', '|---|---|---|---|---|---|---|',
    ...doc.phases.map((p) => `| ${p.phase} | ${p.forwarded_mbit_s} | ${p.received_mbit_s} | ${p.packets_forwarded_per_s} | ${p.packets_paused_per_s} | ${p.cameras_off} of ${N} | ${p.kaigi_cpu_pct} |`),
    '', `Forwarded bitrate saved by pausing off-page video: ${doc.saving_pct}%. Everyone's page shows the same`,
    'first participants, so the others\' cameras are shown by nobody and stop encoding (video_wanted false):',
    'their video is saved at the source rather than paused at the SFU. The browsers share this machine\'s',
    'two cores, so their encoders adapt to the CPU they get; the ratio, not the absolute bitrate, is the figure.', ''].join('\n');
  writeFileSync(`${out}.md`, md);
  console.log(md);
} finally {
  for (const b of browsers) await b.close().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
