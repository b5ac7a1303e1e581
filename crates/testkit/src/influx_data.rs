//! A generated time-series data set for InfluxDB tests, with an Arrow twin of every
//! measurement for reference computations (DataFusion over Parquet).
//!
//! Two measurements over the year 2025, deterministic for a given size:
//!
//! - `cpu`: tags `host` (100 values) and `region` (5); fields `usage` (float), `procs`
//!   (integer, missing on every 11th point), `state` (string, missing on every 7th) and
//!   `healthy` (boolean);
//! - `weather`: tags `station` (50) and `country` (4); fields `temperature` (float),
//!   `humidity` (integer), `condition` (string) and `raining` (boolean).
//!
//! A missing field is NULL in the Arrow twin, as InfluxDB reports it.

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use std::fmt::Write as _;
use std::sync::Arc;

/// 2025-01-01T00:00:00Z in nanoseconds.
pub const YEAR_START_NS: i64 = 1_735_689_600_000_000_000;
/// The length of the year 2025 in nanoseconds.
pub const YEAR_NS: i64 = 365 * 24 * 3600 * 1_000_000_000;

/// One measurement: its name, which columns are tags, and every point as Arrow (`time` first,
/// then the tags, then the fields).
#[derive(Debug, Clone)]
pub struct Measurement {
    pub name: &'static str,
    pub tags: Vec<&'static str>,
    pub batch: RecordBatch,
}

/// The generated measurements.
#[derive(Debug, Clone)]
pub struct InfluxDataset {
    pub measurements: Vec<Measurement>,
}

/// xorshift64*: deterministic, good enough for test data.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A float in [0, 1) with two decimals' worth of steps (exact in line protocol).
    fn fraction(&mut self) -> f64 {
        self.below(10_000) as f64 / 10_000.0
    }
}

fn time_field() -> Field {
    Field::new(
        "time",
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        false,
    )
}

/// `points` timestamps spread over the year, ascending, each series distinct by tags.
fn times(points: usize, random: &mut Random) -> Vec<i64> {
    let step = YEAR_NS / points.max(1) as i64;
    (0..points as i64)
        .map(|i| YEAR_START_NS + i * step + random.below(step.max(1) as u64) as i64)
        .collect()
}

