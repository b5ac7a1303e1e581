//! Seeded random queries over generated tables, for differential tests: the same SQL on two
//! engines (one node and a cluster) must give the same rows.
//!
//! Everything follows from one seed: the tables' rows and the queries. A failure prints its
//! seed, and the same seed makes the same tables and queries again.
//!
//! ```text
//!  Tables::write(dir, seed)     t1 (300 rows), t2 (200 rows), Parquet, two files each:
//!                               id (unique), k (join key, NULLs), g (group text, NULLs),
//!                               i8, i64, u32, f32, f64, dec (Decimal128), b, d (Date32),
//!                               ts (Timestamp µs), s (LargeUtf8), bin, l (List<Int32>),
//!                               st (Struct) — every column but id has NULLs
//!  Queries::new(seed).next()    aggregates (GROUP BY, none, ROLLUP, GROUPING SETS, DISTINCT),
//!                               joins (inner/left/right/full/semi/anti/cross, equi and not),
//!                               set operations, window functions, scalar and correlated
//!                               subqueries, ORDER BY/LIMIT/OFFSET, generate_series/range/
//!                               unnest, and values cast to every other Arrow type (Float16,
//!                               dictionaries, Utf8View, LargeList, FixedSizeList, Decimal256,
//!                               intervals, durations, maps)
//! ```

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int32Builder, Int64Builder, LargeStringBuilder, ListBuilder,
    RecordBatch, StringBuilder, StructArray, TimestampMicrosecondBuilder, UInt32Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same numbers on
/// every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `true` with probability `percent` / 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1) as usize) as i64
    }
}

/// The generated tables: `t1` and `t2`, each a directory of Parquet files.
#[derive(Debug, Clone)]
pub struct Tables {
    pub dir: PathBuf,
}

