-- psql's \d family against a small schema; describe.out is PostgreSQL 15's output of this
-- script (see tests/psql.rs, describe_meta_commands_match_postgres, for how to regenerate it).
CREATE TABLE items (
    id integer PRIMARY KEY,
    name varchar(40) NOT NULL,
    sku text UNIQUE,
    qty bigint DEFAULT 1 CHECK (qty > 0),
    price numeric(10,2),
    note text DEFAULT 'none',
    added timestamp with time zone DEFAULT now()
);
CREATE INDEX items_name_idx ON items (name);
CREATE TABLE tags (tag_id serial PRIMARY KEY, label char(8));
CREATE SEQUENCE order_no;
CREATE SCHEMA archive;
\d
\dt
\d items
\d+ items
\d tags
\di
\l gnomon
\dn
\du
-- The operators, casts and functions those queries rely on, used directly.
SELECT relname FROM pg_catalog.pg_class WHERE relname ~ '^items' AND relname !~ 'idx$' ORDER BY 1;
SELECT relname FROM pg_class WHERE relname OPERATOR(pg_catalog.~) '^(tags)$' COLLATE pg_catalog.default;
SELECT 'items'::regclass::oid = (SELECT oid FROM pg_class WHERE relname = 'items') AS same_oid,
       'items_pkey'::regclass::text AS index_name, c.oid::regclass AS by_oid
  FROM pg_class c WHERE c.relname = 'tags';
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef
  FROM pg_attribute a WHERE a.attrelid = 'items'::regclass AND a.attnum > 0 ORDER BY a.attnum;
SELECT conname, contype, pg_get_constraintdef(oid, true) FROM pg_constraint
 WHERE conrelid = 'items'::pg_catalog.regclass ORDER BY conname;
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'items'::regclass ORDER BY 1;
SELECT pg_get_serial_sequence('tags', 'tag_id');
SELECT array_to_string(ARRAY['a', 'b c', NULL], ',', '*') AS joined,
       'r' = ANY (ARRAY['r', 'p']) AS any_hit, 'x' = ANY ('{r,p}') AS any_miss,
       ARRAY(SELECT relname FROM pg_class WHERE relkind = 'r'
                AND relnamespace = 'public'::regnamespace ORDER BY 1) AS tables;
SELECT string_agg(attname, ', ') FROM pg_attribute WHERE attrelid = 'tags'::regclass AND attnum > 0;
-- A partitioned table and its partitions.
CREATE TABLE m (k int PRIMARY KEY, v text) PARTITION BY RANGE (k);
CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (MINVALUE) TO (10);
CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10) TO (20);
\d m
\d+ m
\d m1
-- Foreign keys: \d shows "Foreign-key constraints" on the referencing table and
-- "Referenced by" on the referenced one (a self-reference shows both).
CREATE TABLE parent (id int PRIMARY KEY, code text UNIQUE, a int, b int, UNIQUE (a, b));
CREATE TABLE child (
    id int PRIMARY KEY,
    parent_id int REFERENCES parent (id) ON DELETE CASCADE,
    code text,
    x int,
    y int,
    CONSTRAINT child_code_fk FOREIGN KEY (code) REFERENCES parent (code) ON UPDATE SET NULL,
    FOREIGN KEY (x, y) REFERENCES parent (a, b) ON DELETE SET DEFAULT ON UPDATE RESTRICT
);
CREATE TABLE node (id int PRIMARY KEY, up int REFERENCES node);
\d parent
\d child
\d+ child
\d node
SELECT relname, relhastriggers FROM pg_class
 WHERE relname IN ('items', 'parent', 'child', 'node') ORDER BY 1;
-- Generated columns: \d shows their expressions.
CREATE TABLE gen (a int, name text, twice int GENERATED ALWAYS AS (a * 2) STORED,
                  up text GENERATED ALWAYS AS (upper(name)) STORED NOT NULL);
\d gen
