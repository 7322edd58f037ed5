-- Arrays: array columns of each element type, literals in both syntaxes, nesting, quoting and
-- NULLs in the text form, comparisons, = ANY, subscripts, array functions, array_agg (ordered
-- too), ARRAY(subquery), unnest, casts with element modifiers, arrays as keys, and the errors
-- of malformed input. Type OIDs are compared too (int4[] is 1007, ...).
-- Known difference kept out: catalog columns of type name / oid are text / int8 in Gnomon, so
-- the pg_type, pg_attribute and information_schema rows of array types are checked in
-- sql/tests/arrays.rs instead.
CREATE TABLE arr (id int PRIMARY KEY, ints int[], bigs int8[], smalls int2[], texts text[], names varchar(5)[], nums numeric(6,2)[], flags bool[], floats float8[]);
INSERT INTO arr VALUES (1, '{1,2,3}', '{10000000000}', '{1,NULL}', '{"a b",NULL,"NULL","",x}', '{ab,cd}', '{1.5,2}', '{t,f}', '{1.5,NaN}');
INSERT INTO arr VALUES (2, ARRAY[4,5], ARRAY[]::int8[], NULL, ARRAY['q"x','c\d'], ARRAY['abcdef'::varchar(5)], ARRAY[1.005], ARRAY[true], ARRAY[1e20]);
INSERT INTO arr VALUES (3, '{{1,2},{3,4}}', '{}', '{7}', '{}', NULL, NULL, NULL, NULL);
SELECT * FROM arr ORDER BY id;
SELECT id FROM arr WHERE 2 = ANY(ints) ORDER BY id;
SELECT id FROM arr WHERE ints = '{4,5}' ORDER BY id;
SELECT id, ints[1], texts[1], texts[5], ints[9] FROM arr ORDER BY id;
SELECT id, array_length(ints, 1), array_upper(ints, 1), array_lower(ints, 1), cardinality(ints), array_ndims(ints) FROM arr ORDER BY id;
SELECT array_to_string(ints, ','), array_to_string(texts, '|', '*') FROM arr ORDER BY id;
SELECT ARRAY[1,2,3], ARRAY['a','b'], ARRAY[1.5, 2], ARRAY[ARRAY[1,2],ARRAY[3,4]], ARRAY[NULL::int], ARRAY[1, NULL];
SELECT '{1,2}'::int[], '{{1,2},{3,4}}'::int[], '[0:1]={7,8}'::int[], '{}'::text[], ' { a , b } '::text[];
SELECT '{1,2}'::int[] = '{1,2}'::int[], ARRAY[1,2] < ARRAY[1,3], ARRAY[1] < ARRAY[1,0], ARRAY[1,2] <> ARRAY[2];
SELECT 1 = ANY('{1,2}'), 3 = ANY(ARRAY[1,2]), 1 <> ALL('{2,3}'), NULL::int = ANY('{1}'), 1 = ANY('{2,NULL}');
SELECT array_agg(id ORDER BY id) FROM arr;
SELECT array_agg(id) FROM arr WHERE id < 3;
SELECT ARRAY(SELECT id FROM arr ORDER BY id DESC), ARRAY(SELECT id FROM arr WHERE id > 9);
SELECT u FROM unnest(ARRAY[3,1,2]) AS u ORDER BY u;
SELECT '{1.5,2.25}'::numeric(4,1)[], '{abc,de}'::varchar(2)[], '{1,2}'::int[]::text[], ARRAY[1,2]::text;
SELECT '{1,2'::int[];
SELECT '1,2'::int[];
SELECT '{{1},{2,3}}'::int[];
SELECT '{a}'::int[];
SELECT ARRAY[ARRAY[1],ARRAY[1,2]];
SELECT ARRAY[];
SELECT ARRAY[1] = ARRAY['a'];
INSERT INTO arr (id, ints) VALUES (9, '{x}');
UPDATE arr SET ints = ARRAY[9] WHERE id = 1;
SELECT ints FROM arr WHERE id = 1;
SELECT 1 FROM arr WHERE ints = ARRAY[9];
CREATE TABLE ak (k int[] PRIMARY KEY, v text[]);
CREATE INDEX ak_v ON ak (v);
INSERT INTO ak VALUES ('{1,2}', '{a}'), ('{1}', '{b,NULL}'), ('{1,NULL}', '{a}'), ('{{1,2}}', NULL), ('{0,5}', '{}');
INSERT INTO ak VALUES ('{1,2}', '{z}');
SELECT * FROM ak ORDER BY k;
SELECT k FROM ak WHERE v = '{a}' ORDER BY k;
SELECT k FROM ak WHERE k = '{1,2}';
SELECT max(k), min(v) FROM ak;
SELECT v, count(*) FROM ak GROUP BY v ORDER BY v;
SELECT DISTINCT v FROM ak ORDER BY v;
SELECT id, ints[1] + 1, texts[2] IS NULL FROM arr ORDER BY id;
SELECT array_agg(t ORDER BY t DESC NULLS LAST), array_agg(n ORDER BY n) FROM (VALUES ('b', 2), ('a', NULL), (NULL, 1)) v(t, n);
SELECT string_agg(t, ',' ORDER BY t DESC) FROM (VALUES ('b'), ('a'), ('c')) v(t);
SELECT '{1,2}'::int2[], '{1,2}'::int8[], '{t,f}'::bool[], '{1.5}'::float4[], '{2024-01-02}'::date[], '{"2024-01-02 03:04:05"}'::timestamp[];
SELECT '{1,2}'::int[]::bigint[], ARRAY[1,2]::numeric[], ARRAY['1','2']::int[];
SELECT '{"\\x0102"}'::bytea[], ARRAY['a,b', 'c{d', 'e}', ' ', 'x y'];
SELECT '[1:2]={1}'::int[];
SELECT '{1}x'::int[];
SELECT '{,1}'::int[];
SELECT '{{1},2}'::int[];
SELECT '{{}}'::int[];
SELECT 1 = ANY(ARRAY['a']);
SELECT '{99999}'::int2[];