impl Tables {
    /// Writes `t1` (300 rows) and `t2` (200 rows) under `dir`, from `seed`.
    ///
    /// # Panics
    /// When the files cannot be written.
    pub fn write(dir: &Path, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        for (name, rows) in [("t1", 300), ("t2", 200)] {
            let table = dir.join(name);
            std::fs::create_dir_all(&table).expect("a table directory");
            let batch = rows_of(&mut rng, rows);
            let half = rows / 2;
            for (file, slice) in [
                (0, batch.slice(0, half)),
                (1, batch.slice(half, rows - half)),
            ] {
                let path = table.join(format!("part-{file}.parquet"));
                let out = std::fs::File::create(&path).expect("a Parquet file");
                let properties = WriterProperties::builder()
                    .set_max_row_group_row_count(Some(40))
                    .build();
                let mut writer = ArrowWriter::try_new(out, slice.schema(), Some(properties))
                    .expect("a Parquet writer");
                writer.write(&slice).expect("rows written");
                writer.close().expect("a Parquet file closed");
            }
        }
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// `(name, directory)` of each table.
    pub fn paths(&self) -> Vec<(&'static str, PathBuf)> {
        vec![("t1", self.dir.join("t1")), ("t2", self.dir.join("t2"))]
    }
}

fn rows_of(rng: &mut Rng, rows: usize) -> RecordBatch {
    let groups = ["alpha", "beta", "gamma", "delta", "épsilon"];
    let mut id = Int64Builder::new();
    let mut k = Int32Builder::new();
    let mut g = StringBuilder::new();
    let mut i8s = Int8Builder::new();
    let mut i64s = Int64Builder::new();
    let mut u32s = UInt32Builder::new();
    let mut f32s = Float32Builder::new();
    let mut f64s = Float64Builder::new();
    let mut dec = Decimal128Builder::new();
    let mut b = BooleanBuilder::new();
    let mut d = Date32Builder::new();
    let mut ts = TimestampMicrosecondBuilder::new();
    let mut s = LargeStringBuilder::new();
    let mut bin = BinaryBuilder::new();
    let mut l = ListBuilder::new(Int32Builder::new());
    let mut st_a = Int32Builder::new();
    let mut st_b = StringBuilder::new();
    let mut st_valid = Vec::with_capacity(rows);
    for row in 0..rows {
        id.append_value(rng.next_u64() as i64 % 1_000_000_000 * 1000 + row as i64);
        let null = |rng: &mut Rng| rng.chance(12);
        if null(rng) {
            k.append_null()
        } else {
            k.append_value(rng.between(0, 20) as i32)
        }
        if null(rng) {
            g.append_null()
        } else {
            g.append_value(rng.pick(&groups))
        }
        if null(rng) {
            i8s.append_null()
        } else {
            i8s.append_value(rng.between(-128, 127) as i8)
        }
        if null(rng) {
            i64s.append_null()
        } else {
            i64s.append_value(rng.between(-1_000_000, 1_000_000))
        }
        if null(rng) {
            u32s.append_null()
        } else {
            u32s.append_value(rng.between(0, 4_000_000_000) as u32)
        }
        if null(rng) {
            f32s.append_null()
        } else {
            f32s.append_value(rng.between(-10_000, 10_000) as f32 / 8.0)
        }
        if null(rng) {
            f64s.append_null()
        } else {
            f64s.append_value(rng.between(-1_000_000, 1_000_000) as f64 / 64.0)
        }
        if null(rng) {
            dec.append_null()
        } else {
            dec.append_value(rng.between(-99_999_999, 99_999_999) as i128)
        }
        if null(rng) {
            b.append_null()
        } else {
            b.append_value(rng.chance(50))
        }
        if null(rng) {
            d.append_null()
        } else {
            d.append_value(rng.between(7_000, 20_000) as i32)
        }
        if null(rng) {
            ts.append_null()
        } else {
            ts.append_value(rng.between(0, 2_000_000_000) * 1_000_000)
        }
        if null(rng) {
            s.append_null()
        } else {
            s.append_value(format!("s{}", rng.between(0, 50)))
        }
        if null(rng) {
            bin.append_null()
        } else {
            bin.append_value([rng.below(256) as u8, rng.below(4) as u8])
        }
        if null(rng) {
            l.append_null();
        } else {
            for _ in 0..rng.below(4) {
                l.values().append_value(rng.between(0, 9) as i32);
            }
            l.append(true);
        }
        st_a.append_value(rng.between(0, 5) as i32);
        if null(rng) {
            st_b.append_null()
        } else {
            st_b.append_value(rng.pick(&groups))
        }
        st_valid.push(!null(rng));
    }
    let dec = dec
        .finish()
        .with_precision_and_scale(12, 2)
        .expect("a decimal type");
    let st_fields = Fields::from(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("b", DataType::Utf8, true),
    ]);
    let st = StructArray::new(
        st_fields.clone(),
        vec![Arc::new(st_a.finish()) as ArrayRef, Arc::new(st_b.finish())],
        Some(st_valid.into()),
    );
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(id.finish())),
        ("k", Arc::new(k.finish())),
        ("g", Arc::new(g.finish())),
        ("i8", Arc::new(i8s.finish())),
        ("i64", Arc::new(i64s.finish())),
        ("u32", Arc::new(u32s.finish())),
        ("f32", Arc::new(f32s.finish())),
        ("f64", Arc::new(f64s.finish())),
        ("dec", Arc::new(dec)),
        ("b", Arc::new(b.finish())),
        ("d", Arc::new(d.finish())),
        ("ts", Arc::new(ts.finish())),
        ("s", Arc::new(s.finish())),
        ("bin", Arc::new(bin.finish())),
        ("l", Arc::new(l.finish())),
        ("st", Arc::new(st)),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), *name != "id"))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, array)| array).collect(),
    )
    .expect("a batch of generated rows")
}

/// One generated query.
#[derive(Debug, Clone)]
pub struct Query {
    pub sql: String,
    /// The row order is part of the answer (an `ORDER BY` on unique columns).
    pub ordered: bool,
}

/// Seeded random queries over [`Tables`].
#[derive(Debug, Clone)]
pub struct Queries {
    rng: Rng,
}

