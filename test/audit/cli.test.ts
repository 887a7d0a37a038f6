import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { portAudit as port } from './cli-runner.js';
import { buildLog, raw, tempDir, updateRecord, writeConfig } from './helpers.js';

describe('port audit (in-process)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let config: string;
  let dbPath: string;

  beforeEach(async () => {
    tmp = tempDir();
    config = writeConfig(tmp.dir);
    dbPath = join(tmp.dir, 'port.db');
    await buildLog(dbPath, 55, 10);
  });
  afterEach(() => tmp.cleanup());

  it('verify: exit 0 with a summary that admits the unsigned tail', async () => {
    const r = await port('verify', '-c', config);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Decision log: 55 entries (last entry 55), 5 checkpoints (5 valid, last at entry 50).');
    expect(r.stdout).toContain('5 entries after entry 50 are hash-chained but not signed by a checkpoint yet');
    expect(r.stdout).toMatch(/^OK: /m);
    expect(r.stderr).toBe('');
  });

  it('verify: exit 1 naming the first bad entry', async () => {
    const db = raw(dbPath);
    updateRecord(db, 42, (rec) => void (rec.decision = 'allow'));
    db.close();
    const r = await port('verify', '-c', config);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('entry 42: changed (hash does not match its contents)');
    expect(r.stderr).toBe('port audit verify: FAILED: entry 42: changed (hash does not match its contents)\n');
  });

  it('verify --json prints the report', async () => {
    const r = await port('verify', '-c', config, '--json');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, entries: 55, lastCheckpointSeq: 50, unsignedEntries: 5 });
  });

  it('verify --jwks checks checkpoints against keys kept outside the database', async () => {
    const store = SqliteStore.open(dbPath);
    const keys = (await store.keys.list()).map((k) => k.publicJwk);
    await store.close();
    const good = join(tmp.dir, 'jwks.json');
    writeFileSync(good, JSON.stringify({ keys }));
    expect((await port('verify', '-c', config, '--jwks', good)).code).toBe(0);

    const other = { ...(await exportJWK((await generateKeyPair('ES256')).publicKey)), kid: 'other', alg: 'ES256' };
    const wrong = join(tmp.dir, 'other.json');
    writeFileSync(wrong, JSON.stringify({ keys: [other] }));
    const r = await port('verify', '-c', config, '--jwks', wrong);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/entry 10: unknown key/);

    writeFileSync(wrong, 'not json');
    expect((await port('verify', '-c', config, '--jwks', wrong)).code).toBe(2);
  });

  it('exit 2 for a missing or invalid config, printing the config error', async () => {
    const missing = await port('verify', '-c', join(tmp.dir, 'nope.yaml'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no such file');

    writeFileSync(config, 'server: {public_url: "http://127.0.0.1:1"}\nstore: {sqlite: ./port.db}\npolicies: ./policies\n');
    const invalid = await port('verify', '-c', config);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('buildkite');
  });

  it('exit 2, and no new database, when store.sqlite points nowhere', async () => {
    const elsewhere = writeConfig(join(tmp.dir, 'other'));
    const r = await port('verify', '-c', elsewhere);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('does not exist');
    expect(existsSync(join(tmp.dir, 'other', 'port.db'))).toBe(false);
  });

  it('export writes JSON lines to stdout or --out, honouring --since/--until', async () => {
    const all = await port('export', '-c', config);
    expect(all.code).toBe(0);
    expect(all.stdout.trimEnd().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)).toHaveLength(55);

    const file = join(tmp.dir, 'out.jsonl');
    const some = await port('export', '-c', config, '--out', file, '--since', '2025-01-01T00:00:10Z', '--until', '2025-01-01T00:00:12Z');
    expect(some.code).toBe(0);
    expect(some.stderr).toContain('wrote 2 decisions');
    expect(readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([10, 11]);

    expect((await port('export', '-c', config, '--since', 'yesterday')).code).toBe(2);
    const unwritable = await port('export', '-c', config, '--out', join(tmp.dir, 'no', 'such', 'dir', 'x.jsonl'));
    expect(unwritable.code).toBe(1);
    expect(unwritable.stderr).toContain('cannot write');
  });

  it('tail --no-follow prints the last N', async () => {
    const r = await port('tail', '-c', config, '-n', '2', '--no-follow');
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(2);
    expect(r.stdout).toContain('Port::Job::"job-55"');
    const json = await port('tail', '-c', config, '-n', '1', '--no-follow', '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ seq: 55 });
    expect((await port('tail', '-c', config, '-n', 'lots', '--no-follow')).code).toBe(2);
  });
});

// The real binary, once src/cli/main.ts is compiled to dist/ — and only when dist/ is
// newer than these sources, so a stale build does not fail (or pass) for the wrong reason.
const bin = resolve('bin/port.js');
function builtAndFresh(): boolean {
  const pairs = [
    ['dist/cli/main.js', 'src/cli/main.ts'],
    ['dist/cli/audit-commands.js', 'src/cli/audit-commands.ts'],
    ['dist/audit/verify.js', 'src/audit/verify.ts'],
    ['dist/audit/checkpoint-anchor.js', 'src/audit/checkpoint-anchor.ts'],
  ];
  return pairs.every(([built, source]) => existsSync(built!) && existsSync(source!) && statSync(built!).mtimeMs >= statSync(source!).mtimeMs);
}
describe.skipIf(!builtAndFresh())('port audit verify (spawned binary)', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('exits 0 on an intact log and 1 naming the first bad entry', async () => {
    const config = writeConfig(tmp.dir);
    const dbPath = join(tmp.dir, 'port.db');
    await buildLog(dbPath, 25, 10);
    const ok = spawnSync(process.execPath, [bin, 'audit', 'verify', '-c', config], { encoding: 'utf8' });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);

    const db = raw(dbPath);
    db.prepare('DELETE FROM decisions WHERE seq = 7').run();
    db.close();
    const bad = spawnSync(process.execPath, [bin, 'audit', 'verify', '-c', config], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('entry 7: removed');
  });

  it('checkpoints export, then verify --anchor: exit 1 once the tail is cut back, checkpoints and all', async () => {
    const config = writeConfig(tmp.dir);
    const dbPath = join(tmp.dir, 'port.db');
    await buildLog(dbPath, 25, 10);
    const anchor = join(tmp.dir, 'anchor.jsonl');
    const exported = spawnSync(process.execPath, [bin, 'audit', 'checkpoints', 'export', '-c', config, '--out', anchor], { encoding: 'utf8' });
    expect(exported.status).toBe(0);
    expect(readFileSync(anchor, 'utf8').trimEnd().split('\n')).toHaveLength(2);
    const db = raw(dbPath);
    db.prepare('DELETE FROM decisions WHERE seq > 10').run();
    db.prepare('DELETE FROM checkpoints WHERE seq > 10').run();
    db.close();
    expect(spawnSync(process.execPath, [bin, 'audit', 'verify', '-c', config], { encoding: 'utf8' }).status).toBe(0);
    const bad = spawnSync(process.execPath, [bin, 'audit', 'verify', '-c', config, '--anchor', anchor], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^port audit verify: FAILED: anchored checkpoint 2: missing \(it covers entries up to 20/);
  });

  it('exits 2 on a config error', () => {
    const r = spawnSync(process.execPath, [bin, 'audit', 'verify', '-c', join(tmp.dir, 'missing.yaml')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
  });
});
