use super::*;
use flotilla_connectors_mysql::{Flavor, MysqlConfig, ZeroDates};
use flotilla_connectors_postgres::{NumericMapping, PostgresConfig, UnsupportedTypes};
use flotilla_connectors_sqlite::SqliteConfig;
use flotilla_federation::MaxConnections;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let dir = std::env::temp_dir();
    Config::parse(text, "flotilla.toml", &dir)
}

#[test]
fn a_valid_file_resolves_paths_against_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.db"), b"").unwrap();
    let text = "[sources.shop]\nkind = \"sqlite\"\npath = \"shop.db\"\n";
    let config = Config::parse(text, "f.toml", dir.path()).unwrap();
    assert_eq!(
        config.sources["shop"],
        SourceConfig::Sqlite(SqliteConfig::new(dir.path().join("shop.db")))
    );
}

#[test]
fn unknown_keys_name_the_key_and_the_line() {
    let e = parse("[sources.shop]\nkind = \"sqlite\"\npth = \"x\"\n").unwrap_err();
    assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
    assert_eq!(e.key, "sources.shop.pth", "{e}");
    assert!(e.to_string().contains("unknown key 'pth'"), "{e}");
}

#[test]
fn unknown_kinds_and_missing_files_are_reported_where_they_are() {
    let e = parse("\n[sources.x]\nkind = \"oracle\"\npath = \"x\"\n").unwrap_err();
    assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
    assert!(
        e.to_string().contains("unknown source kind 'oracle'"),
        "{e}"
    );
    let e = parse("[sources.x]\nkind = \"parquet\"\npath = \"/nonexistent/dir\"\n").unwrap_err();
    assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
    assert_eq!(e.key, "sources.x.path");
}

#[test]
fn sqlite_sources_attach_further_files_as_schemas() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.db"), b"").unwrap();
    std::fs::write(dir.path().join("b.db"), b"").unwrap();
    let text = "[sources.s]\nkind = \"sqlite\"\npath = \"a.db\"\nattach = { old = \"b.db\" }\n";
    let config = Config::parse(text, "f.toml", dir.path()).unwrap();
    let SourceConfig::Sqlite(sqlite) = &config.sources["s"] else {
        panic!()
    };
    assert_eq!(
        sqlite.attach.clone().into_iter().collect::<Vec<_>>(),
        vec![("old".to_string(), dir.path().join("b.db"))]
    );
    let text = "[sources.s]\nkind = \"sqlite\"\npath = \"a.db\"\nattach = { old = \"zz.db\" }\n";
    let e = Config::parse(text, "f.toml", dir.path()).unwrap_err();
    assert_eq!(e.key, "sources.s.attach.old", "{e}");
    assert_eq!(e.position.map(|p| p.0), Some(4), "{e}");
}

#[test]
fn the_server_section_lists_users_by_password_variable() {
    let config = parse(
        "[server]\nlisten = \"0.0.0.0:9000\"\n[[server.users]]\nname = \"ana\"\npassword_env = \"ANA_PW\"\n",
    )
    .unwrap();
    assert_eq!(config.server.listen.as_deref(), Some("0.0.0.0:9000"));
    assert_eq!(
        config.server.users,
        vec![UserConfig {
            name: "ana".into(),
            password: UserPassword::Env("ANA_PW".into())
        }]
    );
    let e = parse("[[server.users]]\nname = \"ana\"\npassword = \"x\"\n").unwrap_err();
    assert!(e.to_string().contains("password"), "{e}");
    let hash = flotilla_flightsql::password::hash("pw", 1000);
    let config = parse(&format!(
        "[[server.users]]\nname = \"bo\"\npassword_hash = \"{hash}\"\n"
    ))
    .unwrap();
    let UserPassword::Hash(password) = &config.server.users[0].password else {
        panic!("a hash");
    };
    assert!(password.matches("pw"));
    let e = parse("[[server.users]]\nname = \"bo\"\npassword_hash = \"sha1$x\"\n").unwrap_err();
    assert!(e.to_string().contains("password_hash"), "{e}");
    let e = parse("[[server.users]]\nname = \"bo\"\n").unwrap_err();
    assert!(e.to_string().contains("exactly one"), "{e}");
}

#[test]
fn queries_wait_for_a_turn_only_with_a_limit_on_running_ones() {
    assert_eq!(parse("").unwrap().server.admission.max_running, 0);
    let config = parse("[server]\nmax_concurrent_queries = 4\n").unwrap();
    assert_eq!(
        config.server.admission,
        QueryAdmission {
            max_running: 4,
            max_queued: DEFAULT_MAX_QUEUED
        }
    );
    let config = parse("[server]\nmax_concurrent_queries = 4\nmax_queued_queries = 0\n").unwrap();
    assert_eq!(config.server.admission.max_queued, 0);
    let e = parse("[server]\nmax_queued_queries = 3\n").unwrap_err();
    assert_eq!(e.key, "server.max_queued_queries", "{e}");
    assert!(e.message.contains("max_concurrent_queries"), "{e}");
}

