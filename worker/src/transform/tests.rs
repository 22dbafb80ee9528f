use apitap_common::error::ErrorClass;
use apitap_common::spec::{Field as SpecField, FieldType};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use serde_json::json;

use super::*;

fn records(v: serde_json::Value) -> Vec<serde_json::Value> {
    v.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn mixed_int_and_float_widen_to_float64() {
    let t = Transformer::new("SELECT * FROM source", None);
    let batch = t
        .run(&records(json!([{"a": 1}, {"a": 2.5}, {"a": null}])))
        .await
        .unwrap()
        .unwrap();
    let col = batch.column_by_name("a").unwrap();
    assert_eq!(col.data_type(), &DataType::Float64);
    let a = col.as_primitive::<Float64Type>();
    assert_eq!(a.value(0), 1.0);
    assert_eq!(a.value(1), 2.5);
    assert!(a.is_null(2));
}

#[tokio::test]
async fn nested_struct_and_list_are_kept() {
    let t = Transformer::new(
        "SELECT id, user, tags, user['login'] AS login FROM source",
        None,
    );
    let rows = records(json!([
        {"id": 1, "user": {"login": "ann", "id": 7}, "tags": ["a", "b"]},
        {"id": 2, "user": {"login": "bob"}, "tags": []}
    ]));
    let batch = t.run(&rows).await.unwrap().unwrap();
    let schema = batch.schema();
    assert!(matches!(
        schema.field_with_name("user").unwrap().data_type(),
        DataType::Struct(_)
    ));
    assert!(matches!(
        schema.field_with_name("tags").unwrap().data_type(),
        DataType::List(_)
    ));
    let login = batch.column_by_name("login").unwrap().as_string::<i32>();
    assert_eq!(login.value(1), "bob");
}

#[tokio::test]
async fn camel_case_columns_select_unquoted() {
    let t = Transformer::new(
        "SELECT userName, postCount * 2 AS doubled FROM source WHERE postCount > 1",
        None,
    );
    let rows = records(json!([
        {"userName": "ann", "postCount": 3},
        {"userName": "bob", "postCount": 1}
    ]));
    let batch = t.run(&rows).await.unwrap().unwrap();
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch.schema().field(0).name(), "userName");
    let names = batch.column(0).as_string::<i32>();
    assert_eq!(names.value(0), "ann");
    let doubled = batch.column(1).as_primitive::<Int64Type>();
    assert_eq!(doubled.value(0), 6);
}

#[tokio::test]
async fn unknown_column_is_a_user_error_with_datafusion_message() {
    let t = Transformer::new("SELECT nope FROM source", None);
    let err = t.run(&records(json!([{"a": 1}]))).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::User);
    assert!(matches!(err, TransformError::Sql(_)));
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn syntax_error_and_ddl_are_user_errors() {
    for sql in ["SELEC a FROM source", "CREATE TABLE x (a INT)"] {
        let t = Transformer::new(sql, None);
        let err = t.run(&records(json!([{"a": 1}]))).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::User, "{sql}: {err}");
    }
}

#[tokio::test]
async fn empty_page_and_empty_result_give_none() {
    let t = Transformer::new("SELECT * FROM source WHERE a > 10", None);
    assert!(t.run(&[]).await.unwrap().is_none());
    assert!(t.run(&records(json!([{"a": 1}]))).await.unwrap().is_none());
}

