-- COPY in text and CSV, FROM STDIN and TO STDOUT, and psql's \copy.
DROP TABLE IF EXISTS items;
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(8,2), note text);
\copy items from 'tests/sql/copy_items.csv' with (format csv, header)
COPY items (id, name, price) FROM STDIN;
10	ten	10.5
11	\N	0
12	tab\there	7
\.
SELECT * FROM items ORDER BY id;
COPY items TO STDOUT;
COPY items TO STDOUT WITH (FORMAT csv, HEADER);
COPY (SELECT id, name FROM items WHERE id < 3) TO STDOUT (DELIMITER '|');
COPY items (id, note) TO STDOUT WITH CSV NULL 'NULL';
\copy items to stdout csv
\set ON_ERROR_STOP 0
\copy items from 'tests/sql/copy_bad.csv' csv
\set ON_ERROR_STOP 1
SELECT count(*) FROM items;
