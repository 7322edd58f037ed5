"""psycopg 3 against a running Gnomon: what a Python application does on day one.

Usage: python3 psycopg_smoke.py PORT. Exits non-zero (with a traceback) on any mismatch.
"""
import datetime
import decimal
import sys

import psycopg
from psycopg import errors

port = int(sys.argv[1])
conninfo = f"host=127.0.0.1 port={port} user=gnomon dbname=gnomon connect_timeout=30"

with psycopg.connect(conninfo) as conn:
    assert conn.info.server_version >= 150000, conn.info.server_version
    with conn.cursor() as cur:
        cur.execute("select version()")
        assert cur.fetchone()[0].startswith("PostgreSQL 15."), "version() must look like PG 15"
        cur.execute(
            "create table items (id bigint primary key, name text not null, price numeric(10,2),"
            " qty smallint, active boolean, added date, at timestamptz, blob bytea)"
        )
    conn.commit()

    # Parameters: psycopg 3 sends small ints as binary int2, others as int8/numeric/text.
    rows = [
        (i, f"item {i}", decimal.Decimal(f"{i}.25"), i % 7, i % 2 == 0,
         datetime.date(2024, 1, 1 + i % 28),
         datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), bytes([i % 256, 0, 255]))
        for i in range(1, 201)
    ]
    with conn.cursor() as cur:
        cur.executemany("insert into items values (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
    conn.commit()

    with conn.cursor() as cur:
        # Repeated execution crosses psycopg's prepare threshold (server-side prepared statements).
        for i in range(1, 11):
            cur.execute("select name, price, qty, active, added, at, blob from items where id = %s", (i,))
            name, price, qty, active, added, at, blob = cur.fetchone()
            assert name == f"item {i}"
            assert price == decimal.Decimal(f"{i}.25")
            assert qty == i % 7 and active == (i % 2 == 0)
            assert added == datetime.date(2024, 1, 1 + i % 28)
            assert at == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
            assert bytes(blob) == bytes([i % 256, 0, 255])
        cur.execute("select count(*), sum(price) from items where id > %s", (100,))
        assert cur.fetchone() == (100, decimal.Decimal("15075.00"))

    # COPY from Python, then query it back.
    with conn.cursor() as cur:
        with cur.copy("copy items (id, name, qty) from stdin") as copy:
            for i in range(1000, 1100):
                copy.write_row((i, f"copied {i}", 1))
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("select count(*) from items where name like 'copied%%'")
        assert cur.fetchone()[0] == 100

    # Errors arrive as the right exception class; the connection stays usable.
    with conn.cursor() as cur:
        try:
            cur.execute("insert into items (id, name) values (1, 'dup')")
            raise AssertionError("duplicate key accepted")
        except errors.UniqueViolation:
            conn.rollback()
        try:
            cur.execute("select 1/0")
            raise AssertionError("division by zero accepted")
        except errors.DivisionByZero:
            conn.rollback()
        cur.execute("select count(*) from items")
        assert cur.fetchone()[0] == 300

    # Transactions: rollback discards, commit keeps.
    with conn.cursor() as cur:
        cur.execute("update items set qty = 0 where id <= 10")
        conn.rollback()
        cur.execute("select count(*) from items where qty = 0 and id <= 10")
        assert cur.fetchone()[0] == 1  # only id 7 had qty 0 to begin with
    with conn.transaction():
        conn.execute("delete from items where id > 1000")
    assert conn.execute("select count(*) from items").fetchone()[0] == 201

    # Arrays: Python lists are sent as arrays (text and binary) and come back as lists.
    conn.execute("drop table if exists py_arrays")
    conn.execute("create table py_arrays (id int primary key, tags text[], nums int[])")
    conn.execute(
        "insert into py_arrays values (%s, %s, %s), (%s, %s, %s)",
        (1, ["a b", None, "NULL", ""], [1, 2, 3], 2, [], [40000, -1]),
    )
    conn.commit()
    rows = conn.execute(
        "select id, tags, nums from py_arrays where id = any(%s) order by id", ([2, 1, 9],)
    ).fetchall()
    assert rows == [(1, ["a b", None, "NULL", ""], [1, 2, 3]), (2, [], [40000, -1])], rows
    with conn.cursor(binary=True) as cur:
        cur.execute("select nums, tags from py_arrays where id = any(%b)", ([1],))
        assert cur.fetchone() == ([1, 2, 3], ["a b", None, "NULL", ""])
        cur.execute("select array[array[1,2],array[3,4]], array_agg(id order by id desc) from py_arrays")
        assert cur.fetchone() == ([[1, 2], [3, 4]], [2, 1])
    try:
        conn.execute("select '{1,2'::int[]")
        raise AssertionError("malformed array accepted")
    except errors.InvalidTextRepresentation:
        conn.rollback()

print("psycopg smoke: ok")