#[tokio::test]
async fn irregular_column_becomes_json_text() {
    let t = Transformer::new("SELECT * FROM source", None);
    let rows = records(json!([
        {"id": 1, "v": {"x": 1}},
        {"id": 2, "v": "plain"},
        {"id": 3, "v": [1, 2]},
        {"id": 4, "v": 5}
    ]));
    let batch = t.run(&rows).await.unwrap().unwrap();
    let field = batch.schema().field_with_name("v").unwrap().clone();
    assert_eq!(field.data_type(), &DataType::Utf8);
    let v = batch.column_by_name("v").unwrap().as_string::<i32>();
    assert_eq!(v.value(0), r#"{"x":1}"#);
    assert_eq!(v.value(1), r#""plain""#);
    assert_eq!(v.value(2), "[1,2]");
    assert_eq!(
        batch.column_by_name("id").unwrap().data_type(),
        &DataType::Int64
    );
}

#[tokio::test]
async fn scalar_and_list_mix_is_not_an_error() {
    let t = Transformer::new("SELECT * FROM source", None);
    let rows = records(json!([{"v": 1}, {"v": [2, 3]}]));
    assert!(t.run(&rows).await.unwrap().is_some());
}

#[tokio::test]
async fn declared_schema_with_json_field() {
    let declared = vec![
        SpecField {
            name: "id".into(),
            data_type: FieldType::Int64,
            nullable: false,
        },
        SpecField {
            name: "name".into(),
            data_type: FieldType::String,
            nullable: true,
        },
        SpecField {
            name: "meta".into(),
            data_type: FieldType::Json,
            nullable: true,
        },
    ];
    let t = Transformer::new("SELECT * FROM source", Some(&declared));
    let rows = records(json!([
        {"id": 1, "name": 42, "meta": {"a": [1]}, "ignored": true},
        {"id": 2, "meta": null}
    ]));
    let batch = t.run(&rows).await.unwrap().unwrap();
    assert_eq!(batch.num_columns(), 3);
    let name = batch.column_by_name("name").unwrap().as_string::<i32>();
    assert_eq!(name.value(0), "42");
    assert!(name.is_null(1));
    let meta = batch.column_by_name("meta").unwrap().as_string::<i32>();
    assert_eq!(meta.value(0), r#"{"a":[1]}"#);
    assert!(meta.is_null(1));
    // The JSON marker survives a plain projection so the sink can pick a JSON type.
    assert!(is_json_text(
        batch.schema().field_with_name("meta").unwrap()
    ));
}

#[tokio::test]
async fn declared_schema_mismatch_and_non_objects_are_user_errors() {
    let declared = vec![SpecField {
        name: "id".into(),
        data_type: FieldType::Int64,
        nullable: false,
    }];
    let t = Transformer::new("SELECT * FROM source", Some(&declared));
    let err = t.run(&records(json!([{"id": "x"}]))).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::User, "{err}");

    let t = Transformer::new("SELECT * FROM source", None);
    let err = t.run(&records(json!([1, 2]))).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::User, "{err}");
}

fn many(n: u64) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| serde_json::json!({"id": i, "name": format!("record-{i}")}))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_join_over_the_memory_limit_is_a_user_error_naming_it() {
    let t = Transformer::new(
        "SELECT a.id, b.name FROM source a JOIN source b ON a.id <> b.id ORDER BY b.name, a.id",
        None,
    )
    .with_limits(TransformLimits {
        max_memory_bytes: 64 << 10,
        timeout: std::time::Duration::from_secs(60),
    });
    let err = t.run(&many(2_000)).await.unwrap_err();
    assert!(matches!(err, TransformError::Limit(_)), "{err:?}");
    assert!(
        err.to_string().contains("--transform-max-memory-mib"),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::User);
    // The same SQL within the default limit runs.
    let ok = Transformer::new("SELECT id FROM source ORDER BY id DESC", None)
        .run(&many(2_000))
        .await
        .unwrap()
        .expect("rows");
    assert_eq!(ok.num_rows(), 2_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_over_the_time_limit_is_cancelled_with_an_error_naming_it() {
    // Enough input batches for the source to yield to the runtime, where the deadline, long
    // past, is seen.
    let t = Transformer::new("SELECT id, name FROM source ORDER BY name DESC", None).with_limits(
        TransformLimits {
            max_memory_bytes: 512 << 20,
            timeout: std::time::Duration::from_nanos(1),
        },
    );
    let err = t.run(&many(20_000)).await.unwrap_err();
    assert!(err.to_string().contains("--transform-timeout"), "{err}");
    assert_eq!(err.class(), ErrorClass::User);
}

/// Without `spec.transform` the batch skips DataFusion: it must be what `SELECT *` returns,
/// schema (types, nullability, the JSON-text marker) and values alike.
#[tokio::test]
async fn passthrough_is_what_select_star_returns() {
    let declared = vec![
        SpecField {
            name: "id".into(),
            data_type: FieldType::Int64,
            nullable: false,
        },
        SpecField {
            name: "meta".into(),
            data_type: FieldType::Json,
            nullable: true,
        },
    ];
    let pages = [
        json!([{"id": 1, "meta": {"a": [1]}}, {"id": 2, "meta": null}]),
        json!([{"a": 1, "b": {"x": [1, 2], "y": "s"}, "c": null}, {"a": 2.5, "c": true}]),
        json!([{"id": 1, "v": {"x": 1}}, {"id": 2, "v": "plain"}, {"id": 3, "v": [1]}]),
        json!([{"when": "2024-02-29T10:00:00Z", "n": null}]),
    ];
    for (i, page) in pages.iter().enumerate() {
        let schema = (i == 0).then_some(declared.as_slice());
        let rows = records(page.clone());
        let sql = Transformer::new("SELECT * FROM source", schema);
        let want = sql.run(&rows).await.unwrap().unwrap();
        let got = Transformer::passthrough(schema)
            .run(&rows)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.schema(), want.schema(), "page {i}");
        assert_eq!(got, want, "page {i}");
    }
    let none = Transformer::passthrough(None).run(&[]).await.unwrap();
    assert!(none.is_none(), "an empty page has no rows to load");
}

#[tokio::test]
async fn a_page_of_the_last_pages_shape_reuses_its_schema_and_a_new_shape_is_inferred() {
    let t = Transformer::passthrough(None);
    let shape = |b: &arrow::record_batch::RecordBatch| -> Vec<String> {
        let mut fields: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), f.data_type()))
            .collect();
        fields.sort();
        fields
    };
    let page = |v: serde_json::Value| records(v);
    let first = t
        .run(&page(json!([{"id": 1, "name": "a"}])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shape(&first), ["id:Int64", "name:Utf8"]);
    // Same shape; a missing field is null in its column.
    let second = t.run(&page(json!([{"id": 2}]))).await.unwrap().unwrap();
    assert_eq!(shape(&second), ["id:Int64", "name:Utf8"]);
    let name = second.schema().index_of("name").unwrap();
    assert_eq!(second.column(name).null_count(), 1);
    // A field the last schema lacks: inferred anew, nothing dropped.
    let third = t
        .run(&page(json!([{"id": 3, "name": "c", "extra": true}])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shape(&third), ["extra:Boolean", "id:Int64", "name:Utf8"]);
    // A value the last schema's type cannot hold: inferred anew, widened.
    let fourth = t
        .run(&page(json!([{"id": 4.5, "name": "d", "extra": false}])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shape(&fourth), ["extra:Boolean", "id:Float64", "name:Utf8"]);
}
