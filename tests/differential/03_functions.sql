-- Math and string functions and operators.
-- Known differences kept out:
-- * upper/lower/initcap of non-ASCII letters: Gnomon maps all of Unicode (upper('straße') is
--   'STRASSE'); this test's cluster runs in the C locale, which maps ASCII only.
SELECT floor(1.5), floor(-1.5), floor(5), floor(2.5::float8), floor(1.50), floor(-0.5::float4);
SELECT ceil(1.2), ceil(-1.2), ceiling(1.00), ceil(7), ceil(1.2::float8);
SELECT trunc(1.789), trunc(-1.789), trunc(1.789, 2), trunc(1.5, 3), trunc(12.345, -1), trunc(5), trunc(-2.5::float8);
SELECT round(1.5), round(2.5), round(-2.5), round(1.234, 2), round(1.5, 3), round(12.345, -1), round(1250, -2), round(2.5::float8), round(3.5::float8);
SELECT abs(-5), abs(-5.5), abs(-2.5::float8), abs(3::int2), abs(-7::int8);
SELECT sign(-3), sign(0.0), sign(2.5), sign(-2::float8), sign(0::float8);
SELECT 2 ^ 3, 2.0 ^ 3, 2 ^ 0.5, 2.5 ^ 2, 1.5 ^ 2.5, 4 ^ -1, 2.0 ^ -2, 0 ^ 0, 0.0 ^ 0, 9 ^ 0.5;
SELECT power(2, 10), power(2.0, 10), power(2, 0.5::numeric), power(1.1, 2), pow(3, 2);
SELECT (-2) ^ 3, (-2.0) ^ 3, (-8) ^ 2;
SELECT sqrt(2), sqrt(2::numeric), sqrt(16), sqrt(4.0), sqrt(0.25), sqrt(100.00), sqrt(1e6::numeric), sqrt(0.0);
SELECT exp(0), exp(1), exp(1.0), exp(2.5), exp(-1.0), exp(0.0);
SELECT ln(1), ln(2.0), ln(10.0), ln(0.5), ln(100), ln(1.05);
SELECT log(100), log(1000.0), log(100.0), log(2.0, 8.0), log(2, 1024), log(10, 0.001), log(0.5);
SELECT mod(7, 3), mod(-7, 3), mod(7, -3), mod(7.5, 2), mod(-7.5, 2), mod(10::int8, 3), mod(5::int2, 2::int2), mod(10.25, 0.5);
SELECT div(7, 2), div(-7, 2), div(7.5, 2), div(9.9, 3.3);
SELECT pi(), round(pi()::numeric, 4);
SELECT floor(salary), ceil(salary), round(salary), round(salary, 1), trunc(salary, -2), salary ^ 2 FROM emp WHERE id IN (1, 3) ORDER BY id;
SELECT sqrt(rating), exp(rating), ln(rating), power(rating, 2), sign(rating - 4) FROM emp WHERE rating IS NOT NULL ORDER BY id;
SELECT floor(NULL::numeric), sqrt(NULL::float8), power(NULL, 2), mod(NULL, 3), round(NULL::numeric, 2);
SELECT length('hello'), length(''), char_length('héllo'), character_length('abc'), octet_length('héllo'), length(NULL);
SELECT lower('HeLLo'), upper('HeLLo'), initcap('hello wORLD foo_bar 1abc x-y');
SELECT substring('hello' from 2 for 3), substring('hello' from 0 for 2), substring('hello' from -1), substring('hello' for 2), substring('hello' from 9);
SELECT substr('hello', 2), substr('hello', 2, 1), substr('hello', 0), substr('hello', -3, 5), substr('héllo', 2, 2), substring('hello', 3), substring('hello', 2, 2);
SELECT position('l' in 'hello'), position('z' in 'hello'), position('' in 'abc'), strpos('hello', 'llo'), strpos('héllo', 'l');
SELECT trim('  x  '), trim(both 'x' from 'xxaxx'), trim(leading 'x' from 'xxaxx'), trim(trailing 'x' from 'xxaxx'), trim(leading from '  a  ') || '|', trim(trailing from '  a  ') || '|';
SELECT btrim('xyaxy', 'xy'), btrim('  a  '), ltrim('  a  ') || '|', ltrim('xxa', 'x'), rtrim('a  ') || '|', rtrim('axx', 'x'), trim(both from '  z  ');
SELECT replace('abcabc', 'b', 'X'), replace('abc', '', 'X'), replace('aaa', 'a', ''), replace('abc', 'z', 'y');
SELECT concat('a', 1, NULL, 2.5, true), concat(), concat(NULL), concat_ws('-', 'a', NULL, 'b', 3), concat_ws(NULL, 'a'), concat_ws(',', NULL);
SELECT left('hello', 2), left('hello', -2), left('hello', 0), left('hi', 10), right('hello', 2), right('hello', -2), right('hi', 10);
SELECT lpad('hi', 5), lpad('hi', 5, 'xy'), lpad('hello', 2), rpad('hi', 5, 'xy'), rpad('hello', 2), lpad('hi', -1), lpad('hi', 5, ''), rpad('hi', 4) || '|';
SELECT repeat('ab', 3), repeat('ab', 0), repeat('ab', -1), reverse('abc'), reverse(''), reverse('héllo');
SELECT split_part('a,b,c', ',', 2), split_part('a,b,c', ',', 5), split_part('a,b,c', ',', -1), split_part('a,b,c', ',', -3), split_part('a,b,c', ',', -4), split_part('a,b,c', '', 1), split_part('a::b', '::', 2);
SELECT starts_with('hello', 'he'), starts_with('hello', 'lo'), starts_with('', ''), ascii('A'), ascii(''), ascii('é'), chr(65), chr(233);
SELECT upper(name), length(name), substr(name, 1, 3), left(name, 1) || '.', lpad(name, 6, '*'), reverse(name) FROM emp ORDER BY id;
SELECT trim(note), length(note), upper(code), length(code), code = 'NY', replace(note, ' ', '_') FROM ev ORDER BY id;
SELECT concat(name, '/', dept, '/', salary), concat_ws(' ', name, hired, active, rating) FROM emp ORDER BY id;
SELECT name || ' in ' || coalesce(dept, '?') FROM emp ORDER BY id;
SELECT split_part(name, ' ', 1), position(' ' in name), initcap(name) FROM emp ORDER BY id;
SELECT lower(NULL), substring(NULL::text from 1), replace('a', NULL, 'b'), lpad('a', NULL), left(NULL, 1), repeat('a', NULL);
