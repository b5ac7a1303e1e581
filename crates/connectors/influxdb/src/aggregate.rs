//! Aggregates pushed to InfluxDB: an `Aggregate` directly over a scan of a measurement (every
//! condition sent), grouped by tags and at most one time bucket, computing `count`, `sum`,
//! `avg`, `min` and `max` of fields, and `first_value` / `last_value` of a field `ORDER BY time`
//! `IGNORE NULLS` (InfluxQL's `first` / `last`), becomes one InfluxQL query
//!
//! ```text
//! SELECT mean("usage") AS "c2", count("procs") AS "c3" FROM "cpu"
//! WHERE <conditions> GROUP BY time(3600000000000ns, 0ns), "host" fill(none)
//! ```
//!
//! whose answer is mapped back to SQL's meaning: no row for an empty bucket (`fill(none)`), a
//! bucket's time is its start (`date_bin` / `date_trunc` to a fixed width), a missing tag is
//! NULL, `count` is never NULL, and an aggregate without `GROUP BY` answers one row even over
//! no points. Anything else — `count(*)`, `DISTINCT`, filters on the aggregate, month buckets —
//! stays with DataFusion.

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DFSchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result as DfResult, ScalarValue};
use datafusion::datasource::{TableType, provider_as_source, source_as_provider};
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::{
    Aggregate, Expr, FetchType, Limit, LogicalPlan, LogicalPlanBuilder, SkipType, TableScan,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

use crate::client::InfluxClient;
use crate::influxql::{Condition, condition, quote_identifier, timestamp_nanos};
use crate::schema::ColumnKind;
use crate::table::{InfluxScanExec, InfluxTable, Output, OutputColumn};

/// The logical optimizer rule; add it to sessions with InfluxDB sources (it runs after
/// DataFusion's filter and projection pushdown).
#[derive(Debug, Default)]
pub struct InfluxAggregatePushdown;

impl OptimizerRule for InfluxAggregatePushdown {
    fn name(&self) -> &str {
        "influxdb_aggregate_pushdown"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        plan.transform_up(|node| {
            let replacement = match &node {
                LogicalPlan::Aggregate(aggregate) => pushed(aggregate)?,
                LogicalPlan::Limit(limit) => with_offset(limit)?,
                _ => None,
            };
            Ok(match replacement {
                Some(replacement) => Transformed::yes(replacement),
                None => Transformed::no(node),
            })
        })
    }
}

/// The table name the pushed query's columns are qualified with inside the plan.
const PUSHED: &str = "influxql";

/// `aggregate` as a scan of one InfluxQL query, if InfluxDB can compute it with SQL's meaning.
fn pushed(aggregate: &Aggregate) -> DfResult<Option<LogicalPlan>> {
    let Some((scan, provider, mut conditions)) = exact_influx_scan(&aggregate.input) else {
        return Ok(None);
    };
    let Some(table) = as_influx(&provider) else {
        return Ok(None);
    };
    if scan.fetch.is_some() {
        return Ok(None);
    }
    let measurement = table.measurement();
    let mut group_by: Vec<String> = Vec::new();
    let mut bucket: Option<String> = None;
    let mut columns = Vec::new();
    for expr in &aggregate.group_expr {
        let expr = unaliased(expr);
        if let Expr::Column(column) = expr
            && measurement.kind_of(&column.name) == Some(ColumnKind::Tag)
        {
            group_by.push(quote_identifier(&column.name));
            columns.push(OutputColumn::tag(&column.name));
            continue;
        }
        match time_bucket(expr, measurement) {
            Some(interval) if bucket.is_none() => {
                bucket = Some(interval);
                columns.push(OutputColumn::value("time"));
            }
            _ => return Ok(None),
        }
    }
    let mut selected = Vec::new();
    for (index, expr) in aggregate.aggr_expr.iter().enumerate() {
        let Some((function, field, counting)) = influx_aggregate(unaliased(expr), measurement)
        else {
            return Ok(None);
        };
        let name = format!("c{}", aggregate.group_expr.len() + index);
        selected.push(format!(
            "{function}({}) AS {}",
            quote_identifier(&field),
            quote_identifier(&name)
        ));
        columns.push(if counting {
            OutputColumn::count(&name)
        } else {
            OutputColumn::value(&name)
        });
    }
    if selected.is_empty() {
        return Ok(None);
    }
    let mut text = format!(
        "SELECT {} FROM {}",
        selected.join(", "),
        quote_identifier(&measurement.name)
    );
    if bucket.is_some() {
        // Without a lower bound InfluxDB would enumerate buckets from 1677 on.
        if !conditions.iter().any(|c| c.lower) {
            return Ok(None);
        }
        // InfluxDB ends time buckets at now() unless told otherwise; SQL has no such bound.
        if !conditions.iter().any(|c| c.upper) {
            conditions.push(Condition {
                text: format!("time <= {}", i64::MAX - 1),
                exact: true,
                upper: true,
                time: true,
                ..Condition::default()
            });
        }
    }
    if !conditions.is_empty() {
        let texts: Vec<&str> = conditions.iter().map(|c| c.text.as_str()).collect();
        text.push_str(" WHERE ");
        text.push_str(&texts.join(" AND "));
    }
    let mut groups = Vec::new();
    if let Some(interval) = &bucket {
        groups.push(interval.clone());
    }
    groups.extend(group_by);
    if !groups.is_empty() {
        text.push_str(&format!(" GROUP BY {} fill(none)", groups.join(", ")));
    }
    let output = Output {
        columns,
        one_row_if_empty: aggregate.group_expr.is_empty(),
    };
    Ok(Some(query_plan(
        table.client().clone(),
        text,
        &aggregate.schema,
        output,
    )?))
}

/// `LIMIT n OFFSET m` right over a scan of a measurement whose conditions all went to InfluxDB
/// (DataFusion has already given the scan `fetch = n + m`): the scan becomes one InfluxQL query
/// with `LIMIT n OFFSET m`, so the skipped points are not sent.
fn with_offset(limit: &Limit) -> DfResult<Option<LogicalPlan>> {
    let (SkipType::Literal(skip), FetchType::Literal(Some(fetch))) =
        (limit.get_skip_type()?, limit.get_fetch_type()?)
    else {
        return Ok(None);
    };
    if skip == 0 {
        return Ok(None);
    }
    let Some((scan, provider, _)) = exact_influx_scan(&limit.input) else {
        return Ok(None);
    };
    let Some(table) = as_influx(&provider) else {
        return Ok(None);
    };
    let influxql = format!(
        "{} OFFSET {skip}",
        table.influxql(scan.projection.as_ref(), &scan.filters, Some(fetch))
    );
    let output = Output {
        columns: scan
            .projected_schema
            .fields()
            .iter()
            .map(|field| OutputColumn::value(field.name()))
            .collect(),
        one_row_if_empty: false,
    };
    Ok(Some(query_plan(
        table.client().clone(),
        influxql,
        &scan.projected_schema,
        output,
    )?))
}

/// `plan` as a scan of an InfluxDB measurement whose every condition InfluxDB evaluates
/// exactly: the scan, its table and the conditions.
fn exact_influx_scan(
    plan: &LogicalPlan,
) -> Option<(&TableScan, Arc<dyn TableProvider>, Vec<Condition>)> {
    let LogicalPlan::TableScan(scan) = plan else {
        return None;
    };
    let provider = source_as_provider(&scan.source).ok()?;
    let measurement = as_influx(&provider)?.measurement();
    let conditions = scan
        .filters
        .iter()
        .map(|filter| condition(filter, measurement).filter(|c| c.exact))
        .collect::<Option<Vec<_>>>()?;
    Some((scan, provider, conditions))
}

fn as_influx(provider: &Arc<dyn TableProvider>) -> Option<&InfluxTable> {
    let any: &dyn std::any::Any = provider.as_ref();
    any.downcast_ref::<InfluxTable>()
}

/// A scan of one InfluxQL query standing in for a plan whose output schema is `schema`: the
/// query's columns `c0, c1, …` renamed to the plan's qualified names.
fn query_plan(
    client: InfluxClient,
    influxql: String,
    schema: &DFSchemaRef,
    output: Output,
) -> DfResult<LogicalPlan> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            Field::new(
                format!("c{index}"),
                field.data_type().clone(),
                field.is_nullable(),
            )
        })
        .collect();
    let query = Arc::new(InfluxQueryTable {
        client,
        influxql,
        schema: Arc::new(Schema::new(fields)),
        output,
    });
    let projection: Vec<Expr> = schema
        .iter()
        .enumerate()
        .map(|(index, (qualifier, field))| {
            Expr::Column(Column::new(Some(PUSHED), format!("c{index}")))
                .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    LogicalPlanBuilder::scan(PUSHED, provider_as_source(query), None)?
        .project(projection)?
        .build()
}

fn unaliased(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unaliased(&alias.expr),
        other => other,
    }
}