fn cpu(points: usize) -> Measurement {
    let mut random = Random(0x5eed_c0de);
    let regions = ["eu-west", "eu-north", "us-east", "us-west", "ap-south"];
    let states = ["idle", "busy", "overloaded", "draining"];
    let time = times(points, &mut random);
    let mut host = Vec::with_capacity(points);
    let mut region = Vec::with_capacity(points);
    let mut usage = Vec::with_capacity(points);
    let mut procs = Vec::with_capacity(points);
    let mut state = Vec::with_capacity(points);
    let mut healthy = Vec::with_capacity(points);
    for i in 0..points {
        let h = random.below(100);
        host.push(format!("host-{h:03}"));
        region.push(regions[(h % 5) as usize].to_string());
        usage.push((random.fraction() * 100.0 * 100.0).round() / 100.0);
        procs.push((i % 11 != 0).then(|| random.below(500) as i64 - 20));
        state.push((i % 7 != 0).then(|| states[random.below(4) as usize].to_string()));
        healthy.push(random.below(10) != 0);
    }
    let schema = Schema::new(vec![
        time_field(),
        Field::new("host", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("usage", DataType::Float64, true),
        Field::new("procs", DataType::Int64, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("healthy", DataType::Boolean, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampNanosecondArray::from(time).with_timezone("UTC")),
        Arc::new(StringArray::from(host)),
        Arc::new(StringArray::from(region)),
        Arc::new(Float64Array::from(usage)),
        Arc::new(Int64Array::from(procs)),
        Arc::new(StringArray::from(state)),
        Arc::new(BooleanArray::from(healthy)),
    ];
    Measurement {
        name: "cpu",
        tags: vec!["host", "region"],
        batch: RecordBatch::try_new(Arc::new(schema), columns).expect("cpu columns match"),
    }
}

fn weather(points: usize) -> Measurement {
    let mut random = Random(0x0bad_cafe);
    let countries = ["NO", "DE", "FR", "ES"];
    let conditions = ["clear", "cloudy", "rain", "snow", "fog \"thick\""];
    let time = times(points, &mut random);
    let mut station = Vec::with_capacity(points);
    let mut country = Vec::with_capacity(points);
    let mut temperature = Vec::with_capacity(points);
    let mut humidity = Vec::with_capacity(points);
    let mut condition = Vec::with_capacity(points);
    let mut raining = Vec::with_capacity(points);
    for _ in 0..points {
        let s = random.below(50);
        station.push(format!("station-{s:02}"));
        country.push(countries[(s % 4) as usize].to_string());
        temperature.push(((random.fraction() * 60.0 - 20.0) * 100.0).round() / 100.0);
        humidity.push(random.below(101) as i64);
        let c = random.below(5) as usize;
        condition.push(conditions[c].to_string());
        raining.push(c == 2);
    }
    let schema = Schema::new(vec![
        time_field(),
        Field::new("station", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("temperature", DataType::Float64, true),
        Field::new("humidity", DataType::Int64, true),
        Field::new("condition", DataType::Utf8, true),
        Field::new("raining", DataType::Boolean, true),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampNanosecondArray::from(time).with_timezone("UTC")),
        Arc::new(StringArray::from(station)),
        Arc::new(StringArray::from(country)),
        Arc::new(Float64Array::from(temperature)),
        Arc::new(Int64Array::from(humidity)),
        Arc::new(StringArray::from(condition)),
        Arc::new(BooleanArray::from(raining)),
    ];
    Measurement {
        name: "weather",
        tags: vec!["station", "country"],
        batch: RecordBatch::try_new(Arc::new(schema), columns).expect("weather columns match"),
    }
}

impl InfluxDataset {
    /// `points` points in each measurement.
    pub fn generate(points: usize) -> Self {
        Self {
            measurements: vec![cpu(points), weather(points)],
        }
    }

    /// The measurement called `name`.
    ///
    /// # Panics
    /// When there is none.
    pub fn measurement(&self, name: &str) -> &Measurement {
        self.measurements
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no measurement {name}"))
    }

    /// Every point as line protocol, in chunks of at most `lines` points.
    pub fn line_protocol(&self, lines: usize) -> Vec<String> {
        let mut chunks = Vec::new();
        for measurement in &self.measurements {
            let rows = measurement.batch.num_rows();
            for start in (0..rows).step_by(lines.max(1)) {
                let mut chunk = String::new();
                for row in start..(start + lines).min(rows) {
                    measurement.write_line(row, &mut chunk);
                }
                chunks.push(chunk);
            }
        }
        chunks
    }
}

impl Measurement {
    /// Appends point `row` as one line of line protocol.
    fn write_line(&self, row: usize, out: &mut String) {
        let batch = &self.batch;
        out.push_str(self.name);
        for tag in &self.tags {
            let values = string_column(batch, tag);
            let _ = write!(out, ",{tag}={}", values.value(row));
        }
        let mut first = true;
        for (index, field) in batch.schema().fields().iter().enumerate().skip(1) {
            if self.tags.contains(&field.name().as_str()) {
                continue;
            }
            let column = batch.column(index);
            if column.is_null(row) {
                continue;
            }
            out.push(if first { ' ' } else { ',' });
            first = false;
            let value = match field.data_type() {
                DataType::Float64 => {
                    let v = column.as_any().downcast_ref::<Float64Array>().unwrap();
                    format!("{:?}", v.value(row))
                }
                DataType::Int64 => {
                    let v = column.as_any().downcast_ref::<Int64Array>().unwrap();
                    format!("{}i", v.value(row))
                }
                DataType::Boolean => {
                    let v = column.as_any().downcast_ref::<BooleanArray>().unwrap();
                    v.value(row).to_string()
                }
                _ => {
                    let v = column.as_any().downcast_ref::<StringArray>().unwrap();
                    format!(
                        "\"{}\"",
                        v.value(row).replace('\\', "\\\\").replace('"', "\\\"")
                    )
                }
            };
            let _ = write!(out, "{}={value}", field.name());
        }
        let time = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        let _ = writeln!(out, " {}", time.value(row));
    }
}

fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .unwrap_or_else(|| panic!("no text column {name}"))
}
