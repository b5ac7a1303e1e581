//! SQL generation: a logical sub-plan that one source can run, written as one SELECT in the
//! source's dialect.
//!
//! The statement is built bottom-up ([`select::Select`]): each plan node adds its clause to
//! the SELECT of its input when SQL's clause order allows and makes that SELECT a derived
//! table (`(…) AS t3`) only when it does not — a filter above a LIMIT, a join of an
//! aggregate, an aggregate of an aggregate. Column references resolve by *position* in the
//! input's schema to the expression computing the column, never by qualifier, so the
//! qualifier and alias confusion that breaks SQL written from optimized plans (see
//! docs/lessons.md) cannot happen. Every table and derived table gets a fresh alias (`t0`,
//! `t1`, …) and every reference is qualified with it.
//!
//! ```text
//!   Sort(Projection(Filter(Join(Scan a, Scan b))))
//!   ──▶ SELECT t0."x", (t1."y" * 2) AS "y2" FROM "main"."a" AS t0 INNER JOIN "main"."b" AS t1
//!         ON (t0."k" = t1."k") WHERE (t1."y" > 1) ORDER BY t0."x" ASC NULLS LAST
//! ```
//!
//! Any construct the dialect cannot express exactly makes [`Writer::plan`] return `None`: the
//! planner then keeps that node in DataFusion.

mod expr;
mod join;
mod select;

use crate::dialect::Dialect;
use crate::source::{RemoteTable, Source, SourceIdentity};
use crate::table::{FederatedTable, unqualified};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::DFSchema;
use datafusion::logical_expr::expr::Alias;
use datafusion::logical_expr::logical_plan::{
    Aggregate, Distinct, FetchType, Filter, Limit, Projection, SkipType, Sort, TableScan, Union,
    Window,
};
use datafusion::logical_expr::{Expr, LogicalPlan};
use expr::Scope;
use select::{Item, Select};
use std::cell::Cell;
use std::rc::Rc;

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

/// A sub-plan written as SQL and kept to be built on: [`Writer::compose`] writes a node over
/// written inputs without writing them again, [`Writer::query`] gives the statement.
#[derive(Debug, Clone)]
pub struct Written(Select);

/// Writes SQL for one source, in its dialect.
pub struct Writer<'a> {
    dialect: &'a dyn Dialect,
    /// Only tables of sources with this identity may appear in the SQL.
    identity: &'a SourceIdentity,
    /// The next alias's number, shared by writers whose SQL may end up in one statement.
    next_alias: Rc<Cell<usize>>,
    /// Whether a semi join is written `x IN (SELECT y …)` although the dialect prefers
    /// `EXISTS` (the cost model found its list the better driver: [`Writer::listing`]).
    semi_joins_by_list: bool,
}

impl<'a> Writer<'a> {
    pub fn new(source: &'a dyn Source) -> Self {
        Self::sharing(source, &Rc::default())
    }

    /// A writer numbering its aliases with `aliases`, so that what it writes can be combined
    /// with what other writers sharing them wrote.
    pub fn sharing(source: &'a dyn Source, aliases: &Rc<Cell<usize>>) -> Self {
        Self {
            dialect: source.dialect(),
            identity: source.identity(),
            next_alias: Rc::clone(aliases),
            semi_joins_by_list: false,
        }
    }

    /// The writer, writing a semi join as `x IN (SELECT y …)` when `by_list` (see
    /// [`crate::cost::semi_join_by_list`]).
    pub fn listing(mut self, by_list: bool) -> Self {
        self.semi_joins_by_list = by_list;
        self
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
        Some(self.query(&self.written(plan)?))
    }

    /// `plan` written, to be built on.
    pub fn written(&self, plan: &LogicalPlan) -> Option<Written> {
        self.select(plan).map(Written)
    }

    /// The root node of `plan` written over its inputs, already written (in order).
    pub fn compose(&self, plan: &LogicalPlan, inputs: Vec<Written>) -> Option<Written> {
        let inputs = inputs.into_iter().map(|w| w.0).collect();
        self.node(plan, inputs).map(Written)
    }