-- Set-returning functions in a select list (side by side, NULL past a shorter set), bool_and.
SELECT unnest(ARRAY[1,2,3]) AS u, generate_subscripts(ARRAY[5,6], 1) AS s;
SELECT id, unnest(ints) FROM arr ORDER BY id, 2;
SELECT id, generate_subscripts(ints, 1) FROM arr WHERE id < 3 ORDER BY 1, 2;
SELECT sum(u) FROM (SELECT unnest(ints) AS u FROM arr) s;
SELECT bool_and(id > 0), bool_or(id > 2), bool_and(NULL::bool), every(id < 3) FROM arr;
SELECT id % 2, bool_or(ints = '{9}') FROM arr GROUP BY 1 ORDER BY 1;
-- Concatenation: ||, array_cat, array_append, array_prepend.
SELECT ARRAY[1,2] || ARRAY[3], ARRAY[1] || 2, 0 || ARRAY[1,2], ARRAY[1] || '{2,3}', '{0}' || ARRAY[1];
SELECT ARRAY[[1,2]] || ARRAY[3,4], ARRAY[3,4] || ARRAY[[1,2]], ARRAY[[1,2]] || ARRAY[[3,4]];
SELECT ARRAY[1] || NULL::int[], NULL::int[] || ARRAY[1], (NULL::int[] || NULL::int[]) IS NULL, ARRAY[1] || NULL::int;
SELECT array_append(ARRAY[1,2], 3), array_prepend(0, ARRAY[1]), array_cat(ARRAY['a'], ARRAY['b','c']), array_append(NULL::int[], 1);
SELECT ARRAY[1.5] || 2, ARRAY['x'::varchar] || 'y'::text, ARRAY[1]::int8[] || 2;
SELECT array_prepend(0, '[1:2]={1,2}'::int[]), '[1:2]={1,2}'::int[] || 3, '[5:5]={1}'::int[] || ARRAY[2];
SELECT ARRAY[[1,2]] || ARRAY[3];
SELECT ARRAY[1] || ARRAY['a'];

-- Containment and overlap: @>, <@, &&.
SELECT ARRAY[1,2,3] @> ARRAY[2,1], ARRAY[1,2] @> ARRAY[3], ARRAY[1] <@ ARRAY[1,2], ARRAY[1,2] && ARRAY[2,5], ARRAY[1] && ARRAY[2];
SELECT ARRAY[1,NULL] @> ARRAY[NULL::int], ARRAY[1,2] @> '{}', '{a,b}' @> ARRAY['a'], ARRAY[1,2] @> NULL::int[], ARRAY[[1,2],[3,4]] @> ARRAY[4];
SELECT ARRAY[1]::int8[] @> ARRAY[1], ARRAY[1.5] && ARRAY[1.5::float8];
SELECT ARRAY[1] @> ARRAY['a'];
SELECT ARRAY[1] @> 1;
