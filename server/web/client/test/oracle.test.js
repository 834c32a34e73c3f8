// Cross-check of src/ot.js against the C implementation (crdt/ot.h): the
// oracle test/oracle/ot_oracle.c is compiled with the C build's
// libtandem_crdt.a (the build directory of TANDEM_BIN) and given 1500 random
// operation pairs on texts with astral characters; transform (both sides)
// and compose must come out byte for byte as the JavaScript ones encode.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ot from '../src/ot.js';
import { encodeRaw } from '../src/codec.js';
import { TANDEM_BIN } from './helpers.js';
import { rng } from './rng.js';
import { randomText, randomOp } from './gen.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../../..');
const buildDir = path.dirname(path.dirname(TANDEM_BIN));
const lib = path.join(buildDir, 'crdt', 'libtandem_crdt.a');

const hex = (v) => Buffer.from(encodeRaw(v)).toString('hex');

test('JavaScript transform and compose equal the C library on 1500 random pairs', () => {
  assert.ok(existsSync(lib), `the C library is needed: ${lib} (build it, or set TANDEM_BIN)`);
  const dir = mkdtempSync(path.join(tmpdir(), 'tandem-oracle-'));
  try {
    const exe = path.join(dir, 'ot_oracle');
    const cc = spawnSync(process.env.CC || 'cc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-I', path.join(repo, 'crdt'), path.join(here, 'oracle', 'ot_oracle.c'), lib, '-lcbor', '-o', exe], { encoding: 'utf8' });
    assert.equal(cc.status, 0, `compiling the oracle failed: ${cc.stderr}`);
    const r = rng(2024);
    const cases = [];
    for (let i = 0; i < 1500; i++) {
      const s = randomText(r, 16);
      cases.push([randomOp(r, s), randomOp(r, s)]);
    }
    // plus a pair whose base lengths differ: both sides must refuse it
    const bad = [[1, 'x'], [2]];
    const input = [...cases, bad].map(([a, b]) => `${hex(a)} ${hex(b)}`).join('\n') + '\n';
    const run = spawnSync(exe, [], { input, encoding: 'utf8', maxBuffer: 1 << 26 });
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trimEnd().split('\n');
    assert.equal(lines.length, cases.length + 1);
    cases.forEach(([a, b], i) => {
      const t1 = ot.transform(a, b, 'left');
      const t2 = ot.transform(b, a, 'right');
      const c = ot.compose(a, t2);
      assert.equal(lines[i], `${hex(t1)} ${hex(t2)} ${hex(c)}`, `case ${i}: a=${JSON.stringify(a)} b=${JSON.stringify(b)}`);
    });
    assert.match(lines[cases.length], /^ERR /);
    assert.throws(() => ot.transform(...bad, 'left'), ot.OTError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
