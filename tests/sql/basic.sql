-- A psql session against gnomon: DDL, DML, queries, transactions.
-- Expected output (basic.out) was produced by PostgreSQL 15 running this same file.
DROP TABLE IF EXISTS accounts;
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance bigint, active boolean);
INSERT INTO accounts VALUES (1, 'ada', 100, true), (2, 'brian', 250, false), (3, 'cleo', NULL, true);
SELECT * FROM accounts ORDER BY id;
SELECT owner, balance FROM accounts WHERE active ORDER BY owner;
UPDATE accounts SET balance = balance + 10 WHERE id <= 2;
DELETE FROM accounts WHERE id = 3;
SELECT count(*), sum(balance) FROM accounts;
BEGIN;
INSERT INTO accounts VALUES (4, 'dora', 7, true);
SELECT count(*) FROM accounts;
ROLLBACK;
SELECT count(*) FROM accounts;
BEGIN;
UPDATE accounts SET owner = 'ADA' WHERE id = 1;
COMMIT;
SELECT id, owner, balance * 2 AS doubled FROM accounts ORDER BY id DESC;
SELECT 1 + 2 AS three, 'x' || 'y' AS xy, NULL IS NULL AS isnull;
DROP TABLE accounts;
