#!/usr/bin/env node
// @ts-check
// Memory of tsrun's processes while a container runs: starts `tsrun exec ROOTFS sleep 2`, samples
// /proc every few ms for the job's process and all its descendants, and prints each one's peak
// resident size. The launcher execs node, so the job's pid is tsrun's own process; its VmHWM
// sampled just before the payload ends is its peak.
//
// Usage: node bench/memory.js [ROOTFS]   (default images/busybox; also run by bench/startup.js)
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { REPO, TSRUN, ENV } = require('./lib.js');

const SAMPLE_MS = 10;
const TIMEOUT_MS = 30e3;
const MIB = 1024; // status fields are in kB

/** Name, VmHWM, VmRSS (kB) and ppid of a live process, or null once it is gone. */
function readProc(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (k) => (status.match(new RegExp(`^${k}:\\s*(.*)$`, 'm')) || [])[1];
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return {
      name: cmdline.slice(0, 60) || field('Name'),
      hwm: parseInt(field('VmHWM') || '0', 10),
      rss: parseInt(field('VmRSS') || '0', 10),
      ppid: parseInt(field('PPid'), 10),
    };
  } catch {
    return null;
  }
}

/** The pids of ROOT and of every descendant alive now. */
function processTree(root) {
  const children = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const p = readProc(entry);
    if (p) children.set(p.ppid, [...(children.get(p.ppid) || []), Number(entry)]);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]) || []));
  return tree;
}

/**
 * Adds one sample of every process in the tree to SEEN: pid -> phases, one per name the process
 * had (the wrapper execs the starter, stage 2 execs the payload), each with its largest VmHWM
 * and VmRSS. A zombie has no memory fields and adds nothing.
 */
function sample(root, seen) {
  for (const pid of processTree(root)) {
    const p = readProc(pid);
    if (!p || p.hwm === 0) continue;
    const phases = seen.get(pid) || [];
    let last = phases[phases.length - 1];
    if (!last || last.name !== p.name) phases.push((last = { name: p.name, hwm: 0, rss: 0 }));
    last.hwm = Math.max(last.hwm, p.hwm);
    last.rss = Math.max(last.rss, p.rss);
    seen.set(pid, phases);
  }
}

function printReport(root, seen, code, stderr) {
  const mib = (kb) => (kb / MIB).toFixed(1);
  if (code !== 0) {
    const line = stderr.split('\n').find((l) => l.trim() !== '') || '';
    console.log(`error: tsrun exec exited ${code}${line ? `: ${line.trim().slice(0, 100)}` : ''}`);
  }
  const own = seen.get(root) || [];
  const final = own[own.length - 1];
  // VmHWM only grows until the next exec, so the last sample before exit is the peak.
  console.log(
    `tsrun process (pid ${root}) peak VmHWM: ${final ? mib(final.hwm) : '?'} MiB` +
      `${final ? ` as '${final.name}'` : ''}`,
  );
  console.log(`${'pid'.padEnd(8)}${'VmHWM'.padStart(8)}${'max RSS'.padStart(9)}  process (MiB)`);
  let sum = 0;
  for (const [pid, phases] of seen) {
    for (const ph of phases) {
      const cells = `${String(pid).padEnd(8)}${mib(ph.hwm).padStart(8)}${mib(ph.rss).padStart(9)}`;
      console.log(`${cells}  ${ph.name}`);
    }
    sum += Math.max(...phases.map((ph) => ph.hwm));
  }
  console.log(`sum of each process's peak (an upper bound of the total): ${mib(sum)} MiB`);
}

/** Runs the container, sampling until it exits; prints the figures. */
async function reportMemory(rootfs) {
  console.log(`\nmemory of \`tsrun exec ${rootfs} sleep 2\`, sampled every ${SAMPLE_MS} ms`);
  const child = spawn(TSRUN, ['exec', rootfs, 'sleep', '2'], {
    env: ENV,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => {
    child.on('error', (err) => resolve({ code: -1, err }));
    child.on('exit', (code, signal) => resolve({ code: code ?? `signal ${signal}` }));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);

  const seen = new Map();
  let done = null;
  exited.then((r) => (done = r));
  while (!done && child.pid) {
    sample(child.pid, seen);
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
  }
  const result = await exited;
  clearTimeout(timer);
  if (result.err) return console.log(`error: ${TSRUN}: ${result.err.message}`);
  printReport(child.pid, seen, result.code, stderr);
}

module.exports = { reportMemory };

if (require.main === module) {
  reportMemory(path.resolve(process.argv[2] || path.join(REPO, 'images', 'busybox'))).catch((e) => {
    console.error(`bench: ${e.message}`);
    process.exit(1);
  });
}