/// Numeric columns of both tables.
const NUMBERS: [&str; 7] = ["k", "i8", "i64", "u32", "f32", "f64", "dec"];
/// Columns to group or compare by.
const KEYS: [&str; 6] = ["k", "g", "b", "d", "s", "i8"];
/// Columns of any type, to carry through.
const ANY: [&str; 15] = [
    "k", "g", "i8", "i64", "u32", "f32", "f64", "dec", "b", "d", "ts", "s", "bin", "l", "st",
];
/// Columns `min` and `max` order the same whatever the order rows arrive in (not structs or
/// lists: DataFusion 55 orders `{a: 0, b: NULL}` and `{a: 0, b: 'x'}` as equal, so which one a
/// minimum keeps depends on the order of partial results — found by this harness, not a
/// distribution error).
const ORDERABLE: [&str; 12] = [
    "k", "g", "i8", "i64", "u32", "f32", "f64", "dec", "b", "d", "ts", "s",
];
/// Expressions that make values of types Parquet does not hold (`{c}`: a column of `t`).
const CASTS: [&str; 12] = [
    "arrow_cast({t}.f64, 'Float16')",
    "arrow_cast({t}.g, 'Dictionary(Int32, Utf8)')",
    "arrow_cast({t}.s, 'Dictionary(UInt8, LargeUtf8)')",
    "arrow_cast({t}.g, 'Utf8View')",
    "arrow_cast({t}.l, 'LargeList(Int32)')",
    "arrow_cast(make_array({t}.k, {t}.k), 'FixedSizeList(2, Int32)')",
    "arrow_cast({t}.dec, 'Decimal256(40, 2)')",
    "arrow_cast({t}.i64, 'Duration(Millisecond)')",
    "arrow_cast(concat(CAST({t}.k AS VARCHAR), ' days'), 'Interval(MonthDayNano)')",
    "arrow_cast({t}.bin, 'LargeBinary')",
    "map([{t}.g], [{t}.k])",
    "named_struct('x', {t}.k, 'y', {t}.l)",
];

