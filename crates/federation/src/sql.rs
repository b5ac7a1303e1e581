//! SQL generation: a logical sub-plan that one source can run, written as one SELECT in the
//! source's dialect.
//!
//! Every plan node becomes one SELECT over its inputs, each input a derived table with a fresh
//! alias (`t0`, `t1`, …) whose columns have unique names. Column references are resolved by
//! *position* in the input's schema, never by qualifier, so the qualifier and alias confusion
//! that breaks SQL written from optimized plans (see docs/lessons.md) cannot happen. Databases flatten
//! such derived tables; the text is longer, the plans are the same.
//!
//! ```text
//!   Projection(Sort(Filter(TableScan t)))
//!   ──▶ SELECT t1."a" AS "a", … FROM (SELECT t0."a" AS "a", … FROM (SELECT "a", … FROM "main"."t") AS t0
//!                                        WHERE …) AS t1 ORDER BY … NULLS LAST
//! ```
//!
//! A `Sort` under `Projection` / `Limit` is merged into the same SELECT so the outermost
//! statement carries the `ORDER BY` (an ordered derived table does not order its outer query).
//!
//! Any construct the dialect cannot express exactly makes [`Writer::plan`] return `None`: the
//! planner then keeps that node in DataFusion.

use crate::dialect::Dialect;
use crate::source::{RemoteTable, Source, SourceIdentity};
use crate::table::{FederatedTable, key_is_indexed, unqualified};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Column, DFSchema, JoinType, NullEquality};
use datafusion::logical_expr::expr::{
    AggregateFunction, Alias, InList, ScalarFunction, Sort as SortExpr,
};
use datafusion::logical_expr::expr::{
    Exists, InSubquery, WindowFunction, WindowFunctionDefinition,
};
use datafusion::logical_expr::logical_plan::{
    Aggregate, Distinct, FetchType, Filter, Join, Limit, Projection, SkipType, Sort, TableScan,
    Union, Window,
};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, Subquery};
use datafusion::logical_expr::{WindowFrame, WindowFrameBound, WindowFrameUnits};
use std::cell::Cell;

/// A complete SELECT statement and the names of its result columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub sql: String,
    /// Unique names of the result columns, in order.
    pub columns: Vec<String>,
    /// Per result column: a pass-through of an opaque source column (see `RemoteTable::opaque`).
    pub opaque: Vec<bool>,
}

/// The result columns of a scan's SQL: their names there, and which pass opaque columns
/// through (no condition may touch those).
#[derive(Debug, Clone)]
pub struct OutputColumns {
    pub names: Vec<String>,
    pub opaque: Vec<bool>,
}

/// Writes SQL for one source, in its dialect.
pub struct Writer<'a> {
    dialect: &'a dyn Dialect,
    /// Only tables of sources with this identity may appear in the SQL.
    identity: &'a SourceIdentity,
    next_alias: Cell<usize>,
}

/// Where the columns an expression refers to come from.
enum Scope<'a> {
    /// A base table: columns are referenced by their own (quoted) names.
    Table {
        schema: &'a DFSchema,
        opaque: &'a [bool],
    },
    /// Derived tables: each input schema, its alias and its query.
    Derived {
        inputs: Vec<(&'a DFSchema, String, &'a Query)>,
        merged: DFSchema,
    },
}

impl Scope<'_> {
    fn schema(&self) -> &DFSchema {
        match self {
            Scope::Table { schema, .. } => schema,
            Scope::Derived { merged, .. } => merged,
        }
    }
}

impl<'a> Writer<'a> {
    pub fn new(source: &'a dyn Source) -> Self {
        Self {
            dialect: source.dialect(),
            identity: source.identity(),
            next_alias: Cell::new(0),
        }
    }

    fn alias(&self) -> String {
        let n = self.next_alias.get();
        self.next_alias.set(n + 1);
        format!("t{n}")
    }

    fn quote(&self, identifier: &str) -> String {
        self.dialect.quote_identifier(identifier)
    }