    /// The statement of what was written.
    pub fn query(&self, written: &Written) -> Query {
        Query {
            sql: self.render(&written.0),
            columns: written.0.columns(),
            opaque: written.0.opaque(),
        }
    }

    /// The SELECT computing `plan`.
    fn select(&self, plan: &LogicalPlan) -> Option<Select> {
        let writes = matches!(
            plan,
            LogicalPlan::TableScan(_)
                | LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Limit(_)
                | LogicalPlan::Join(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Distinct(Distinct::All(_))
                | LogicalPlan::Union(_)
                | LogicalPlan::Window(_)
        );
        if !writes {
            return None;
        }
        let inputs = plan
            .inputs()
            .into_iter()
            .map(|input| self.select(input))
            .collect::<Option<Vec<_>>>()?;
        self.node(plan, inputs)
    }

    /// The SELECT computing `plan`'s root over the SELECTs of its inputs.
    fn node(&self, plan: &LogicalPlan, inputs: Vec<Select>) -> Option<Select> {
        let mut next = inputs.into_iter();
        let mut input = || next.next();
        let select = match plan {
            LogicalPlan::TableScan(scan) => self.table_scan(scan)?,
            LogicalPlan::Projection(p) => self.projection(p, input()?)?,
            LogicalPlan::Filter(f) => self.filter(f, input()?)?,
            LogicalPlan::Aggregate(a) => self.aggregate(a, input()?)?,
            LogicalPlan::Sort(sort) => self.sort(sort, input()?)?,
            LogicalPlan::Limit(limit) => self.limit(limit, input()?)?,
            LogicalPlan::Join(join) => {
                let (left, right) = (input()?, input()?);
                self.join(join, left, right)?
            }
            LogicalPlan::SubqueryAlias(_) => input()?,
            LogicalPlan::Distinct(Distinct::All(i)) => self.distinct(i, input()?)?,
            LogicalPlan::Window(window) => self.window(window, input()?)?,
            LogicalPlan::Union(union) => {
                let inputs: Vec<Select> = std::iter::from_fn(input).collect();
                self.union(union, inputs)?
            }
            _ => return None,
        };
        // The connector must be able to decode every result column.
        plan.schema()
            .fields()
            .iter()
            .all(|f| self.dialect.can_return(f.data_type()))
            .then_some(select)
    }

    fn table_scan(&self, scan: &TableScan) -> Option<Select> {
        let table = FederatedTable::of_scan(scan)?;
        if table.source().identity() != self.identity {
            return None;
        }
        let remote = table.remote();
        let alias = self.alias();
        let (fields, opaque) = filter_columns(remote);
        let all: Vec<Item> = fields
            .iter()
            .zip(&opaque)
            .map(|(field, &opaque)| Item {
                sql: format!("{alias}.{}", self.quote(field.name())),
                name: field.name().clone(),
                opaque,
                constant: false,
                column: true,
            })
            .collect();
        // Filters refer to the table's columns without qualifier.
        let schema = DFSchema::try_from(Schema::new(fields)).ok()?;
        let scope = Scope::of(&schema, &all);
        // A hidden split key is for filters only; the table's own columns are its outputs.
        let all = &all[..remote.arrow_schema.fields().len()];
        let filters = scan
            .filters
            .iter()
            .map(|f| self.expr(&unqualified(f), &scope))
            .collect::<Option<Vec<_>>>()?;
        let items = match &scan.projection {
            Some(projection) => projection
                .iter()
                .map(|&i| all.get(i).cloned())
                .collect::<Option<Vec<_>>>()?,
            None => all.to_vec(),
        };
        let from = format!(
            "{}.{} AS {alias}",
            self.quote(&remote.schema),
            self.quote(&remote.name)
        );
        let mut select = Select::new(from, items);
        select.filters = filters;
        select.limit = scan.fetch.map(|fetch| (Some(fetch), 0));
        Some(select)
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
        let (fields, opaque) = filter_columns(remote);
        let schema = DFSchema::try_from(Schema::new(fields)).ok()?;
        self.expr(
            filter,
            &Scope::Table {
                schema: &schema,
                opaque: &opaque,
            },
        )
    }

    /// An output column computing `expr`: a bare column may pass an opaque column through;
    /// nothing else may touch one.
    fn item(&self, expr: &Expr, name: String, scope: &Scope) -> Option<Item> {
        let (sql, opaque) = match expr {
            Expr::Alias(Alias { expr, .. }) => return self.item(expr, name, scope),
            Expr::Column(c) => self.column(c, scope)?,
            _ => (self.expr(expr, scope)?, false),
        };
        Some(Item {
            sql,
            name,
            opaque,
            constant: matches!(expr, Expr::Literal(..)) || self.names_constant(expr, scope),
            column: matches!(expr, Expr::Column(_)) && self.names_column(expr, scope),
        })
    }

    /// Items for `exprs` over `input`'s columns, named after `output`'s fields.
    fn items(
        &self,
        exprs: &[Expr],
        output: &DFSchema,
        input: &DFSchema,
        select: &Select,
    ) -> Option<Vec<Item>> {
        let scope = Scope::of(input, &select.items);
        exprs
            .iter()
            .zip(unique_names(output))
            .map(|(expr, name)| self.item(expr, name, &scope))
            .collect()
    }

    fn projection(&self, p: &Projection, mut select: Select) -> Option<Select> {
        // DISTINCT applies to the select list, which this replaces.
        if select.distinct || select.volatile {
            select = self.wrap(select);
        }
        select.items = self.items(&p.expr, &p.schema, p.input.schema(), &select)?;
        select.volatile |= p.expr.iter().any(Expr::is_volatile);
        Some(select)
    }

    fn filter(&self, f: &Filter, mut select: Select) -> Option<Select> {
        // After GROUP BY, a condition is a HAVING (without keys, a derived table: not every
        // database takes HAVING without GROUP BY).
        let having = select
            .group_by
            .as_ref()
            .is_some_and(|keys| !keys.is_empty());
        if select.limit.is_some()
            || select.distinct
            || select.windowed
            || select.volatile
            || (select.group_by.is_some() && !having)
        {
            select = self.wrap(select);
        }
        let predicate = self.expr(&f.predicate, &Scope::of(f.input.schema(), &select.items))?;
        if select.group_by.is_some() {
            select.having.push(predicate);
        } else {
            select.filters.push(predicate);
        }
        Some(select)
    }

    fn aggregate(&self, a: &Aggregate, mut select: Select) -> Option<Select> {
        if a.group_expr
            .iter()
            .any(|e| matches!(e, Expr::GroupingSet(_)))
        {
            return None;
        }
        let constant_key = |select: &Select| {
            let scope = Scope::of(a.input.schema(), &select.items);
            a.group_expr.iter().any(|e| self.names_constant(e, &scope))
        };
        if !select.is_plain() || constant_key(&select) {
            select = self.wrap(select);
        }
        let scope = Scope::of(a.input.schema(), &select.items);
        // A literal key does not divide the groups, and `GROUP BY 1` would mean the first
        // column: it is left out. Only literal keys would turn the groups into one group over
        // all rows, which an empty input still has.
        let keys = a
            .group_expr
            .iter()
            .filter(|e| !is_literal(e))
            .map(|e| self.key(e, &scope))
            .collect::<Option<Vec<_>>>()?;
        if keys.is_empty() && !a.group_expr.is_empty() {
            return None;
        }
        let exprs: Vec<Expr> = a.group_expr.iter().chain(&a.aggr_expr).cloned().collect();
        let mut items = self.items(&exprs, &a.schema, a.input.schema(), &select)?;
        for item in &mut items {
            item.opaque = false;
        }
        select.items = items;
        select.group_by = Some(keys);
        Some(select)
    }

    fn sort(&self, sort: &Sort, mut select: Select) -> Option<Select> {
        let constant_key = |select: &Select| {
            let scope = Scope::of(sort.input.schema(), &select.items);
            sort.expr
                .iter()
                .any(|k| self.names_constant(&k.expr, &scope))
        };
        // Under DISTINCT the keys would have to be in the select list.
        if select.limit.is_some() || select.distinct || select.volatile || constant_key(&select) {
            select = self.wrap(select);
        }
        select.order_by =
            self.order_keys(&sort.expr, &Scope::of(sort.input.schema(), &select.items))?;
        if let Some(fetch) = sort.fetch {
            select.limit = Some((Some(fetch), 0));
        }
        Some(select)
    }

    fn limit(&self, limit: &Limit, mut select: Select) -> Option<Select> {
        let SkipType::Literal(skip) = limit.get_skip_type().ok()? else {
            return None;
        };
        let FetchType::Literal(fetch) = limit.get_fetch_type().ok()? else {
            return None;
        };
        select.limit = Some(match select.limit {
            None => (fetch, skip),
            // Rows `skip..skip + fetch` of rows `inner_skip..inner_skip + inner_fetch`.
            Some((inner_fetch, inner_skip)) => (
                min_fetch(inner_fetch.map(|f| f.saturating_sub(skip)), fetch),
                inner_skip + skip,
            ),
        });
        Some(select)
    }

    fn distinct(&self, input: &LogicalPlan, mut select: Select) -> Option<Select> {
        let text = |f: &FieldRef| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        };
        if !self.dialect.distinct_text_is_exact() && input.schema().fields().iter().any(text) {
            return None;
        }
        if select.distinct
            || select.limit.is_some()
            || !select.order_by.is_empty()
            || select.volatile
        {
            select = self.wrap(select);
        }
        select.distinct = true;
        Some(select)
    }