impl Queries {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed.wrapping_mul(31).wrapping_add(7)),
        }
    }

    /// The next query.
    pub fn next_query(&mut self) -> Query {
        match self.rng.below(11) {
            0 | 1 => self.aggregate(),
            2 | 3 => self.join(),
            4 => self.set_operation(),
            5 => self.window(),
            6 => self.subquery(),
            7 => self.ordered_limit(),
            8 => self.table_function(),
            9 => self.types(),
            _ => self.distinct(),
        }
    }

    fn unordered(sql: String) -> Query {
        Query {
            sql,
            ordered: false,
        }
    }

    fn predicate(&mut self, t: &str) -> String {
        let column = self.rng.pick(&NUMBERS).to_string();
        match self.rng.below(6) {
            0 => format!("{t}.{column} > {}", self.rng.between(-50, 50)),
            1 => format!("{t}.{column} IS NOT NULL"),
            2 => format!("{t}.g IN ('alpha', 'gamma') OR {t}.b"),
            3 => format!(
                "{t}.k BETWEEN {} AND {}",
                self.rng.between(0, 8),
                self.rng.between(8, 20)
            ),
            4 => format!("{t}.s LIKE 's1%'"),
            _ => format!("NOT ({t}.k % 3 = 0)"),
        }
    }

    fn maybe_where(&mut self, t: &str) -> String {
        if self.rng.chance(50) {
            format!(" WHERE {}", self.predicate(t))
        } else {
            String::new()
        }
    }

    fn aggregates(&mut self, t: &str) -> String {
        let count = 1 + self.rng.below(4);
        (0..count)
            .map(|_| {
                let n = self.rng.pick(&NUMBERS);
                let c = self.rng.pick(&ORDERABLE);
                match self.rng.below(9) {
                    0 => "count(*)".to_string(),
                    1 => format!("count({t}.{c})"),
                    2 => format!("sum({t}.{n})"),
                    3 => format!("min({t}.{c})"),
                    4 => format!("max({t}.{c})"),
                    5 => format!("avg({t}.{n})"),
                    6 => format!("count(DISTINCT {t}.{})", self.rng.pick(&KEYS)),
                    7 => format!("bool_and({t}.b)"),
                    _ => format!("sum({t}.{n}) FILTER (WHERE {t}.b)"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn from(&mut self) -> String {
        match self.rng.below(4) {
            0 => "t1 AS t".to_string(),
            1 => "t2 AS t".to_string(),
            2 => format!(
                "(SELECT * FROM t1{}) AS t",
                self.maybe_where("t1").replace("t1.", "")
            ),
            _ => "(SELECT t1.* FROM t1 JOIN t2 ON t1.k = t2.k) AS t".to_string(),
        }
    }

    fn aggregate(&mut self) -> Query {
        let from = self.from();
        let aggregates = self.aggregates("t");
        let filter = self.maybe_where("t");
        let sql = match self.rng.below(5) {
            0 => format!("SELECT {aggregates} FROM {from}{filter}"),
            1 => {
                let key = self.rng.pick(&KEYS);
                format!("SELECT t.{key}, {aggregates} FROM {from}{filter} GROUP BY t.{key}")
            }
            2 => {
                let (a, b) = (self.rng.pick(&KEYS), self.rng.pick(&KEYS));
                let having = if self.rng.chance(50) {
                    " HAVING count(*) > 2"
                } else {
                    ""
                };
                format!(
                    "SELECT t.{a}, t.{b}, {aggregates} FROM {from}{filter} \
                     GROUP BY t.{a}, t.{b}{having}"
                )
            }
            3 => format!(
                "SELECT t.g, t.b, {aggregates} FROM {from}{filter} GROUP BY ROLLUP(t.g, t.b)"
            ),
            _ => format!(
                "SELECT t.g, t.k, {aggregates} FROM {from}{filter} \
                 GROUP BY GROUPING SETS ((t.g), (t.k), ())"
            ),
        };
        Self::unordered(sql)
    }

    fn join(&mut self) -> Query {
        let (a, b) = (self.rng.pick(&ANY), self.rng.pick(&ANY));
        let filter = self.maybe_where("t1");
        let kind = self.rng.below(9);
        let join = match kind {
            0 => "JOIN",
            1 => "LEFT JOIN",
            2 => "RIGHT JOIN",
            3 => "FULL JOIN",
            _ => "JOIN",
        };
        let condition = match self.rng.below(4) {
            0 => "t1.k = t2.k".to_string(),
            1 => "t1.k = t2.k AND t1.i64 < t2.i64".to_string(),
            2 => "t1.g = t2.g AND t1.k = t2.k".to_string(),
            _ => "t1.k < t2.k AND t1.i8 > t2.i8".to_string(),
        };
        let sql = match kind {
            5 => format!(
                "SELECT t1.id, t1.{a} FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE {condition})"
            ),
            6 => format!(
                "SELECT t1.id, t1.{a} FROM t1 WHERE NOT EXISTS \
                 (SELECT 1 FROM t2 WHERE {condition})"
            ),
            7 => format!(
                "SELECT t1.id, t1.{a} FROM t1 WHERE t1.k {}IN (SELECT t2.k FROM t2 WHERE t2.b)",
                if self.rng.chance(50) { "NOT " } else { "" }
            ),
            8 => "SELECT t1.id, t2.id FROM t1 CROSS JOIN t2 WHERE t1.k = 3 AND t2.i8 > 60"
                .to_string(),
            _ if self.rng.chance(40) => {
                let key = self.rng.pick(&KEYS);
                let aggregates = self.aggregates("t2");
                format!(
                    "SELECT t1.{key}, {aggregates} FROM t1 {join} t2 ON {condition}{filter} \
                     GROUP BY t1.{key}"
                )
            }
            _ => format!(
                "SELECT t1.id, t2.id, t1.{a}, t2.{b} FROM t1 {join} t2 ON {condition}{filter}"
            ),
        };
        Self::unordered(sql)
    }

    fn set_operation(&mut self) -> Query {
        let op = self.rng.pick(&[
            "UNION",
            "UNION ALL",
            "INTERSECT",
            "INTERSECT ALL",
            "EXCEPT",
            "EXCEPT ALL",
        ]);
        let column = self.rng.pick(&KEYS);
        let (left, right) = (self.maybe_where("t1"), self.maybe_where("t2"));
        Self::unordered(format!(
            "SELECT t1.{column}, t1.k % 4 FROM t1{left} {op} SELECT t2.{column}, t2.k % 4 FROM t2{right}"
        ))
    }

    fn window(&mut self) -> Query {
        let function = match self.rng.below(7) {
            0 => "row_number()".to_string(),
            1 => "rank()".to_string(),
            2 => "dense_rank()".to_string(),
            3 => format!("sum(t1.{})", self.rng.pick(&NUMBERS)),
            4 => "count(*)".to_string(),
            5 => "lag(t1.i64, 1)".to_string(),
            _ => "first_value(t1.g)".to_string(),
        };
        let window = match self.rng.below(3) {
            0 => "ORDER BY t1.id".to_string(),
            1 => format!("PARTITION BY t1.{} ORDER BY t1.id", self.rng.pick(&KEYS)),
            _ => format!(
                "PARTITION BY t1.{} ORDER BY t1.id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW",
                self.rng.pick(&KEYS)
            ),
        };
        let filter = self.maybe_where("t1");
        if self.rng.chance(40) {
            // Windows over a join: partitioned by other keys than the join shuffled on (rows
            // ordered by both ids, unique in the join).
            let window = window.replace("ORDER BY t1.id", "ORDER BY t1.id, t2.id");
            return Self::unordered(format!(
                "SELECT t1.id, t2.id, {function} OVER ({window}) FROM t1 \
                 JOIN t2 ON t1.k = t2.k{filter}"
            ));
        }
        Self::unordered(format!(
            "SELECT t1.id, {function} OVER ({window}) FROM t1{filter}"
        ))
    }

    fn subquery(&mut self) -> Query {
        let n = self.rng.pick(&NUMBERS);
        let sql = match self.rng.below(3) {
            0 => format!(
                "SELECT t1.id, (SELECT max(t2.{n}) FROM t2) FROM t1 \
                 WHERE t1.i64 > (SELECT avg(t2.i64) FROM t2)"
            ),
            1 => "SELECT t1.id, (SELECT count(*) FROM t2 WHERE t2.k = t1.k) FROM t1".to_string(),
            _ => format!(
                "SELECT t1.g, count(*) FROM t1 WHERE t1.{n} < (SELECT max(t2.{n}) FROM t2 \
                 WHERE t2.g = t1.g) GROUP BY t1.g"
            ),
        };
        Self::unordered(sql)
    }

    fn ordered_limit(&mut self) -> Query {
        let c = self.rng.pick(&ANY);
        let filter = self.maybe_where("t1");
        let direction = if self.rng.chance(50) { "DESC" } else { "ASC" };
        let limit = self.rng.between(0, 40);
        let offset = if self.rng.chance(40) {
            format!(" OFFSET {}", self.rng.between(0, 30))
        } else {
            String::new()
        };
        let inner = format!(
            "SELECT t1.id, t1.{c} FROM t1{filter} ORDER BY t1.id {direction} LIMIT {limit}{offset}"
        );
        match self.rng.below(3) {
            0 => Query {
                sql: inner,
                ordered: true,
            },
            // A limit under other operators, with and without an order.
            1 => Self::unordered(format!("SELECT q.id + 1, q.{c} FROM ({inner}) AS q")),
            _ => Self::unordered(format!(
                "SELECT count(*) FROM (SELECT t1.g, count(*) FROM t1 GROUP BY t1.g LIMIT {})",
                self.rng.between(0, 4)
            )),
        }
    }

    fn table_function(&mut self) -> Query {
        let n = self.rng.between(1, 5000);
        let sql = match self.rng.below(5) {
            0 => format!("SELECT count(*), sum(value) FROM generate_series(1, {n})"),
            1 => format!("SELECT value % 7, count(*) FROM range(0, {n}, 3) GROUP BY value % 7"),
            2 => "SELECT t1.id, unnest(t1.l) FROM t1".to_string(),
            3 => format!(
                "SELECT g.value, count(t1.id) FROM generate_series(0, 20) g \
                 LEFT JOIN t1 ON t1.k = g.value AND t1.i64 > {} GROUP BY g.value",
                self.rng.between(-1000, 1000)
            ),
            _ => format!(
                "SELECT a.value, b.value FROM generate_series(1, {}) a \
                 CROSS JOIN generate_series(1, 3) b",
                self.rng.between(1, 30)
            ),
        };
        Self::unordered(sql)
    }

    fn types(&mut self) -> Query {
        let count = 1 + self.rng.below(3);
        let casts: Vec<String> = (0..count)
            .map(|_| self.rng.pick(&CASTS).replace("{t}", "t1"))
            .collect();
        let filter = self.maybe_where("t1");
        let sql = if self.rng.chance(50) {
            format!("SELECT t1.id, {} FROM t1{filter}", casts.join(", "))
        } else {
            // Values made in one stage, carried through a shuffle to another.
            format!(
                "SELECT c, count(*) FROM (SELECT {} AS c FROM t1{filter}) GROUP BY c",
                casts[0]
            )
        };
        Self::unordered(sql)
    }

    fn distinct(&mut self) -> Query {
        let (a, b) = (self.rng.pick(&KEYS), self.rng.pick(&KEYS));
        let table = self.rng.pick(&["t1", "t2"]);
        Self::unordered(format!(
            "SELECT DISTINCT {table}.{a}, {table}.{b} FROM {table}"
        ))
    }
}
