use super::rows::{composite_domain, selectivity};
use super::*;
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{col, lit};

#[test]
fn conditions_keep_fewer_rows_the_more_they_ask() {
    let eq = col("a").eq(lit(1));
    let range = col("a").gt(lit(1));
    assert!(selectivity(&eq) < selectivity(&range));
    assert!(selectivity(&eq.clone().and(range.clone())) < selectivity(&eq));
    assert!(selectivity(&eq.clone().or(range.clone())) > selectivity(&range));
    assert!(selectivity(&col("a").like(lit("x%"))) < selectivity(&col("a").not_like(lit("x%"))));
}

#[test]
fn sending_rows_costs_per_row_and_per_byte() {
    let narrow = Estimate {
        rows: 1e6,
        width: 8.0,
        remote: 0.0,
        serial: false,
    };
    let wide = Estimate {
        width: 80.0,
        ..narrow
    };
    let costs = EngineCosts::SERVER;
    assert!(narrow.fetch(&costs) < wide.fetch(&costs));
    assert!(wide.pushed(&costs) >= wide.fetch(&costs));
}

#[test]
fn a_lookup_into_a_table_bigger_than_the_engines_memory_pays_page_reads() {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::LogicalPlanBuilder;
    use datafusion::logical_expr::logical_plan::builder::table_source;
    let schema = Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, true),
    ]);
    // A table no source describes: a million rows of 16 bytes, 16 MB.
    let table = LogicalPlanBuilder::scan("t", table_source(&schema), None)
        .unwrap()
        .filter(col("v").gt(lit(0)))
        .unwrap()
        .build()
        .unwrap();
    let held = EngineCosts {
        probe: 2e-6,
        cache_bytes: 32e6,
        page_read: 3e-5,
        ..EngineCosts::SERVER
    };
    assert_eq!(lookup(&table, &held), 2e-6);
    // Three quarters of its pages are not in a 4 MB cache.
    let quarter = EngineCosts {
        cache_bytes: 4e6,
        ..held
    };
    assert!((lookup(&table, &quarter) - (2e-6 + 0.75 * 3e-5)).abs() < 1e-12);
    assert_eq!(
        lookup(&table, &EngineCosts::SERVER),
        EngineCosts::SERVER.probe
    );
}

#[test]
fn an_outer_join_hashing_its_preserved_side_runs_serially_and_so_does_all_above_it() {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::LogicalPlanBuilder;
    use datafusion::logical_expr::logical_plan::builder::table_source;
    let scan = |name: &str| {
        let schema = Schema::new(vec![Field::new(
            format!("{name}_k"),
            DataType::Int64,
            false,
        )]);
        LogicalPlanBuilder::scan(name, table_source(&schema), None).unwrap()
    };
    let join = |join_type| {
        scan("small")
            .join(
                scan("big").build().unwrap(),
                join_type,
                (vec!["small_k"], vec!["big_k"]),
                None,
            )
            .unwrap()
            .build()
            .unwrap()
    };
    let (small, big) = (
        Estimate {
            rows: 1e5,
            width: 8.0,
            remote: 0.01,
            serial: false,
        },
        Estimate {
            rows: 1e6,
            width: 8.0,
            remote: 0.1,
            serial: false,
        },
    );
    let costs = EngineCosts {
        serial_factor: 2.0,
        serial_outer_hash: true,
        ..EngineCosts::SERVER
    };
    let parallel = |plan: &LogicalPlan| estimate(plan, &[small, big], &EngineCosts::SERVER);
    // The smaller side is hashed: kept whole by a left join, it makes the plan serial.
    let left = join(JoinType::Left);
    let serial = estimate(&left, &[small, big], &costs);
    assert!(serial.serial);
    assert!((serial.remote - 2.0 * parallel(&left).remote).abs() < 1e-9);
    // Not for an inner join, nor for a right join (the bigger side kept), nor for an
    // engine that runs such joins in parallel.
    for join_type in [JoinType::Inner, JoinType::Right] {
        let plan = join(join_type);
        assert_eq!(estimate(&plan, &[small, big], &costs), parallel(&plan));
    }
    assert!(!parallel(&left).serial);
    // Above a serial plan, an aggregate's own work takes twice as long as well.
    let aggregate = LogicalPlanBuilder::from(left.clone())
        .aggregate(vec![col("small_k")], Vec::<Expr>::new())
        .unwrap()
        .build()
        .unwrap();
    let above = estimate(&aggregate, &[serial], &costs);
    let above_parallel = estimate(&aggregate, &[parallel(&left)], &EngineCosts::SERVER);
    assert!(above.serial);
    assert!(
        (above.remote - serial.remote - 2.0 * (above_parallel.remote - parallel(&left).remote))
            .abs()
            < 1e-9
    );
}

#[test]
fn an_aggregate_whose_groups_outgrow_the_cache_pays_per_row_and_may_run_serially() {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::functions_aggregate::sum::sum;
    use datafusion::logical_expr::LogicalPlanBuilder;
    use datafusion::logical_expr::logical_plan::builder::table_source;
    let schema = Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, true),
    ]);
    let scan = LogicalPlanBuilder::scan("t", table_source(&schema), None)
        .unwrap()
        .build()
        .unwrap();
    let grouped = LogicalPlanBuilder::from(scan)
        .aggregate(vec![col("k")], vec![sum(col("v"))])
        .unwrap()
        .build()
        .unwrap();
    let input = |rows: f64| Estimate {
        rows,
        width: 16.0,
        remote: 0.0,
        serial: false,
    };
    let costs = EngineCosts {
        hash_cache_bytes: 2e6,
        hash_miss: 2e-7,
        serial_big_aggregate: true,
        serial_factor: 2.0,
        ..EngineCosts::SERVER
    };
    let per_row = |rows: f64, costs: &EngineCosts| estimate(&grouped, &[input(rows)], costs);
    // 1,000 groups (a tenth of the rows, no statistics) of 64 bytes fit: as a server.
    let small = per_row(1e4, &costs);
    assert!(!small.serial);
    assert_eq!(small, per_row(1e4, &EngineCosts::SERVER));
    // 1 M groups (64 MB) do not: a miss for nearly every row, run serially.
    let big = per_row(1e7, &costs);
    let server = per_row(1e7, &EngineCosts::SERVER);
    assert!(big.serial);
    let missed = 1.0 - 2e6 / (1e6 * (16.0 + HASH_ENTRY_BYTES));
    let expected = 2.0 * (server.remote + 1e7 * missed * 2e-7);
    assert!((big.remote - expected).abs() < 1e-9, "{big:?}");
    // Without `serial_big_aggregate`, only the misses.
    let parallel = per_row(
        1e7,
        &EngineCosts {
            serial_big_aggregate: false,
            ..costs
        },
    );
    assert!(!parallel.serial);
    assert!((parallel.remote - expected / 2.0).abs() < 1e-9);
}

#[test]
fn a_composite_key_can_take_no_more_values_than_its_smallest_table_has_rows() {
    // q9 at SF 1: lines join partsupp on (partkey, suppkey), 200 k parts and 10 k
    // suppliers, partsupp's 800 k rows: each line finds one row, not 2 G / 800 k of them.
    assert_eq!(composite_domain(&[200e3, 10e3], 800e3), Some(800e3));
    // Columns that together are fewer than the table: their product.
    assert_eq!(composite_domain(&[20.0, 10.0], 800e3), Some(200.0));
    // Never fewer than one column alone (a table said to be smaller than its key).
    assert_eq!(composite_domain(&[200e3, 10e3], 1e3), Some(200e3));
    assert_eq!(composite_domain(&[], 800e3), None);
}