    /// SQL for `plan`, or `None` when some part of it cannot be written for this dialect or
    /// reads a table outside this source's database.
    pub fn plan(&self, plan: &LogicalPlan) -> Option<Query> {
        let query = match plan {
            LogicalPlan::TableScan(scan) => self.table_scan(scan)?,
            LogicalPlan::Projection(p) => match p.input.as_ref() {
                LogicalPlan::Sort(sort) => self.sorted_select(Some(p), sort, None)?,
                _ => self.projection(p)?,
            },
            LogicalPlan::Filter(f) => self.filter(f)?,
            LogicalPlan::Aggregate(a) => self.aggregate(a)?,
            LogicalPlan::Sort(sort) => self.sorted_select(None, sort, None)?,
            LogicalPlan::Limit(limit) => self.limit(limit)?,
            LogicalPlan::Join(join) => self.join(join)?,
            LogicalPlan::SubqueryAlias(s) => self.plan(&s.input)?,
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let text = |f: &FieldRef| {
                    matches!(
                        f.data_type(),
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    )
                };
                if !self.dialect.distinct_text_is_exact()
                    && input.schema().fields().iter().any(text)
                {
                    return None;
                }
                let inner = self.plan(input)?;
                let alias = self.alias();
                Query {
                    sql: format!("SELECT DISTINCT * FROM ({}) AS {alias}", inner.sql),
                    columns: inner.columns.clone(),
                    opaque: inner.opaque.clone(),
                }
            }
            LogicalPlan::Union(union) => self.union(union)?,
            LogicalPlan::Window(window) => self.window(window)?,
            _ => return None,
        };
        // The connector must be able to decode every result column.
        plan.schema()
            .fields()
            .iter()
            .all(|f| self.dialect.can_return(f.data_type()))
            .then_some(query)
    }

    fn table_scan(&self, scan: &TableScan) -> Option<Query> {
        let table = FederatedTable::of_scan(scan)?;
        if table.source().identity() != self.identity {
            return None;
        }
        let filters: Vec<Expr> = scan.filters.iter().map(unqualified).collect();
        self.base_select(
            table.remote(),
            scan.projection.as_deref(),
            &filters,
            scan.fetch,
        )
    }

    /// `SELECT <columns> FROM <table> [WHERE <filters>] [LIMIT n]`, or `None` when a filter
    /// cannot be written. Filters refer to the table's columns without qualifier.
    pub fn base_select(
        &self,
        remote: &RemoteTable,
        projection: Option<&[usize]>,
        filters: &[Expr],
        fetch: Option<usize>,
    ) -> Option<Query> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.to_vec(),
            None => (0..remote.arrow_schema.fields().len()).collect(),
        };
        let mut select = Vec::new();
        let mut columns = Vec::new();
        for &i in &indices {
            let name = remote.arrow_schema.field(i).name();
            select.push(self.quote(name));
            columns.push(name.clone());
        }
        if select.is_empty() {
            // No column is needed, every row is (`count(*)`): select a constant.
            select.push("1".into());
        }
        let mut sql = format!(
            "SELECT {} FROM {}.{}",
            select.join(", "),
            self.quote(&remote.schema),
            self.quote(&remote.name)
        );
        let conditions = filters
            .iter()
            .map(|f| self.table_filter(remote, f))
            .collect::<Option<Vec<_>>>()?;
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&self.dialect.limit(fetch, 0));
        let opaque = indices.iter().map(|&i| remote.opaque[i]).collect();
        Some(Query {
            sql,
            columns,
            opaque,
        })
    }

    /// SQL for a filter over `remote`'s columns (unqualified), if it can be written exactly.
    pub fn table_filter(&self, remote: &RemoteTable, filter: &Expr) -> Option<String> {
        let schema = DFSchema::try_from(remote.arrow_schema.as_ref().clone()).ok()?;
        self.expr(
            filter,
            &Scope::Table {
                schema: &schema,
                opaque: &remote.opaque,
            },
        )
    }

    /// One input as a derived table: the FROM text, its alias and the scope its columns
    /// resolve in.
    fn derived<'q>(&self, input: &'q LogicalPlan, query: &'q Query) -> (String, String, Scope<'q>) {
        let alias = self.alias();
        let from = format!("({}) AS {alias}", query.sql);
        let scope = Scope::Derived {
            inputs: vec![(input.schema().as_ref(), alias.clone(), query)],
            merged: input.schema().as_ref().clone(),
        };
        (from, alias, scope)
    }

    /// `SELECT <exprs> FROM (input)` with unique output names taken from `schema`.
    fn select_list(
        &self,
        exprs: &[Expr],
        output: &DFSchema,
        scope: &Scope,
    ) -> Option<(String, Vec<String>, Vec<bool>)> {
        let names = unique_names(output);
        let mut items = Vec::new();
        let mut opaque = Vec::new();
        for (expr, name) in exprs.iter().zip(&names) {
            let (sql, passes_opaque) = self.output_expr(expr, scope)?;
            items.push(format!("{sql} AS {}", self.quote(name)));
            opaque.push(passes_opaque);
        }
        if items.is_empty() {
            // No column is needed, every row is (e.g. under `count(*)`).
            items.push("1 AS \"one\"".into());
        }
        Some((items.join(", "), names, opaque))
    }

    /// An output expression: a bare column may pass an opaque column through; nothing else may
    /// touch one.
    fn output_expr(&self, expr: &Expr, scope: &Scope) -> Option<(String, bool)> {
        match expr {
            Expr::Alias(Alias { expr, .. }) => self.output_expr(expr, scope),
            Expr::Column(c) => {
                let (sql, opaque) = self.column(c, scope)?;
                Some((sql, opaque))
            }
            _ => Some((self.expr(expr, scope)?, false)),
        }
    }

    fn projection(&self, p: &Projection) -> Option<Query> {
        let inner = self.plan(&p.input)?;
        let (from, _, scope) = self.derived(&p.input, &inner);
        let (list, columns, opaque) = self.select_list(&p.expr, &p.schema, &scope)?;
        Some(Query {
            sql: format!("SELECT {list} FROM {from}"),
            columns,
            opaque,
        })
    }

    fn filter(&self, f: &Filter) -> Option<Query> {
        let inner = self.plan(&f.input)?;
        let (from, alias, scope) = self.derived(&f.input, &inner);
        let predicate = self.expr(&f.predicate, &scope)?;
        let list = self.pass_through(&alias, &inner);
        Some(Query {
            sql: format!("SELECT {list} FROM {from} WHERE {predicate}"),
            columns: inner.columns.clone(),
            opaque: inner.opaque.clone(),
        })
    }

    /// `alias."c0" AS "c0", …`: every column of `query`, unchanged.
    fn pass_through(&self, alias: &str, query: &Query) -> String {
        if query.columns.is_empty() {
            return "1 AS \"one\"".into();
        }
        query
            .columns
            .iter()
            .map(|c| format!("{alias}.{} AS {}", self.quote(c), self.quote(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn aggregate(&self, a: &Aggregate) -> Option<Query> {
        if a.group_expr
            .iter()
            .any(|e| matches!(e, Expr::GroupingSet(_)))
        {
            return None;
        }
        let inner = self.plan(&a.input)?;
        let (from, _, scope) = self.derived(&a.input, &inner);
        let exprs: Vec<Expr> = a.group_expr.iter().chain(&a.aggr_expr).cloned().collect();
        let (list, columns, _) = self.select_list(&exprs, &a.schema, &scope)?;
        let mut sql = format!("SELECT {list} FROM {from}");
        if !a.group_expr.is_empty() {
            let keys = a
                .group_expr
                .iter()
                .map(|e| self.key(e, &scope))
                .collect::<Option<Vec<_>>>()?;
            sql.push_str(&format!(" GROUP BY {}", keys.join(", ")));
        }
        let opaque = vec![false; columns.len()];
        Some(Query {
            sql,
            columns,
            opaque,
        })
    }

    /// `[Limit] [Projection] Sort` as one SELECT whose outermost clause is the ORDER BY.
    fn sorted_select(
        &self,
        projection: Option<&Projection>,
        sort: &Sort,
        limit: Option<(Option<usize>, usize)>,
    ) -> Option<Query> {
        let inner = self.plan(&sort.input)?;
        let (from, alias, scope) = self.derived(&sort.input, &inner);
        let (list, columns, opaque) = match projection {
            Some(p) => self.select_list(&p.expr, &p.schema, &scope)?,
            None => (
                self.pass_through(&alias, &inner),
                inner.columns.clone(),
                inner.opaque.clone(),
            ),
        };
        let keys = self.order_keys(&sort.expr, &scope)?;
        let mut sql = format!("SELECT {list} FROM {from} ORDER BY {}", keys.join(", "));
        let (fetch, skip) = match limit {
            Some((fetch, skip)) => (
                min_fetch(fetch.map(|f| f + skip), sort.fetch).map(|f| f.saturating_sub(skip)),
                skip,
            ),
            None => (sort.fetch, 0),
        };
        sql.push_str(&self.dialect.limit(fetch, skip));
        Some(Query {
            sql,
            columns,
            opaque,
        })
    }

    fn limit(&self, limit: &Limit) -> Option<Query> {
        let SkipType::Literal(skip) = limit.get_skip_type().ok()? else {
            return None;
        };
        let FetchType::Literal(fetch) = limit.get_fetch_type().ok()? else {
            return None;
        };
        match limit.input.as_ref() {
            LogicalPlan::Sort(sort) => return self.sorted_select(None, sort, Some((fetch, skip))),
            LogicalPlan::Projection(p) => {
                if let LogicalPlan::Sort(sort) = p.input.as_ref() {
                    return self.sorted_select(Some(p), sort, Some((fetch, skip)));
                }
            }
            _ => {}
        }
        let inner = self.plan(&limit.input)?;
        let (from, alias, _) = self.derived(&limit.input, &inner);
        let list = self.pass_through(&alias, &inner);
        Some(Query {
            sql: format!(
                "SELECT {list} FROM {from}{}",
                self.dialect.limit(fetch, skip)
            ),
            columns: inner.columns.clone(),
            opaque: inner.opaque.clone(),
        })
    }

    /// `SELECT <input columns>, <window expressions> FROM (input)`.
    fn window(&self, window: &Window) -> Option<Query> {
        if !self.dialect.supports_windows() {
            return None;
        }
        let inner = self.plan(&window.input)?;
        let (from, alias, scope) = self.derived(&window.input, &inner);
        let names = unique_names(&window.schema);
        let mut items: Vec<String> = inner
            .columns
            .iter()
            .zip(&names)
            .map(|(c, n)| format!("{alias}.{} AS {}", self.quote(c), self.quote(n)))
            .collect();
        for (expr, name) in window.window_expr.iter().zip(&names[inner.columns.len()..]) {
            items.push(format!(
                "{} AS {}",
                self.expr(expr, &scope)?,
                self.quote(name)
            ));
        }
        let mut opaque = inner.opaque.clone();
        opaque.resize(names.len(), false);
        Some(Query {
            sql: format!("SELECT {} FROM {from}", select_items(items)),
            columns: names,
            opaque,
        })
    }

    /// `<function>(…) OVER (PARTITION BY … ORDER BY … <frame>)`.
    fn window_call(&self, function: &WindowFunction, scope: &Scope) -> Option<String> {
        let params = &function.params;
        if params.filter.is_some() || params.null_treatment.is_some() || params.distinct {
            return None;
        }
        let (args, types) = self.arguments(&params.args, scope)?;
        let (call, framed) = match &function.fun {
            WindowFunctionDefinition::AggregateUDF(f) => (
                self.dialect
                    .aggregate_function(f.name(), false, &args, &types)?,
                true,
            ),
            WindowFunctionDefinition::WindowUDF(f) => {
                let framed = matches!(f.name(), "first_value" | "last_value" | "nth_value");
                (
                    self.dialect.window_function(f.name(), &args, &types)?,
                    framed,
                )
            }
        };
        let mut over = Vec::new();
        if !params.partition_by.is_empty() {
            let keys = params
                .partition_by
                .iter()
                .map(|e| self.key(e, scope))
                .collect::<Option<Vec<_>>>()?;
            over.push(format!("PARTITION BY {}", keys.join(", ")));
        }
        if !params.order_by.is_empty() {
            let keys = self.order_keys(&params.order_by, scope)?;
            over.push(format!("ORDER BY {}", keys.join(", ")));
        }
        if framed {
            over.push(self.frame(&params.window_frame)?);
        }
        Some(format!("{call} OVER ({})", over.join(" ")))
    }

    /// A window frame with explicit bounds; offsets only as plain integers of ROWS frames.
    fn frame(&self, frame: &WindowFrame) -> Option<String> {
        let bound = |b: &WindowFrameBound| -> Option<String> {
            Some(match b {
                WindowFrameBound::CurrentRow => "CURRENT ROW".into(),
                WindowFrameBound::Preceding(v) if v.is_null() => "UNBOUNDED PRECEDING".into(),
                WindowFrameBound::Following(v) if v.is_null() => "UNBOUNDED FOLLOWING".into(),
                WindowFrameBound::Preceding(v) | WindowFrameBound::Following(v) => {
                    if frame.units != WindowFrameUnits::Rows || !v.data_type().is_integer() {
                        return None;
                    }
                    let direction = if matches!(b, WindowFrameBound::Preceding(_)) {
                        "PRECEDING"
                    } else {
                        "FOLLOWING"
                    };
                    format!("{v} {direction}")
                }
            })
        };
        Some(format!(
            "{} BETWEEN {} AND {}",
            frame.units,
            bound(&frame.start_bound)?,
            bound(&frame.end_bound)?
        ))
    }

    fn union(&self, union: &Union) -> Option<Query> {
        let mut parts = Vec::new();
        let mut first: Option<Query> = None;
        for input in &union.inputs {
            let query = self.plan(input)?;
            let alias = self.alias();
            parts.push(format!(
                "SELECT {} FROM ({}) AS {alias}",
                self.pass_through(&alias, &query),
                query.sql
            ));
            first.get_or_insert(query);
        }
        let first = first?;
        let names = unique_names(&union.schema);
        let alias = self.alias();
        let renamed = first
            .columns
            .iter()
            .zip(&names)
            .map(|(c, n)| format!("{alias}.{} AS {}", self.quote(c), self.quote(n)))
            .collect::<Vec<_>>();
        let renamed = select_items(renamed);
        Some(Query {
            sql: format!(
                "SELECT {renamed} FROM ({}) AS {alias}",
                parts.join(" UNION ALL ")
            ),
            columns: names,
            opaque: vec![false; first.columns.len()],
        })
    }

    fn join(&self, join: &Join) -> Option<Query> {
        if !self.dialect.supports_join(join.join_type) {
            return None;
        }
        let left = self.plan(&join.left)?;
        let right = self.plan(&join.right)?;
        let (la, ra) = (self.alias(), self.alias());
        let merged = join
            .left
            .schema()
            .as_ref()
            .clone()
            .join(join.right.schema())
            .ok()?;
        let scope = Scope::Derived {
            inputs: vec![
                (join.left.schema().as_ref(), la.clone(), &left),
                (join.right.schema().as_ref(), ra.clone(), &right),
            ],
            merged,
        };
        if self.dialect.join_needs_index() && !self.index_serves(join) {
            return None;
        }
        let mut conditions = Vec::new();
        for (l, r) in &join.on {
            let (l, r) = (self.key(l, &scope)?, self.key(r, &scope)?);
            conditions.push(match join.null_equality {
                NullEquality::NullEqualsNothing => format!("({l} = {r})"),
                NullEquality::NullEqualsNull => self.dialect.null_safe_equal(&l, &r),
            });
        }
        if let Some(filter) = &join.filter {
            conditions.push(self.expr(filter, &scope)?);
        }
        let on = if conditions.is_empty() {
            "1 = 1".to_string()
        } else {
            conditions.join(" AND ")
        };
        let (lf, rf) = (
            format!("({}) AS {la}", left.sql),
            format!("({}) AS {ra}", right.sql),
        );
        let sql = match join.join_type {
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
                let keyword = match join.join_type {
                    JoinType::Inner => "INNER JOIN",
                    JoinType::Left => "LEFT JOIN",
                    JoinType::Right => "RIGHT JOIN",
                    _ => "FULL JOIN",
                };
                let names = unique_names(&join.schema);
                let sources = left
                    .columns
                    .iter()
                    .map(|c| (&la, c))
                    .chain(right.columns.iter().map(|c| (&ra, c)));
                let list: Vec<String> = sources
                    .zip(&names)
                    .map(|((alias, c), n)| {
                        format!("{alias}.{} AS {}", self.quote(c), self.quote(n))
                    })
                    .collect();
                let opaque = left.opaque.iter().chain(&right.opaque).copied().collect();
                return Some(Query {
                    sql: format!(
                        "SELECT {} FROM {lf} {keyword} {rf} ON {on}",
                        select_items(list)
                    ),
                    columns: names,
                    opaque,
                });
            }
            JoinType::LeftSemi | JoinType::LeftAnti => {
                let not = if join.join_type == JoinType::LeftAnti {
                    "NOT "
                } else {
                    ""
                };
                // `x [NOT] IN (subquery)` where the dialect plans it better than EXISTS: for a
                // semi join always equal; for an anti join only when neither key can be NULL.
                let in_form = match join.on.as_slice() {
                    [(l, r)] if join.filter.is_none() => {
                        let nullable =
                            |e: &Expr, schema: &DFSchema| e.nullable(schema).unwrap_or(true);
                        self.dialect.prefers_in_subqueries()
                            && (join.join_type == JoinType::LeftSemi
                                || !nullable(l, join.left.schema())
                                    && !nullable(r, join.right.schema()))
                    }
                    _ => false,
                };
                if join.null_aware || in_form {
                    // Null-aware: `x NOT IN (subquery)`, where NULLs make the whole predicate
                    // unknown, which only NOT IN itself expresses.
                    let [(l, r)] = join.on.as_slice() else {
                        return None;
                    };
                    if join.filter.is_some() {
                        return None;
                    }
                    let (l, r) = (self.key(l, &scope)?, self.key(r, &scope)?);
                    format!(
                        "SELECT {} FROM {lf} WHERE {l} {not}IN (SELECT {r} FROM {rf})",
                        self.pass_through(&la, &left)
                    )
                } else {
                    format!(
                        "SELECT {} FROM {lf} WHERE {not}EXISTS (SELECT 1 FROM {rf} WHERE {on})",
                        self.pass_through(&la, &left)
                    )
                }
            }
            JoinType::RightSemi | JoinType::RightAnti => {
                if join.null_aware {
                    return None;
                }
                let not = if join.join_type == JoinType::RightAnti {
                    "NOT "
                } else {
                    ""
                };
                let sql = format!(
                    "SELECT {} FROM {rf} WHERE {not}EXISTS (SELECT 1 FROM {lf} WHERE {on})",
                    self.pass_through(&ra, &right)
                );
                return Some(Query {
                    sql,
                    columns: right.columns.clone(),
                    opaque: right.opaque.clone(),
                });
            }
            _ => return None,
        };
        Some(Query {
            sql,
            columns: left.columns.clone(),
            opaque: left.opaque.clone(),
        })
    }

    /// Whether an index can serve `join` (see [`Dialect::join_needs_index`]).
    fn index_serves(&self, join: &Join) -> bool {
        if join.on.is_empty() {
            // No keys: every engine runs a nested loop.
            return true;
        }
        let left_keys = || join.on.iter().any(|(l, _)| key_is_indexed(&join.left, l));
        let right_keys = || join.on.iter().any(|(_, r)| key_is_indexed(&join.right, r));
        match join.join_type {
            JoinType::Inner => left_keys() || right_keys(),
            JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti => {
                // Semi and anti joins written `IN (subquery)` are materialized and hashed.
                let in_form = matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
                    && join.on.len() == 1
                    && join.filter.is_none();
                in_form || right_keys()
            }
            JoinType::Right | JoinType::RightSemi | JoinType::RightAnti => left_keys(),
            _ => false,
        }
    }

    /// A column reference and whether it is opaque.
    fn column(&self, c: &Column, scope: &Scope) -> Option<(String, bool)> {
        match scope {
            Scope::Table { schema, opaque } => {
                let i = schema.maybe_index_of_column(c)?;
                Some((self.quote(&c.name), opaque[i]))
            }
            Scope::Derived { inputs, .. } => {
                let mut found = None;
                for (schema, alias, query) in inputs {
                    if let Some(i) = schema.maybe_index_of_column(c) {
                        if found.is_some() {
                            return None; // ambiguous: refuse rather than guess
                        }
                        let name = query.columns.get(i)?;
                        found = Some((format!("{alias}.{}", self.quote(name)), query.opaque[i]));
                    }
                }
                found
            }
        }
    }

    /// An expression used in a computation (never an opaque column).
    fn expr(&self, expr: &Expr, scope: &Scope) -> Option<String> {
        let schema = scope.schema();
        let ty = |e: &Expr| e.get_type(schema).ok();
        Some(match expr {
            Expr::Alias(Alias { expr, .. }) => self.expr(expr, scope)?,
            Expr::Column(c) => match self.column(c, scope)? {
                (sql, false) => sql,
                (_, true) => return None,
            },
            Expr::Literal(value, _) => self.dialect.literal(value)?,
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (left_type, right_type) = (ty(left)?, ty(right)?);
                let symbol = self.dialect.binary_operator(op, &left_type, &right_type)?;
                let (mut l, mut r) = (self.expr(left, scope)?, self.expr(right, scope)?);
                match op {
                    Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                        l = self.dialect.collate(&l, &left_type);
                        r = self.dialect.collate(&r, &right_type);
                    }
                    Operator::Eq
                    | Operator::NotEq
                    | Operator::IsDistinctFrom
                    | Operator::IsNotDistinctFrom => {
                        l = self.dialect.exact_text(&l, &left_type);
                        r = self.dialect.exact_text(&r, &right_type);
                    }
                    _ => {}
                }
                format!("({l} {symbol} {r})")
            }
            Expr::Not(e) => format!("(NOT {})", self.expr(e, scope)?),
            Expr::IsNull(e) => format!("({} IS NULL)", self.expr(e, scope)?),
            Expr::IsNotNull(e) => format!("({} IS NOT NULL)", self.expr(e, scope)?),
            Expr::Negative(e) => format!("(- {})", self.expr(e, scope)?),
            Expr::Between(b) => {
                let ordered = |e: &Expr| Some(self.dialect.collate(&self.expr(e, scope)?, &ty(e)?));
                format!(
                    "({} {}BETWEEN {} AND {})",
                    ordered(&b.expr)?,
                    if b.negated { "NOT " } else { "" },
                    ordered(&b.low)?,
                    ordered(&b.high)?
                )
            }
            Expr::InList(InList {
                expr,
                list,
                negated,
            }) => {
                if list.is_empty() {
                    return None;
                }
                let items = list
                    .iter()
                    .map(|e| self.key(e, scope))
                    .collect::<Option<Vec<_>>>()?;
                format!(
                    "({} {}IN ({}))",
                    self.key(expr, scope)?,
                    if *negated { "NOT " } else { "" },
                    items.join(", ")
                )
            }
            Expr::Like(like) => {
                if !self.dialect.supports_like(like.case_insensitive) {
                    return None;
                }
                let escape = like.escape_char.unwrap_or('\\');
                format!(
                    "({} {}{} {} ESCAPE {})",
                    self.key(&like.expr, scope)?,
                    if like.negated { "NOT " } else { "" },
                    if like.case_insensitive {
                        "ILIKE"
                    } else {
                        "LIKE"
                    },
                    self.expr(&like.pattern, scope)?,
                    self.dialect.quote_string(&escape.to_string())
                )
            }
            Expr::Case(case) => {
                let mut sql = String::from("CASE");
                if let Some(e) = &case.expr {
                    sql.push(' ');
                    sql.push_str(&self.expr(e, scope)?);
                }
                for (when, then) in &case.when_then_expr {
                    sql.push_str(&format!(
                        " WHEN {} THEN {}",
                        self.expr(when, scope)?,
                        self.expr(then, scope)?
                    ));
                }
                if let Some(e) = &case.else_expr {
                    sql.push_str(&format!(" ELSE {}", self.expr(e, scope)?));
                }
                sql.push_str(" END");
                sql
            }
            Expr::Cast(cast) => {
                let inner = self.expr(&cast.expr, scope)?;
                self.dialect
                    .cast(&inner, &ty(&cast.expr)?, cast.field.data_type())?
            }
            Expr::ScalarFunction(ScalarFunction { func, args }) => {
                let (written, types) = self.arguments(args, scope)?;
                self.dialect
                    .scalar_function(func.name(), &written, &types)?
            }
            Expr::AggregateFunction(AggregateFunction { func, params }) => {
                if !params.order_by.is_empty() || params.null_treatment.is_some() {
                    return None;
                }
                let (written, types) = self.arguments(&params.args, scope)?;
                let call = self.dialect.aggregate_function(
                    func.name(),
                    params.distinct,
                    &written,
                    &types,
                )?;
                match &params.filter {
                    Some(filter) => format!("{call} FILTER (WHERE {})", self.expr(filter, scope)?),
                    None => call,
                }
            }
            Expr::WindowFunction(function) => self.window_call(function, scope)?,
            // Uncorrelated subqueries over the same database are written inline.
            Expr::ScalarSubquery(subquery) => format!("({})", self.subquery(subquery)?),
            Expr::InSubquery(InSubquery {
                expr,
                subquery,
                negated,
            }) => format!(
                "({} {}IN ({}))",
                self.key(expr, scope)?,
                if *negated { "NOT " } else { "" },
                self.subquery(subquery)?
            ),
            Expr::Exists(Exists { subquery, negated }) => {
                format!(
                    "({}EXISTS ({}))",
                    if *negated { "NOT " } else { "" },
                    self.subquery(subquery)?
                )
            }
            _ => return None,
        })
    }

    /// An expression compared for equality (a key): text made to compare as DataFusion does.
    fn key(&self, expr: &Expr, scope: &Scope) -> Option<String> {
        let sql = self.expr(expr, scope)?;
        Some(
            self.dialect
                .exact_text(&sql, &expr.get_type(scope.schema()).ok()?),
        )
    }

    /// Function arguments as SQL, with their types (dialects decide by type).
    fn arguments(&self, args: &[Expr], scope: &Scope) -> Option<(Vec<String>, Vec<DataType>)> {
        let written = args
            .iter()
            .map(|a| self.expr(a, scope))
            .collect::<Option<Vec<_>>>()?;
        let types = args
            .iter()
            .map(|a| a.get_type(scope.schema()).ok())
            .collect::<Option<Vec<_>>>()?;
        Some((written, types))
    }

    /// Sort keys, each explicit about direction and NULLs.
    fn order_keys(&self, keys: &[SortExpr], scope: &Scope) -> Option<Vec<String>> {
        keys.iter()
            .map(|key| {
                let expr = self.expr(&key.expr, scope)?;
                let expr = self
                    .dialect
                    .collate(&expr, &key.expr.get_type(scope.schema()).ok()?);
                Some(self.dialect.order_by(&expr, key.asc, key.nulls_first))
            })
            .collect()
    }

    /// SQL of an uncorrelated one-column subquery.
    fn subquery(&self, subquery: &Subquery) -> Option<String> {
        if !subquery.outer_ref_columns.is_empty() || subquery.subquery.schema().fields().len() != 1
        {
            return None;
        }
        Some(self.plan(&subquery.subquery)?.sql)
    }
}

/// A select list; a constant when no column is needed (every row still is, e.g. for `count(*)`).
fn select_items(list: Vec<String>) -> String {
    if list.is_empty() {
        "1 AS \"one\"".to_string()
    } else {
        list.join(", ")
    }
}

fn min_fetch(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Output column names: the field names, made unique and kept short; names that are not plain
/// identifiers (expressions) become `c<position>`.
fn unique_names(schema: &DFSchema) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        let plain = !name.is_empty()
            && name.len() <= 48
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        let mut candidate = if plain { name.clone() } else { format!("c{i}") };
        if names.iter().any(|n| n.eq_ignore_ascii_case(&candidate)) {
            candidate = format!("{candidate}_{i}");
        }
        names.push(candidate);
    }
    names
}
