//! Join-key pushdown into MariaDB: the keys of a small VALUES list reach MariaDB's SQL.

use crate::common::{context, server};
use flotilla_testkit::assert_same_rows;
use flotilla_testkit::plans::run_with_scans;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selective_join_sends_its_keys_to_mariadb() {
    let database = server().load_tpch(0.1).unwrap();
    let (ctx, _) = context(&database).await;
    let sql = format!(
        "SELECT p_partkey, p_name, wanted.note FROM \
         (VALUES (CAST(11 AS BIGINT), 'a'), (CAST(19999 AS BIGINT), 'b')) AS wanted(key, note) \
         JOIN my.{database}.part ON p_partkey = wanted.key"
    );
    let (with_keys, _, scans) = run_with_scans(&ctx, &sql).await;
    let part = &scans[0];
    assert!(
        part.sent.contains("IN (11, 19999)") && part.sent.contains("AS `keys` WHERE"),
        "{}",
        part.sent
    );
    assert_eq!(part.rows, 2);
    assert_eq!(with_keys.iter().map(|b| b.num_rows()).sum::<usize>(), 2);

    ctx.sql("SET flotilla.federation.join_key_pushdown = false")
        .await
        .unwrap();
    let (without_keys, _, scans) = run_with_scans(&ctx, &sql).await;
    assert_eq!(scans[0].rows, 20_000);
    assert_same_rows(&with_keys, &without_keys, false);
}
