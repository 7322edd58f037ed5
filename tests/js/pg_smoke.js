// node-postgres (pg) against a Gnomon server: parameters (extended protocol), prepared
// statements, transactions, SQLSTATE errors. Usage: node pg_smoke.js PORT (NODE_PATH has pg).
const { Client } = require('pg');
const assert = require('assert');

(async () => {
  const port = parseInt(process.argv[2], 10);
  const c = new Client({ host: '127.0.0.1', port, user: 'gnomon', database: 'gnomon' });
  await c.connect();
  await c.query('DROP TABLE IF EXISTS js');
  await c.query('CREATE TABLE js (id serial PRIMARY KEY, name text NOT NULL, n bigint)');
  for (const [name, n] of [['a', 1], ['b', 2], ['c', 3]]) {
    await c.query({ name: 'ins', text: 'INSERT INTO js (name, n) VALUES ($1, $2)', values: [name, n] });
  }
  const r = await c.query('SELECT id, name, n FROM js WHERE n > $1 ORDER BY id', [1]);
  assert.deepStrictEqual(r.rows.map((x) => [x.id, x.name, x.n]), [[2, 'b', '2'], [3, 'c', '3']]);
  assert.strictEqual(r.fields[0].dataTypeID, 23);
  await c.query('BEGIN');
  await c.query("INSERT INTO js (name) VALUES ('rolled back')");
  await c.query('ROLLBACK');
  try {
    await c.query('INSERT INTO js (name) VALUES (NULL)');
    assert.fail('NOT NULL not enforced');
  } catch (e) {
    assert.strictEqual(e.code, '23502');
  }
  const cnt = await c.query('SELECT count(*) AS n FROM js');
  assert.strictEqual(cnt.rows[0].n, '3');
  await c.end();
  console.log('node pg ok');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
