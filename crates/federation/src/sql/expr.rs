//! Expressions as SQL: column references resolve by position in the input's schema to the
//! expression that computes that column (see [`Scope`]), and the dialect decides every
//! operator, function, cast and literal — or refuses it, and the node stays in DataFusion.

use super::Writer;
use super::select::Item;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::expr::{
    AggregateFunction, Alias, Exists, InList, InSubquery, ScalarFunction, Sort as SortExpr,
    WindowFunction, WindowFunctionDefinition,
};
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, Operator, Subquery, WindowFrame, WindowFrameBound,
    WindowFrameUnits,
};
use std::borrow::Cow;

/// Where the columns an expression refers to come from.
pub(super) enum Scope<'a> {
    /// A base table: columns are referenced by their own (quoted) names.
    Table {
        schema: &'a DFSchema,
        opaque: &'a [bool],
    },
    /// The outputs of one or two inputs (a join's): each input's schema and the items that
    /// compute its columns, in order.
    Items {
        inputs: Vec<(&'a DFSchema, &'a [Item])>,
        merged: Cow<'a, DFSchema>,
    },
}

impl<'a> Scope<'a> {
    /// The columns of one input.
    pub fn of(schema: &'a DFSchema, items: &'a [Item]) -> Self {
        Scope::Items {
            inputs: vec![(schema, items)],
            merged: Cow::Borrowed(schema),
        }
    }

    /// The columns of a join's two inputs.
    pub fn pair(
        left: (&'a DFSchema, &'a [Item]),
        right: (&'a DFSchema, &'a [Item]),
    ) -> Option<Self> {
        let merged = left.0.clone().join(right.0).ok()?;
        Some(Scope::Items {
            inputs: vec![left, right],
            merged: Cow::Owned(merged),
        })
    }

    pub fn schema(&self) -> &DFSchema {
        match self {
            Scope::Table { schema, .. } => schema,
            Scope::Items { merged, .. } => merged,
        }
    }

    /// The item computing column `c`; none when no input or more than one has it (refuse
    /// rather than guess).
    fn item(&self, c: &Column) -> Option<&'a Item> {
        let Scope::Items { inputs, .. } = self else {
            return None;
        };
        let mut found = None;
        for (schema, items) in inputs {
            if let Some(i) = schema.maybe_index_of_column(c) {
                if found.is_some() {
                    return None;
                }
                found = Some(items.get(i)?);
            }
        }
        found
    }
}

impl Writer<'_> {
    /// A column reference and whether it is opaque.
    pub(super) fn column(&self, c: &Column, scope: &Scope) -> Option<(String, bool)> {
        match scope {
            Scope::Table { schema, opaque } => {
                let i = schema.maybe_index_of_column(c)?;
                Some((self.quote(&c.name), opaque[i]))
            }
            Scope::Items { .. } => {
                let item = scope.item(c)?;
                Some((item.sql.clone(), item.opaque))
            }
        }
    }

    /// Whether `expr` is a column that is a bare column reference where it comes from (see
    /// [`Item::column`]).
    pub(super) fn names_column(&self, expr: &Expr, scope: &Scope) -> bool {
        match (expr, scope) {
            (Expr::Column(_), Scope::Table { .. }) => true,
            (Expr::Column(c), Scope::Items { .. }) => scope.item(c).is_some_and(|item| item.column),
            _ => false,
        }
    }

    /// Whether `expr` is a column whose expression is a literal (see [`Item::constant`]).
    pub(super) fn names_constant(&self, expr: &Expr, scope: &Scope) -> bool {
        match expr {
            Expr::Alias(Alias { expr, .. }) => self.names_constant(expr, scope),
            Expr::Column(c) => scope.item(c).is_some_and(|item| item.constant),
            _ => false,
        }
    }

    /// An expression used in a computation (never an opaque column).
    pub(super) fn expr(&self, expr: &Expr, scope: &Scope) -> Option<String> {
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
    pub(super) fn key(&self, expr: &Expr, scope: &Scope) -> Option<String> {
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
    pub(super) fn order_keys(&self, keys: &[SortExpr], scope: &Scope) -> Option<Vec<String>> {
        keys.iter()
            // A constant key orders nothing (and `ORDER BY 1` would mean the first column).
            .filter(|key| !matches!(key.expr, Expr::Literal(..)))
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

    /// `<function>(…) OVER (PARTITION BY … ORDER BY … <frame>)`.
    pub(super) fn window_call(&self, function: &WindowFunction, scope: &Scope) -> Option<String> {
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
}