/// `GROUP BY time(…)` for `date_bin(interval, time[, origin])` or `date_trunc(unit, time)`
/// of a fixed width.
fn time_bucket(expr: &Expr, measurement: &crate::schema::MeasurementSchema) -> Option<String> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = expr else {
        return None;
    };
    let is_time = |arg: &Expr| matches!(arg, Expr::Column(c) if measurement.kind_of(&c.name) == Some(ColumnKind::Time));
    let (width, origin) = match (func.name(), args.as_slice()) {
        ("date_bin", [Expr::Literal(interval, _), time]) if is_time(time) => {
            (fixed_nanos(interval)?, 0)
        }
        ("date_bin", [Expr::Literal(interval, _), time, Expr::Literal(origin, _)])
            if is_time(time) =>
        {
            (fixed_nanos(interval)?, timestamp_nanos(origin)?)
        }
        ("date_trunc", [Expr::Literal(ScalarValue::Utf8(Some(unit)), _), time])
            if is_time(time) =>
        {
            const SECOND: i64 = 1_000_000_000;
            match unit.to_ascii_lowercase().as_str() {
                "second" => (SECOND, 0),
                "minute" => (60 * SECOND, 0),
                "hour" => (3600 * SECOND, 0),
                "day" => (86_400 * SECOND, 0),
                // Weeks start on Monday; 1970-01-01 was a Thursday.
                "week" => (7 * 86_400 * SECOND, 4 * 86_400 * SECOND),
                _ => return None,
            }
        }
        _ => return None,
    };
    (width > 0).then(|| format!("time({width}ns, {}ns)", origin.rem_euclid(width)))
}

