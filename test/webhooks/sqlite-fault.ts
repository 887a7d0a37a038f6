import Database from 'better-sqlite3';

/**
 * Makes writes to `table` of the SQLite store at `path` fail for real — SQLite itself
 * refuses them (a trigger added through a second connection, as another process or a
 * broken disk would fail Port's write) — until the returned function is called.
 */
export function failWrites(path: string, table: string, ops: readonly ('INSERT' | 'UPDATE')[] = ['INSERT']): () => void {
  const db = new Database(path);
  db.pragma('busy_timeout = 5000');
  const names = ops.map((op) => `port_test_fail_${table}_${op.toLowerCase()}`);
  ops.forEach((op, i) => db.exec(`CREATE TRIGGER ${names[i]} BEFORE ${op} ON ${table} BEGIN SELECT RAISE(ABORT, 'simulated write failure (test)'); END;`));
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    for (const name of names) db.exec(`DROP TRIGGER IF EXISTS ${name}`);
    db.close();
  };
}
