-- Intervals: input and output (IntervalStyle postgres), arithmetic with timestamps and dates,
-- comparison, age, extract.
SELECT interval '1 day', interval '2 days 3 hours', interval '1 year 2 months', interval '-1 day', interval '1 day -1 hour';
SELECT interval '-1 day +1 hour', interval '1.5 hours', interval '1.5 days', interval '1.5 months', interval '1.5 years', interval '90 minutes';
SELECT interval '0', interval '1 week', interval '3 days 04:05:06.5', interval '10 minutes ago', interval '@ 1 day', interval '1 year 2 mons 3 days 04:05:06.789';
SELECT '1 day'::interval, CAST('2 hours' AS interval), interval '5' day, interval '30' minute, interval '100';
SELECT timestamp '2020-01-31' + interval '1 month', timestamp '2020-03-31' - interval '1 month', timestamp '2020-01-01 10:00' + interval '1 day 2 hours';
SELECT timestamptz '2020-01-01 00:00+00' + interval '36 hours', date '2020-01-31' + interval '1 month', date '2020-03-01' - interval '1 day', interval '1 day' + date '2020-01-01';
SELECT timestamp '2020-01-02 01:00' - timestamp '2020-01-01', timestamp '2020-01-01' - timestamp '2020-01-02 01:00', timestamp '2021-01-01' - timestamp '2020-01-01';
SELECT timestamp '2020-01-01' + '1 day', timestamp '2020-03-01' - '2020-02-01';
SELECT interval '1 day' + interval '1 hour', interval '1 day' - interval '1 hour', -interval '1 day', interval '1 day' * 1.5, interval '1 mon' / 3, 2 * interval '1 hour', interval '1 hour' * 0.1;
SELECT interval '1 day' = interval '24 hours', interval '1 mon' = interval '30 days', interval '1 day' < interval '25 hours', interval '1 year' > interval '360 days';
SELECT at - at_tz, at + interval '1 year', at_tz - interval '1 minute' FROM ev ORDER BY id;
SELECT name, hired + interval '6 months' FROM emp ORDER BY id;
SELECT id FROM ev WHERE at > timestamp '2021-01-01' - interval '1 year' ORDER BY id;
SELECT max(at) - min(at) FROM ev;
SELECT age(timestamp '2020-03-01', timestamp '2019-01-31'), age(timestamp '2019-01-31', timestamp '2020-03-01'), age(timestamp '2020-01-01 10:00', timestamp '2020-01-01 12:30');
SELECT age(timestamptz '2024-02-29 00:00+00', timestamptz '2020-02-29 12:00+00'), age(date '2020-01-01', date '2019-12-31');
SELECT extract(epoch from interval '1 day 1 hour'), extract(hour from interval '25 hours'), extract(day from interval '3 days 4 hours'), extract(year from interval '2 years 3 months'), extract(month from interval '2 years 3 months');
SELECT extract(minute from interval '01:02:03.5'), extract(second from interval '01:02:03.5'), extract(epoch from interval '1 year'), extract(epoch from interval '1 mon'), date_part('hour', interval '5 hours');
SELECT interval '1 day' IS NULL, NULL::interval, interval '1 hour' IN (interval '60 minutes');
SELECT 'abc'::interval;
SELECT interval '1 fortnight';
SELECT interval '1 day' + 1;