/// An interval of fixed length in nanoseconds (no months).
fn fixed_nanos(interval: &ScalarValue) -> Option<i64> {
    match interval {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => (v.days as i64)
            .checked_mul(86_400_000_000_000)?
            .checked_add(v.nanoseconds),
        ScalarValue::IntervalDayTime(Some(v)) => (v.days as i64)
            .checked_mul(86_400_000_000_000)?
            .checked_add((v.milliseconds as i64).checked_mul(1_000_000)?),
        _ => None,
    }
}

/// The InfluxQL function for an aggregate of one field, the field, and whether it counts.
fn influx_aggregate(
    expr: &Expr,
    measurement: &crate::schema::MeasurementSchema,
) -> Option<(&'static str, String, bool)> {
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
        return None;
    };
    if params.distinct || params.filter.is_some() {
        return None;
    }
    // first_value / last_value ordered by time, ignoring NULLs, are InfluxQL's first / last
    // (the oldest / newest value of the field); nothing else may carry an order or a null
    // treatment.
    let by_time = match params.order_by.as_slice() {
        [] => None,
        [sort] => match &sort.expr {
            Expr::Column(c) if measurement.kind_of(&c.name) == Some(ColumnKind::Time) => {
                Some(sort.asc)
            }
            _ => return None,
        },
        _ => return None,
    };
    let ignore_nulls = matches!(
        params.null_treatment,
        Some(datafusion::logical_expr::expr::NullTreatment::IgnoreNulls)
    );
    let selector = match (func.name(), by_time, ignore_nulls) {
        ("first_value", Some(true), true) => Some("first"),
        ("last_value", Some(true), true) => Some("last"),
        (_, None, false) => None,
        _ => return None,
    };
    let (column, cast_to_float) = match params.args.as_slice() {
        [Expr::Column(column)] => (column, false),
        // avg of an integer field: DataFusion averages it as Float64, like InfluxQL's mean.
        [Expr::Cast(cast)] if *cast.field.data_type() == DataType::Float64 => {
            match cast.expr.as_ref() {
                Expr::Column(column) => (column, true),
                _ => return None,
            }
        }
        _ => return None,
    };
    if measurement.kind_of(&column.name) != Some(ColumnKind::Field) {
        return None;
    }
    let data_type = measurement
        .schema
        .field_with_name(&column.name)
        .ok()?
        .data_type();
    let numeric = matches!(
        data_type,
        DataType::Float64 | DataType::Int64 | DataType::UInt64
    );
    if cast_to_float
        && (func.name() != "avg" || !matches!(data_type, DataType::Int64 | DataType::UInt64))
    {
        return None;
    }
    let (function, counting) = match func.name() {
        _ if selector.is_some() => (selector?, false),
        "count" => ("count", true),
        "sum" if numeric => ("sum", false),
        "avg" if numeric => ("mean", false),
        "min" if numeric => ("min", false),
        "max" if numeric => ("max", false),
        _ => return None,
    };
    Some((function, column.name.clone(), counting))
}

/// The result of one pushed InfluxQL aggregate query, as a table.
#[derive(Debug)]
struct InfluxQueryTable {
    client: InfluxClient,
    influxql: String,
    schema: SchemaRef,
    output: Output,
}

#[async_trait::async_trait]
impl TableProvider for InfluxQueryTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch_size = state.config().options().execution.batch_size.get();
        let exec = InfluxScanExec::with_output(
            self.client.clone(),
            self.influxql.clone(),
            Arc::clone(&self.schema),
            self.output.clone(),
            batch_size,
        );
        match projection {
            None => Ok(Arc::new(exec)),
            Some(columns) => {
                let exprs = columns
                    .iter()
                    .map(|&index| {
                        let field = self.schema.field(index);
                        Ok((
                            Arc::new(datafusion::physical_expr::expressions::Column::new(
                                field.name(),
                                index,
                            )) as _,
                            field.name().clone(),
                        ))
                    })
                    .collect::<DfResult<Vec<_>>>()?;
                Ok(Arc::new(
                    datafusion::physical_plan::projection::ProjectionExec::try_new(
                        exprs,
                        Arc::new(exec),
                    )?,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_origins_are_read_as_timestamps() {
        let origin = ScalarValue::Utf8(Some("2025-01-01T00:00:00Z".into()));
        assert_eq!(timestamp_nanos(&origin), Some(1_735_689_600_000_000_000));
    }
}
