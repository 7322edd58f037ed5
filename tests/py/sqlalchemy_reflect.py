"""SQLAlchemy 2 reflection against a Gnomon server, over one dialect: inspect().get_columns,
get_pk_constraint, get_foreign_keys, get_indexes, get_unique_constraints, MetaData.reflect
and Table(autoload_with=...) over a schema with a SERIAL primary key, a composite primary
key, a foreign key with ON DELETE CASCADE, a UNIQUE constraint (column and table level),
a plain and a unique index, defaults, NOT NULL, varchar(n), numeric(p,s), timestamps and
an array column. The expected values are what the same calls return against PostgreSQL 15
(checked on a live PG 15 with this script's schema). The reflection queries use
array_agg(... ORDER BY ...), unnest / generate_subscripts over pg_index.indkey in a select
list, pg_opclass, pg_enum, bool_and and json_build_object.

Usage: sqlalchemy_reflect.py PORT DIALECT   (DIALECT: psycopg2 or psycopg)"""

import sys

from sqlalchemy import MetaData, Table, create_engine, inspect, text
from sqlalchemy.dialects.postgresql import ARRAY

port, dialect = int(sys.argv[1]), sys.argv[2]
engine = create_engine(f"postgresql+{dialect}://gnomon@127.0.0.1:{port}/gnomon")
item, order = f"r_item_{dialect}", f"r_order_{dialect}"

with engine.begin() as c:
    c.execute(text(f"DROP TABLE IF EXISTS {order}, {item}"))
    c.execute(text(
        f"CREATE TABLE {item} (id SERIAL PRIMARY KEY, sku varchar(20) NOT NULL UNIQUE, "
        "price numeric(10,2) DEFAULT 0, created timestamp, stamp timestamptz DEFAULT now(), "
        "note text, tags text[])"
    ))
    c.execute(text(
        f"CREATE TABLE {order} (region int NOT NULL, num int NOT NULL, "
        f"item_id int REFERENCES {item}(id) ON DELETE CASCADE, qty int NOT NULL DEFAULT 1, "
        f"PRIMARY KEY (region, num), CONSTRAINT {order}_qty_item UNIQUE (item_id, qty))"
    ))
    c.execute(text(f"CREATE INDEX {order}_qty ON {order} (qty)"))
    c.execute(text(f"CREATE UNIQUE INDEX {order}_item_region ON {order} (item_id, region)"))

insp = inspect(engine)


def columns(table):
    return [
        (c["name"], repr(c["type"]), c["nullable"], c["default"], c["autoincrement"])
        for c in insp.get_columns(table)
    ]


assert columns(item) == [
    ("id", "INTEGER()", False, f"nextval('{item}_id_seq'::regclass)", True),
    ("sku", "VARCHAR(length=20)", False, None, False),
    ("price", "NUMERIC(precision=10, scale=2)", True, "0", False),
    ("created", "TIMESTAMP()", True, None, False),
    ("stamp", "TIMESTAMP(timezone=True)", True, "now()", False),
    ("note", "TEXT()", True, None, False),
    ("tags", "ARRAY(TEXT())", True, None, False),
], columns(item)
assert columns(order) == [
    ("region", "INTEGER()", False, None, False),
    ("num", "INTEGER()", False, None, False),
    ("item_id", "INTEGER()", True, None, False),
    ("qty", "INTEGER()", False, "1", False),
], columns(order)

pk = insp.get_pk_constraint(item)
assert (pk["name"], pk["constrained_columns"]) == (f"{item}_pkey", ["id"]), pk
pk = insp.get_pk_constraint(order)
assert (pk["name"], pk["constrained_columns"]) == (f"{order}_pkey", ["region", "num"]), pk

assert insp.get_foreign_keys(item) == []
fks = insp.get_foreign_keys(order)
assert [
    (f["name"], f["constrained_columns"], f["referred_table"], f["referred_columns"], f["options"])
    for f in fks
] == [(f"{order}_item_id_fkey", ["item_id"], item, ["id"], {"ondelete": "CASCADE"})], fks

indexes = sorted(insp.get_indexes(order), key=lambda i: i["name"])
assert [
    (i["name"], i["unique"], i["column_names"], i.get("duplicates_constraint"), i["dialect_options"])
    for i in indexes
] == [
    (f"{order}_item_region", True, ["item_id", "region"], None, {"postgresql_include": []}),
    (f"{order}_qty", False, ["qty"], None, {"postgresql_include": []}),
    (f"{order}_qty_item", True, ["item_id", "qty"], f"{order}_qty_item", {"postgresql_include": []}),
], indexes
assert [(i["name"], i["column_names"]) for i in insp.get_indexes(item)] == [
    (f"{item}_sku_key", ["sku"])
]

uniques = insp.get_unique_constraints(order)
assert [(u["name"], u["column_names"]) for u in uniques] == [
    (f"{order}_qty_item", ["item_id", "qty"])
], uniques
assert [(u["name"], u["column_names"]) for u in insp.get_unique_constraints(item)] == [
    (f"{item}_sku_key", ["sku"])
]

md = MetaData()
md.reflect(engine, only=[item, order])
assert sorted(md.tables) == sorted([item, order]), sorted(md.tables)
assert isinstance(md.tables[item].c.tags.type, ARRAY)
t = Table(order, MetaData(), autoload_with=engine)
assert [c.name for c in t.columns] == ["region", "num", "item_id", "qty"]
assert [c.name for c in t.primary_key.columns] == ["region", "num"]
assert [fk.target_fullname for fk in t.foreign_keys] == [f"{item}.id"]
assert t.c.qty.server_default is not None and not t.c.qty.nullable
assert sorted(i.name for i in t.indexes) == sorted([f"{order}_item_region", f"{order}_qty"])

with engine.begin() as c:
    c.execute(text(f"DROP TABLE {order}, {item}"))
print(f"sqlalchemy reflection over {dialect}: ok")