    /// The input's columns and the window functions, in one select list.
    fn window(&self, window: &Window, mut select: Select) -> Option<Select> {
        if !self.dialect.supports_windows() {
            return None;
        }
        // A window function may not take another's result or run over an aggregate's here.
        if select.group_by.is_some()
            || select.windowed
            || select.distinct
            || select.limit.is_some()
            || select.volatile
        {
            select = self.wrap(select);
        }
        let names = unique_names(&window.schema);
        let scope = Scope::of(window.input.schema(), &select.items);
        let mut functions = Vec::new();
        for (expr, name) in window
            .window_expr
            .iter()
            .zip(names.get(select.items.len()..)?)
        {
            functions.push(Item {
                sql: self.expr(expr, &scope)?,
                name: name.clone(),
                opaque: false,
                constant: false,
                column: false,
            });
        }
        for (item, name) in select.items.iter_mut().zip(names) {
            item.name = name;
        }
        select.items.extend(functions);
        select.windowed = true;
        Some(select)
    }

    /// `SELECT … FROM (<input> UNION ALL <input> …) AS t`.
    fn union(&self, union: &Union, inputs: Vec<Select>) -> Option<Select> {
        if inputs.len() != union.inputs.len() {
            return None;
        }
        let mut parts = Vec::new();
        let mut first: Option<Vec<String>> = None;
        for mut select in inputs {
            // ORDER BY and LIMIT would apply to the whole union.
            if !select.order_by.is_empty() || select.limit.is_some() {
                select = self.wrap(select);
            }
            parts.push(self.render(&select));
            first.get_or_insert_with(|| select.columns());
        }
        let first = first?;
        let alias = self.alias();
        let items = first
            .iter()
            .zip(unique_names(&union.schema))
            .map(|(column, name)| Item {
                sql: format!("{alias}.{}", self.quote(column)),
                name,
                opaque: false,
                constant: false,
                column: true,
            })
            .collect();
        Some(Select::new(
            format!("({}) AS {alias}", parts.join(" UNION ALL ")),
            items,
        ))
    }
}

fn is_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Alias(Alias { expr, .. }) => is_literal(expr),
        Expr::Literal(..) => true,
        _ => false,
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

/// The columns filters over `remote` may name, with whether each is opaque: the table's own,
/// and its split key when that is a column the database keeps out of the table's columns
/// (SQLite's `_rowid_`, see [`crate::SplitKey`]), named only by the ranges of a split scan.
fn filter_columns(remote: &RemoteTable) -> (Vec<Field>, Vec<bool>) {
    let mut fields: Vec<Field> = remote
        .arrow_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut opaque = remote.opaque.clone();
    if let Some(key) = &remote.split_key
        && remote.arrow_schema.field_with_name(&key.column).is_err()
    {
        fields.push(Field::new(&key.column, DataType::Int64, false));
        opaque.push(false);
    }
    (fields, opaque)
}
