//! Arrays over the wire with tokio-postgres: array columns are described with PostgreSQL's
//! array type OIDs, travel in the binary format both ways (parameters and results), `= ANY($1)`
//! takes an array parameter, and array values survive a restart.

mod common;

use common::{col, sqlstate, Server};
use tokio_postgres::types::Type;

const SCHEMA: &str = "CREATE TABLE docs (id int PRIMARY KEY, tags text[], scores int4[], \
                      big int8[], small int2[], flags bool[], weights float8[], codes varchar(3)[])";

#[tokio::test]
async fn arrays_round_trip_in_binary_with_their_array_types() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path());
    let client = server.connect().await;
    client.batch_execute(SCHEMA).await.unwrap();

    let insert = client
        .prepare("INSERT INTO docs VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .await
        .unwrap();
    let types: Vec<Type> = insert.params().to_vec();
    assert_eq!(
        types,
        [
            Type::INT4,
            Type::TEXT_ARRAY,
            Type::INT4_ARRAY,
            Type::INT8_ARRAY,
            Type::INT2_ARRAY,
            Type::BOOL_ARRAY,
            Type::FLOAT8_ARRAY,
            Type::VARCHAR_ARRAY
        ]
    );
    let tags: Vec<Option<String>> = vec![
        Some("a b".into()),
        None,
        Some("NULL".into()),
        Some(String::new()),
        Some("q\"\\".into()),
    ];
    client
        .execute(
            &insert,
            &[
                &1i32,
                &tags,
                &vec![3i32, -1, 7],
                &vec![10_000_000_000i64],
                &vec![Some(1i16), None],
                &vec![true, false],
                &vec![1.5f64, f64::INFINITY],
                &vec!["ab", "xyz"],
            ],
        )
        .await
        .unwrap();
    let empty: Vec<i32> = vec![];
    client
        .execute(
            &insert,
            &[
                &2i32,
                &vec![Some("x".to_string())],
                &empty,
                &None::<Vec<i64>>,
                &vec![Some(5i16)],
                &vec![true],
                &vec![0.25f64],
                &vec!["c"],
            ],
        )
        .await
        .unwrap();

    // Results in binary (tokio-postgres asks for binary) with the array type OIDs.
    let select = client
        .prepare("SELECT tags, scores, big, small, flags, weights, codes FROM docs ORDER BY id")
        .await
        .unwrap();
    let result_types: Vec<Type> = select.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(
        result_types,
        [
            Type::TEXT_ARRAY,
            Type::INT4_ARRAY,
            Type::INT8_ARRAY,
            Type::INT2_ARRAY,
            Type::BOOL_ARRAY,
            Type::FLOAT8_ARRAY,
            Type::VARCHAR_ARRAY
        ]
    );
    let rows = client.query(&select, &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, Vec<Option<String>>>(0), tags);
    assert_eq!(rows[0].get::<_, Vec<i32>>(1), vec![3, -1, 7]);
    assert_eq!(rows[0].get::<_, Vec<i64>>(2), vec![10_000_000_000]);
    assert_eq!(rows[0].get::<_, Vec<Option<i16>>>(3), vec![Some(1), None]);
    assert_eq!(rows[0].get::<_, Vec<bool>>(4), vec![true, false]);
    assert_eq!(rows[0].get::<_, Vec<f64>>(5), vec![1.5, f64::INFINITY]);
    assert_eq!(rows[0].get::<_, Vec<String>>(6), vec!["ab", "xyz"]);
    assert_eq!(rows[1].get::<_, Vec<i32>>(1), Vec::<i32>::new());
    assert_eq!(rows[1].get::<_, Option<Vec<i64>>>(2), None);

    // The text form, as psql and the simple protocol see it.
    assert_eq!(
        col(&client, "SELECT tags::text FROM docs ORDER BY id").await,
        vec![r#"{"a b",NULL,"NULL","","q\"\\"}"#, "{x}"]
    );

    // `= ANY($1)`: the parameter is an int4[] sent binary.
    let any = client
        .prepare("SELECT id FROM docs WHERE id = ANY($1) ORDER BY id")
        .await
        .unwrap();
    assert_eq!(any.params(), &[Type::INT4_ARRAY]);
    let ids: Vec<i32> = client
        .query(&any, &[&vec![2i32, 9, 1]])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1, 2]);
    let none: Vec<i32> = vec![];
    assert!(client.query(&any, &[&none]).await.unwrap().is_empty());
    // A text[] parameter against a text[] column element.
    let rows = client
        .query(
            "SELECT id FROM docs WHERE $1 = ANY(tags)",
            &[&"x".to_string()],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);

    // varchar(3)[] applies its length to each element: 22001 as in PostgreSQL.
    let e = client
        .execute(
            "UPDATE docs SET codes = $1 WHERE id = 2",
            &[&vec!["toolong"]],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22001");
    // Malformed literals are 22P02 and the session goes on.
    let e = client
        .simple_query("SELECT '{1,2'::int[]")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22P02");
    assert_eq!(
        col(&client, "SELECT ARRAY[ARRAY[1,2],ARRAY[3,4]]::text").await,
        vec!["{{1,2},{3,4}}"]
    );

    // pg_index's int2vector / oidvector columns: their types, PostgreSQL's text form, and
    // the array binary format (subscripts from 0; oids as 4 bytes).
    let vectors = client
        .prepare("SELECT indkey, indclass FROM pg_index WHERE indexrelid = 'docs_pkey'::regclass")
        .await
        .unwrap();
    let types: Vec<Type> = vectors
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(types, [Type::INT2_VECTOR, Type::OID_VECTOR]);
    let row = client.query_one(&vectors, &[]).await.unwrap();
    assert_eq!(row.get::<_, Vec<i16>>(0), vec![1]);
    assert_eq!(row.get::<_, Vec<u32>>(1), vec![1978]);
    assert_eq!(
        col(
            &client,
            "SELECT indkey::text || ' / ' || indclass::text FROM pg_index \
                      WHERE indexrelid = 'docs_pkey'::regclass"
        )
        .await,
        vec!["1 / 1978"]
    );

    // The rows survive a restart (arrays in the row format, array types in the catalog).
    drop(client);
    server.terminate();
    let server = Server::start(dir.path());
    let client = server.connect().await;
    let rows = client
        .query("SELECT scores, codes FROM docs WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, Vec<i32>>(0), vec![3, -1, 7]);
    assert_eq!(rows[0].get::<_, Vec<String>>(1), vec!["ab", "xyz"]);
}
