CREATE DATABASE app;
CREATE TABLE t1 (a int);
CREATE TABLE only_main (x int);
INSERT INTO t1 VALUES (1);
\c app
CREATE TABLE t1 (b text);
CREATE TABLE only_app (y int);
INSERT INTO t1 VALUES ('app');
\dt
SELECT current_database(), * FROM t1;
\c gnomon
\dt
SELECT current_database(), * FROM t1;
SELECT relname FROM pg_class WHERE relname LIKE 'only%' ORDER BY 1;
DROP DATABASE app;
SELECT count(*) FROM pg_database WHERE datname = 'app';
