use apitap_proto::v1::{RunInfo, ShardInfo};

use super::run_page;

#[test]
fn user_text_is_escaped_not_rendered() {
    let hostile = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    let run = RunInfo {
        run_id: 7,
        pipeline: "orders".into(),
        namespace: "default".into(),
        state: "failed".into(),
        error: hostile.into(),
        shards: vec![ShardInfo {
            index: 0,
            key: hostile.into(),
            state: "failed".into(),
            worker: hostile.into(),
            error: hostile.into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let html = run_page::run(&run, true).into_string();
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert_eq!(
        html.matches("&lt;script&gt;alert(1)&lt;/script&gt;")
            .count(),
        4,
        "{html}"
    );
}

#[test]
fn a_finished_run_offers_to_run_again_and_a_live_one_to_cancel() {
    let mut run = RunInfo {
        run_id: 3,
        pipeline: "orders".into(),
        namespace: "shop".into(),
        state: "running".into(),
        ..Default::default()
    };
    let live = run_page::run(&run, true).into_string();
    assert!(live.contains("action=\"/console/runs/3/cancel\""), "{live}");
    assert!(live.contains("data-terminal=\"false\""), "{live}");
    run.state = "succeeded".into();
    let done = run_page::run(&run, true).into_string();
    assert!(
        done.contains("action=\"/console/pipelines/shop/orders/run\""),
        "{done}"
    );
    assert!(
        !done.contains("/retry"),
        "only a failed run is retried: {done}"
    );
    run.state = "failed".into();
    let failed = run_page::run(&run, true).into_string();
    assert!(
        failed.contains("action=\"/console/runs/3/retry\""),
        "{failed}"
    );
    let viewer = run_page::run(&run, false).into_string();
    assert!(
        !viewer.contains("<form"),
        "a viewer gets no action buttons: {viewer}"
    );
}