#[test]
fn spans_are_exported_only_to_an_otlp_url() {
    assert_eq!(parse("").unwrap().server.otlp_endpoint, None);
    let config = parse("[server]\notlp_endpoint = \"http://collector:4317\"\n").unwrap();
    assert_eq!(
        config.server.otlp_endpoint.as_deref(),
        Some("http://collector:4317")
    );
    let e = parse("[server]\notlp_endpoint = \"collector:4317\"\n").unwrap_err();
    assert_eq!(e.key, "server.otlp_endpoint", "{e}");
    assert!(e.message.contains("http://host:4317"), "{e}");
    assert!(e.to_string().contains(":2"), "located: {e}");
}

#[test]
fn pushdown_defaults_to_cost_and_takes_modes_or_booleans() {
    assert_eq!(parse("").unwrap().pushdown, Pushdown::Cost);
    assert_eq!(
        parse("[federation]\npushdown = \"cost\"\n")
            .unwrap()
            .pushdown,
        Pushdown::Cost
    );
    assert_eq!(
        parse("[federation]\npushdown = false\n").unwrap().pushdown,
        Pushdown::None
    );
    assert_eq!(
        parse("[federation]\npushdown = true\n").unwrap().pushdown,
        Pushdown::All
    );
    assert_eq!(
        parse("[federation]\npushdown = \"all\"\n")
            .unwrap()
            .pushdown,
        Pushdown::All
    );
    let e = parse("[federation]\npushdown = \"some\"\n").unwrap_err();
    assert_eq!(e.key, "federation.pushdown", "{e}");
    assert!(e.to_string().contains("all, cost or none"), "{e}");
    let e = parse("[federation]\npushdwn = false\n").unwrap_err();
    assert_eq!(e.key, "federation.pushdwn", "{e}");
}

#[test]
fn keys_of_another_kind_and_bad_values_are_errors() {
    let e = parse("[sources.x]\nkind = \"sqlite\"\npath = \".\"\ndelimiter = \";\"\n").unwrap_err();
    assert_eq!(e.key, "sources.x.delimiter", "{e}");
    let e = parse("[sources.x]\nkind = \"csv\"\npath = \".\"\nhas_header = \"yes\"\n").unwrap_err();
    assert_eq!(e.position.map(|p| p.0), Some(4), "{e}");
}

#[test]
fn database_sources_take_a_connection_limit_from_1_to_10000() {
    let text = "[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\nmax_connections = 4\n\
                [sources.lite]\nkind = \"sqlite\"\npath = \".\"\n";
    let config = parse(text).unwrap();
    let SourceConfig::Postgres(pg) = &config.sources["pg"] else {
        panic!("{config:?}")
    };
    assert_eq!(pg.max_connections, Some(MaxConnections(4)));
    let SourceConfig::Sqlite(lite) = &config.sources["lite"] else {
        panic!("{config:?}")
    };
    assert_eq!(lite.max_connections, None);
    for bad in ["0", "-2", "10001"] {
        let e = parse(&format!(
            "[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\nmax_connections = {bad}\n"
        ))
        .unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.position.map(|p| p.0)),
            ("sources.pg.max_connections", Some(4)),
            "{e}"
        );
        assert!(e.message.contains("from 1 to 10000"), "{e}");
    }
    let e = parse("[sources.files]\nkind = \"parquet\"\npath = \".\"\nmax_connections = 2\n")
        .unwrap_err();
    assert_eq!(e.key, "sources.files.max_connections", "{e}");
}

#[test]
fn postgres_sources_take_a_url_and_type_options() {
    let text = "[sources.pg]\nkind = \"postgres\"\nurl = \"postgresql://me@db:5433/shop\"\n\
                password_env = \"PG_PASS\"\nnumeric = \"float\"\nunsupported_types = \"skip\"\n\
                pushdown = \"all\"\n";
    let config = parse(text).unwrap();
    assert_eq!(
        config.sources["pg"],
        SourceConfig::Postgres(PostgresConfig {
            password_env: Some("PG_PASS".into()),
            numeric: NumericMapping::Float,
            unsupported_types: UnsupportedTypes::Skip,
            pushdown: Some(Pushdown::All),
            ..PostgresConfig::new("postgresql://me@db:5433/shop")
        })
    );
    let e = parse("[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\npushdown = \"most\"\n")
        .unwrap_err();
    assert_eq!(
        (e.key.as_str(), e.position.map(|p| p.0)),
        ("sources.pg.pushdown", Some(4)),
        "{e}"
    );
    assert!(e.message.contains("all, cost or none"), "{e}");
    let e = parse(
        "[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\ntls_root_cert = \"nowhere.pem\"\n",
    )
    .unwrap_err();
    assert_eq!(e.key, "sources.pg.tls_root_cert", "{e}");
    assert!(e.message.contains("does not exist"), "{e}");
    let e = parse("[sources.pg]\nkind = \"postgres\"\n").unwrap_err();
    assert!(e.message.contains("missing key 'url'"), "{e}");
    let e =
        parse("[sources.pg]\nkind = \"postgres\"\nurl = \"postgresql://h:port/d\"\n").unwrap_err();
    assert_eq!(
        (e.key.as_str(), e.position.map(|p| p.0)),
        ("sources.pg.url", Some(3)),
        "{e}"
    );
    let e =
        parse("[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\nnumeric = \"decimal(40,2)\"\n")
            .unwrap_err();
    assert_eq!(e.key, "sources.pg.numeric", "{e}");
    let e =
        parse("[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\npath = \"x\"\n").unwrap_err();
    assert_eq!(e.key, "sources.pg.path", "{e}");
    assert!(e.message.contains("unknown key 'path'"), "{e}");
    let text = "[sources.my]\nkind = \"mysql\"\nurl = \"mysql://u:p@h:3306/shop\"\n\
                flavor = \"mariadb\"\nzero_dates = \"null\"\n";
    assert_eq!(
        parse(text).unwrap().sources["my"],
        SourceConfig::Mysql(MysqlConfig {
            flavor: Some(Flavor::MariaDb),
            zero_dates: ZeroDates::Null,
            ..MysqlConfig::new("mysql://u:p@h:3306/shop")
        })
    );
    let e = parse("[sources.my]\nkind = \"mysql\"\nurl = \"mysql://h/d\"\nflavor = \"oracle\"\n")
        .unwrap_err();
    assert_eq!(e.key, "sources.my.flavor", "{e}");
    assert!(e.message.contains("'mysql', 'mariadb', 'tidb'"), "{e}");
    assert_eq!(
        "decimal(20, 4)".parse::<NumericMapping>(),
        Ok(NumericMapping::Decimal(20, 4))
    );
}

