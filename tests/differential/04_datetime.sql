-- Dates and times: extract/date_part, date_trunc, to_char, make_date, date arithmetic.
-- Known differences kept out:
-- * extract(julian from timestamp '2020-01-01') is 2458850 followed by 28 zero decimals in
--   PostgreSQL; Gnomon's numeric holds 28 significant digits, so the scale shrinks.
SELECT extract(year from date '2020-01-01'), extract(month from date '2020-08-15'), extract(day from date '2020-02-29'), extract(quarter from date '2020-08-01');
SELECT extract(dow from date '2020-01-05'), extract(isodow from date '2020-01-05'), extract(doy from date '2020-12-31'), extract(week from date '2020-01-01'), extract(isoyear from date '2021-01-01'), extract(week from date '2021-01-03');
SELECT extract(century from date '2000-01-01'), extract(century from date '2001-01-01'), extract(millennium from date '2001-01-01'), extract(millennium from date '2000-12-31'), extract(decade from date '2020-01-01');
SELECT extract(epoch from date '2020-01-01'), extract(julian from date '2020-01-01');
SELECT extract(second from timestamp '2020-01-01 12:34:56.789'), extract(epoch from timestamp '2020-01-01 12:34:56.789'), extract(milliseconds from timestamp '2020-01-01 12:34:56.789'), extract(microseconds from timestamp '2020-01-01 12:34:56.789');
SELECT extract(hour from timestamp '2020-01-01 12:34:56'), extract(minute from timestamp '2020-01-01 12:34:56'), extract(second from timestamp '2020-01-01 12:34:56');
SELECT extract(julian from timestamp '2020-01-01 12:00'), extract(epoch from timestamptz '2020-01-01 12:34:56.789+02');
SELECT extract(timezone from timestamptz '2020-01-01 00:00+00'), extract(timezone_hour from timestamptz '2020-01-01 00:00+00');
SELECT extract(year from at), extract(month from at), extract(day from at), extract(hour from at), extract(second from at), extract(dow from at), extract(epoch from at) FROM ev ORDER BY id;
SELECT extract(year from at_tz), extract(doy from at_tz), extract(epoch from at_tz), extract(week from at_tz) FROM ev ORDER BY id;
SELECT extract(year from hired), extract(month from hired), extract(dow from hired), extract(epoch from hired) FROM emp ORDER BY id;
SELECT date_part('year', timestamp '2020-01-01 12:34:56.789'), date_part('second', timestamp '2020-01-01 12:34:56.789'), date_part('hour', date '2020-01-01'), date_part('epoch', timestamp '2020-01-01 12:34:56.789'), date_part('day', hired) FROM emp WHERE id = 1;
SELECT date_part('month', at), date_part('doy', at_tz), date_part('epoch', at_tz) FROM ev ORDER BY id;
SELECT date_trunc('month', date '2020-02-15'), date_trunc('year', timestamp '2020-05-06 07:08:09');
SELECT date_trunc('week', timestamp '2020-01-01 13:14:15.5'), date_trunc('quarter', timestamptz '2020-05-01 13:14:15.5+00'), date_trunc('millennium', timestamp '2020-05-01'), date_trunc('century', timestamp '2000-05-01'), date_trunc('decade', timestamp '2019-05-01');
SELECT date_trunc('milliseconds', timestamp '2019-05-01 00:00:01.123456'), date_trunc('microseconds', timestamp '2019-05-01 00:00:01.123456'), date_trunc('second', timestamp '2019-05-01 00:00:01.9'), date_trunc('minute', timestamp '2019-05-01 10:11:12'), date_trunc('hour', timestamp '2019-05-01 10:11:12'), date_trunc('day', timestamp '2019-05-01 10:11:12');
SELECT date_trunc('day', at), date_trunc('hour', at_tz), date_trunc('month', hired) FROM ev JOIN emp USING (id) ORDER BY id;
SELECT date_trunc('month', hired), count(*) FROM emp GROUP BY 1 ORDER BY 1;
SELECT to_char(timestamp '2020-03-04 05:06:07.891', 'YYYY-MM-DD HH24:MI:SS'), to_char(date '2020-03-04', 'DD/MM/YYYY'), to_char(timestamp '2020-03-04 05:06:07.891', 'MS US FMMM FMDD YY YYY');
SELECT to_char(timestamptz '2020-03-04 15:06:07+00', 'HH12:MI AM Mon Month Day Dy DDD D Q WW IW');
SELECT to_char(timestamp '2020-03-04 00:06:07', 'HH HH12 am A.M. pm Y,YYY IYYY ID J "lit" CC FMDay FMMonth dd');
SELECT to_char(timestamptz '2020-03-04 13:06:07', 'TZ tz HH24th DDth Mon'), to_char(timestamp '2020-03-01', 'DDTH DDth FMDDth'), to_char(timestamp '2020-03-02', 'DDTH'), to_char(timestamp '2020-03-03', 'DDTH'), to_char(timestamp '2020-03-11', 'DDTH');
SELECT to_char(at, 'YYYY-MM-DD"T"HH24:MI:SS.US'), to_char(at_tz, 'Dy, DD Mon YYYY HH24:MI:SS TZ'), to_char(at, 'FMMonth FMDD, YYYY') FROM ev ORDER BY id;
SELECT to_char(hired, 'YYYY/MM/DD'), to_char(hired, 'Month') || '|' FROM emp ORDER BY id;
SELECT to_char(5, 'FM999'), to_char(1234.5, '9,999.99'), to_char(-1234.5, '9,999.99'), to_char(123, '00000'), to_char(0.5, '0.99'), to_char(0.5, '9.99'), to_char(12345678, '9,999');
SELECT to_char(-5, 'S999'), to_char(5, 'S999'), to_char(1234.567, 'FM9999.00'), to_char(1234.5, 'FM9,999.99'), to_char(42, '999PR'), to_char(-42, '999PR'), to_char(-42, 'FM999MI'), to_char(42, '999MI');
SELECT to_char(123.456, '99999D99'), to_char(0, '999'), to_char(0, 'FM990.00'), to_char(-0.5, '999.9'), to_char(999.999, '999.99'), to_char(5, '999th'), to_char(100, '9G999'), to_char(1234, '9,999,999');
SELECT to_char(12.3, 'FM99.9999'), to_char(-1, 'S0000'), to_char(1, '0000S'), to_char(-12, '9999'), to_char(12, '0099'), to_char(1.005, '9.99'), to_char(1234, 'FM0000.00');
SELECT to_char(3.14159::float8, '999.999'), to_char(123::int, '9,999'), to_char(-123::bigint, 'FM9999'), to_char(0.1::float4, '0.99'), to_char(2::int2, '99');
SELECT to_char(salary, 'FM99,999.00'), to_char(salary, '99999.9'), to_char(rating, '9.99'), to_char(id, '000') FROM emp ORDER BY id;
SELECT make_date(2020, 2, 29), make_date(1999, 12, 31), make_date(2024, 1, 1) - make_date(2023, 1, 1);
SELECT hired + 30, hired - 1, date '2021-01-01' - hired FROM emp ORDER BY id;
SELECT hired FROM emp WHERE hired > date '2018-01-01' ORDER BY hired;
SELECT at FROM ev WHERE at < timestamp '2020-06-01' ORDER BY at;
SELECT at::date, at_tz::date, hired::timestamp, hired::timestamptz FROM ev JOIN emp USING (id) ORDER BY id;
SELECT max(at), min(at_tz), max(hired) FROM ev, emp;
