use flotilla_testkit::{TPCH_SF001_ROWS, mariadb, postgres, tpch_schema_name};
use flotilla_tpch::Table;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Price, ship date and comment of the first line item, as the generator makes it.
fn first_lineitem() -> Vec<String> {
    let batch = Table::LineItem.batches(0.01).next().unwrap().unwrap();
    ["l_extendedprice", "l_shipdate", "l_comment"]
        .iter()
        .map(|name| {
            let column = batch.column_by_name(name).unwrap();
            arrow::util::display::array_value_to_string(column, 0).unwrap()
        })
        .collect()
}

#[test]
fn postgres_answers_and_loads_tpch() {
    let pg = postgres();
    assert_eq!(pg.query("SELECT 6 * 7").unwrap().trim(), "42");
    let schema = pg.load_tpch(0.01).unwrap();
    assert_eq!(schema, tpch_schema_name(0.01));
    for (table, rows) in TPCH_SF001_ROWS {
        let count = pg
            .query(&format!("SELECT count(*) FROM {schema}.{table}"))
            .unwrap();
        assert_eq!(
            count.trim(),
            rows.to_string(),
            "PostgreSQL {schema}.{table}"
        );
    }
    // Values survive the trip: the first line item of the generator.
    let first = pg
        .query(&format!(
            "SELECT l_extendedprice, l_shipdate, l_comment FROM {schema}.lineitem \
             WHERE l_orderkey = 1 AND l_linenumber = 1"
        ))
        .unwrap();
    assert_eq!(first.trim(), first_lineitem().join("|"));
}

#[test]
fn mariadb_answers_and_loads_tpch() {
    let db = mariadb();
    assert_eq!(db.query("SELECT 6 * 7").unwrap().trim(), "42");
    let schema = db.load_tpch(0.01).unwrap();
    for (table, rows) in TPCH_SF001_ROWS {
        let count = db
            .query(&format!("SELECT count(*) FROM {schema}.{table}"))
            .unwrap();
        assert_eq!(count.trim(), rows.to_string(), "MariaDB {schema}.{table}");
    }
    let first = db
        .query(&format!(
            "SELECT l_extendedprice, l_shipdate, l_comment FROM {schema}.lineitem \
             WHERE l_orderkey = 1 AND l_linenumber = 1"
        ))
        .unwrap();
    assert_eq!(first.trim(), first_lineitem().join("\t"));
}

#[test]
fn load_errors_are_reported_not_swallowed() {
    let e = postgres().query("SELECT * FROM no_such_table").unwrap_err();
    assert!(e.contains("no_such_table"), "{e}");
    let e = mariadb()
        .query("SELECT * FROM flotilla.no_such_table")
        .unwrap_err();
    assert!(e.contains("no_such_table"), "{e}");
}

const CHILD_ENV: &str = "FLOTILLA_TESTKIT_CHILD";

/// Run only as a child of `nothing_is_left_behind_after_the_test_binary_exits`: starts both
/// servers, prints what it started, and panics.
#[test]
#[ignore = "run by nothing_is_left_behind_after_the_test_binary_exits"]
fn child_starts_servers_then_panics() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let pg = postgres();
    let db = mariadb();
    let csv = flotilla_testkit::tpch_csv_dir(0.01).unwrap();
    println!("PIDS {} {}", pg.pid(), db.pid());
    println!(
        "DIRS {} {} {}",
        pg.dir().display(),
        db.dir().display(),
        csv.display()
    );
    panic!("deliberate panic with servers running");
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; only its parent has not collected it yet.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn nothing_is_left_behind_after_the_test_binary_exits() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "servers::child_starts_servers_then_panics",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the child should have panicked:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("deliberate panic"), "{stdout}\n{stderr}");
    let field = |tag: &str| -> Vec<String> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(tag))
            .unwrap_or_else(|| panic!("no {tag} line in:\n{stdout}\n{stderr}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let pids: Vec<u32> = field("PIDS ").iter().map(|p| p.parse().unwrap()).collect();
    let dirs: Vec<PathBuf> = field("DIRS ").iter().map(PathBuf::from).collect();
    assert_eq!((pids.len(), dirs.len()), (2, 3));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<String> = pids
            .iter()
            .filter(|p| alive(**p))
            .map(|p| format!("process {p}"))
            .chain(
                dirs.iter()
                    .filter(|d| d.exists())
                    .map(|d| d.display().to_string()),
            )
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still there 30 s after the test binary exited: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The TPC-H table list the kit loads is the full one.
    assert_eq!(Table::ALL.len(), TPCH_SF001_ROWS.len());
}

#[test]
fn influxdb_answers_and_loads_the_generated_series() {
    use flotilla_testkit::influx_data::InfluxDataset;
    let influx = flotilla_testkit::influxdb();
    influx.query(None, "CREATE DATABASE kit").unwrap();
    let data = InfluxDataset::generate(3000);
    for chunk in data.line_protocol(1000) {
        influx.write("kit", &chunk).unwrap();
    }
    // Every point landed once, every field with its type.
    let counts = influx
        .query(
            Some("kit"),
            "SELECT count(usage), count(procs), count(state) FROM cpu",
        )
        .unwrap();
    let cpu = data.measurement("cpu").batch.clone();
    let expected: Vec<usize> = ["usage", "procs", "state"]
        .iter()
        .map(|c| {
            let column = cpu.column_by_name(c).unwrap();
            column.len() - column.null_count()
        })
        .collect();
    assert!(expected[1] < 3000 && expected[2] < 3000, "{expected:?}");
    let wanted = format!(",{},{},{}]]", expected[0], expected[1], expected[2]);
    assert!(counts.contains(&wanted), "{counts} lacks {wanted}");
    let fields = influx
        .query(Some("kit"), "SHOW FIELD KEYS FROM weather")
        .unwrap();
    for pair in [
        "[\"condition\",\"string\"]",
        "[\"humidity\",\"integer\"]",
        "[\"raining\",\"boolean\"]",
        "[\"temperature\",\"float\"]",
    ] {
        assert!(fields.contains(pair), "{fields} lacks {pair}");
    }
    // A quoted string field comes back as written.
    let quoted = influx
        .query(
            Some("kit"),
            "SELECT count(humidity) FROM weather WHERE condition = 'fog \"thick\"'",
        )
        .unwrap();
    assert!(quoted.contains("\"count\""), "{quoted}");
    // InfluxQL errors are errors.
    let error = influx.query(Some("kit"), "SELEKT 1").unwrap_err();
    assert!(error.contains("error parsing query"), "{error}");
}

#[test]
fn influxdb_with_authentication_refuses_wrong_passwords_and_restarts() {
    let mut influx = flotilla_testkit::InfluxDb::start(true).unwrap();
    influx.query(None, "CREATE DATABASE secured").unwrap();
    influx
        .write("secured", "m,t=a v=1i 1735689600000000000\n")
        .unwrap();
    let refused = influx
        .query_as(("admin", "wrong"), Some("secured"), "SELECT * FROM m")
        .unwrap_err();
    assert!(refused.contains("authorization failed"), "{refused}");
    influx.stop().unwrap();
    assert!(influx.query(Some("secured"), "SHOW MEASUREMENTS").is_err());
    influx.restart().unwrap();
    let rows = influx.query(Some("secured"), "SELECT v FROM m").unwrap();
    assert!(
        rows.contains("1735689600000000000") || rows.contains("2025-01-01T00:00:00Z"),
        "{rows}"
    );
}
