"""psycopg2 against a Gnomon server: parameters, executemany, server-side types, transactions,
SQLSTATE errors, SERIAL and ON CONFLICT. Usage: psycopg2_smoke.py PORT"""

import sys
from decimal import Decimal

import psycopg2
import psycopg2.errors

port = int(sys.argv[1])
conn = psycopg2.connect(host="127.0.0.1", port=port, user="gnomon", dbname="gnomon")
cur = conn.cursor()
cur.execute("DROP TABLE IF EXISTS p2")
cur.execute("CREATE TABLE p2 (id serial PRIMARY KEY, name text UNIQUE, qty int CHECK (qty >= 0), price numeric(8,2))")
conn.commit()

cur.executemany("INSERT INTO p2 (name, qty, price) VALUES (%s, %s, %s)",
                [("a", 1, Decimal("1.50")), ("b", 2, Decimal("2.25")), ("c's", 3, None)])
conn.commit()
cur.execute("SELECT id, name, qty, price FROM p2 WHERE qty >= %s ORDER BY id", (2,))
rows = cur.fetchall()
assert rows == [(2, "b", 2, Decimal("2.25")), (3, "c's", 3, None)], rows

# Errors carry their SQLSTATE and leave the connection usable after rollback.
try:
    cur.execute("INSERT INTO p2 (name, qty) VALUES ('a', 5)")
    raise AssertionError("duplicate accepted")
except psycopg2.errors.UniqueViolation as e:
    assert e.pgcode == "23505", e.pgcode
conn.rollback()
try:
    cur.execute("INSERT INTO p2 (name, qty) VALUES ('z', -1)")
    raise AssertionError("check not enforced")
except psycopg2.errors.CheckViolation:
    pass
conn.rollback()

# A transaction rolled back leaves nothing; one committed is seen by another connection.
cur.execute("INSERT INTO p2 (name, qty) VALUES ('gone', 1)")
conn.rollback()
cur.execute("INSERT INTO p2 (name, qty) VALUES ('d', 4) ON CONFLICT (name) DO UPDATE SET qty = EXCLUDED.qty RETURNING id")
new_id = cur.fetchone()[0]
cur.execute("INSERT INTO p2 (name, qty) VALUES ('a', 9) ON CONFLICT (name) DO UPDATE SET qty = p2.qty + EXCLUDED.qty")
conn.commit()
other = psycopg2.connect(host="127.0.0.1", port=port, user="gnomon", dbname="gnomon")
other.autocommit = True
oc = other.cursor()
oc.execute("SELECT name, qty FROM p2 ORDER BY name")
assert oc.fetchall() == [("a", 10), ("b", 2), ("c's", 3), ("d", 4)]
assert new_id > 3, new_id

# Sequences are reachable from a client too.
oc.execute("SELECT nextval('p2_id_seq') > %s", (new_id,))
assert oc.fetchone()[0] is True
print("psycopg2 ok")
