-- Schema and data shared by the other corpus files (they run in file-name order, in one
-- session on each server).
CREATE TABLE dept (name text PRIMARY KEY, floor int, budget bigint);
CREATE TABLE emp (id int PRIMARY KEY, name text NOT NULL, dept text, salary numeric(10,2),
                  hired date, boss int, active boolean, rating float8);
CREATE TABLE ev (id int PRIMARY KEY, at timestamp, at_tz timestamptz, note varchar(20),
                 code char(4), qty smallint, price real);
INSERT INTO dept VALUES ('eng', 3, 1000000), ('ops', 1, 250000), ('sales', 2, NULL),
                        ('legal', NULL, 50000);
INSERT INTO emp VALUES
  (1, 'Ada', 'eng', 9500.50, '2015-03-01', NULL, true, 4.5),
  (2, 'Brian', 'eng', 7200.00, '2018-07-15', 1, true, 3.25),
  (3, 'Chen', 'ops', 5100.75, '2019-11-30', 1, false, NULL),
  (4, 'Dana', 'sales', 6000.00, '2020-02-29', 2, true, 4.0),
  (5, 'Eve', NULL, NULL, NULL, NULL, NULL, NULL),
  (6, 'frank', 'ops', 4800.25, '2021-01-04', 3, true, 2.75),
  (7, 'Gita', 'sales', 6000.00, '2016-12-31', 2, false, 3.5),
  (8, 'hal 9000', 'eng', 12000.99, '2010-06-01', NULL, true, 5.0);
INSERT INTO ev VALUES
  (1, '2020-01-01 00:00:00', '2020-01-01 00:00:00+00', 'new year', 'NY', 1, 1.5),
  (2, '2020-02-29 12:34:56.789', '2020-02-29 12:34:56.789+00', 'leap', 'LP', 2, 2.25),
  (3, '2021-12-31 23:59:59.999999', '2021-12-31 23:59:59.999999+00', 'last', 'L', 3, 0.1),
  (4, '1999-07-04 08:09:10', '1999-07-04 08:09:10+00', '  padded  ', 'PAD ', -4, -3.75),
  (5, NULL, NULL, NULL, NULL, NULL, NULL),
  (6, '2024-09-15 17:45:00.5', '2024-09-15 17:45:00.5+00', 'Mixed Case', 'mC', 100, 1e10);
SELECT count(*) FROM emp;
SELECT count(*) FROM ev;