#[test]
fn session_options_are_kept_as_set_takes_them() {
    let text = "[session.options]\n\"distributed.results_from_workers\" = false\n\
                \"datafusion.execution.batch_size\" = 4096\n\
                \"distributed.compression\" = \"lz4\"\n";
    let options = parse(text).unwrap().session.options;
    assert_eq!(options["distributed.results_from_workers"], "false");
    assert_eq!(options["datafusion.execution.batch_size"], "4096");
    assert_eq!(options["distributed.compression"], "lz4");
    let e = parse("[session.options]\n\"x\" = [1]\n").unwrap_err();
    assert_eq!(e.key, "session.options.x", "{e}");
    assert_eq!(e.position.map(|(line, _)| line), Some(2), "{e}");
}

#[test]
fn a_source_needs_a_kind_and_a_table() {
    let e = parse("[sources.x]\npath = \".\"\n").unwrap_err();
    assert_eq!(e.key, "sources.x", "{e}");
    assert!(e.message.contains("missing key 'kind'"), "{e}");
    assert!(e.message.contains("sqlite, parquet, csv"), "{e}");
    let e = parse("[sources]\nx = 3\n").unwrap_err();
    assert_eq!(
        (e.key.as_str(), e.position.map(|p| p.0)),
        ("sources.x", Some(2)),
        "{e}"
    );
    let e = parse("sources = 3\n").unwrap_err();
    assert_eq!(e.key, "sources", "{e}");
    let e = parse("[sources.x]\nkind = 3\n").unwrap_err();
    assert_eq!(e.key, "sources.x.kind", "{e}");
}

#[test]
fn every_kind_is_read_by_its_own_options_type() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.csv"), b"a\n1\n").unwrap();
    let text = "[sources.c]\nkind = \"csv\"\npath = \"t.csv\"\ndelimiter = \";\"\n\
                [sources.p]\nkind = \"parquet\"\npath = \".\"\n\
                [sources.f]\nkind = \"flightsql\"\nurl = \"grpc://h:50051\"\n\
                [sources.i]\nkind = \"influxdb\"\nurl = \"http://h:8086\"\ndatabase = \"d\"\n";
    let config = Config::parse(text, "f.toml", dir.path()).unwrap();
    let kinds: Vec<_> = config.sources.values().map(SourceConfig::kind).collect();
    assert_eq!(kinds, ["csv", "flightsql", "influxdb", "parquet"]);
    let SourceConfig::Csv(csv) = &config.sources["c"] else {
        panic!("{config:?}")
    };
    assert_eq!((csv.delimiter.as_str(), csv.has_header), (";", true));
    assert_eq!(csv.path, dir.path().join("t.csv"));
    let e = parse("[sources.c]\nkind = \"csv\"\npath = \".\"\ndelimiter = \";;\"\n").unwrap_err();
    assert_eq!(
        (e.key.as_str(), e.position.map(|p| p.0)),
        ("sources.c.delimiter", Some(4)),
        "{e}"
    );
    let e = parse("[sources.i]\nkind = \"influxdb\"\nurl = \"https://h\"\ndatabase = \"d\"\n")
        .unwrap_err();
    assert_eq!(e.key, "sources.i.url", "{e}");
    let e = parse("[sources.f]\nkind = \"flightsql\"\nurl = \"ftp://h\"\n").unwrap_err();
    assert_eq!(
        (e.key.as_str(), e.position.map(|p| p.0)),
        ("sources.f.url", Some(3)),
        "{e}"
    );
}
