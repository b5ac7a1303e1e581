//! One SELECT statement under construction.
//!
//! Each plan node adds its clause to the SELECT written for its input while SQL's clause order
//! lets it — `FROM … WHERE … GROUP BY … HAVING …`, window functions, `DISTINCT`, `ORDER BY`,
//! `LIMIT` — and otherwise makes that SELECT a derived table of a new one ([`Writer::wrap`]).
//! An output column of the input is then referred to by the SQL expression that computes it
//! (an [`Item`]), not by a name, so `Projection(Filter(Join(a, b)))` is one
//! `SELECT … FROM a JOIN b ON … WHERE …`, as a person would write it.

use super::Writer;

/// One output column of a [`Select`].
#[derive(Debug, Clone)]
pub(super) struct Item {
    /// The expression computing it, over the SELECT's FROM.
    pub sql: String,
    /// Its unique output name.
    pub name: String,
    /// A pass-through of an opaque source column (no condition may touch it).
    pub opaque: bool,
    /// A literal: as a GROUP BY or ORDER BY key it would be read as a column position or
    /// refused, so such a key makes the input a derived table first.
    pub constant: bool,
    /// A bare column reference (`t0."a"`): NULL on the rows an outer join extends with NULLs,
    /// as the column of a derived table would be. Any other expression (`coalesce(t0."a",
    /// 0)`) would be computed on those rows, so an outer join's NULL-extended side keeps such
    /// items inside a derived table.
    pub column: bool,
}

/// A SELECT statement and what each of its clauses holds.
#[derive(Debug, Clone)]
pub(super) struct Select {
    pub items: Vec<Item>,
    /// The FROM clause: a table, a derived table or a chain of joins, each with its alias.
    pub from: String,
    /// FROM is a chain of joins: on the right of another join it needs parentheses, so it
    /// becomes a derived table there.
    pub joined: bool,
    /// WHERE conditions, ANDed.
    pub filters: Vec<String>,
    /// GROUP BY keys; `Some(vec![])` for an aggregate over all rows.
    pub group_by: Option<Vec<String>>,
    /// HAVING conditions, ANDed.
    pub having: Vec<String>,
    /// Some item is a window function.
    pub windowed: bool,
    /// Some item is volatile (`random()`): it must be computed once, so nothing may copy its
    /// expression into another clause.
    pub volatile: bool,
    pub distinct: bool,
    pub order_by: Vec<String>,
    /// `(fetch, skip)`.
    pub limit: Option<(Option<usize>, usize)>,
}

impl Select {
    pub fn new(from: String, items: Vec<Item>) -> Self {
        Self {
            items,
            from,
            joined: false,
            filters: Vec::new(),
            group_by: None,
            having: Vec::new(),
            windowed: false,
            volatile: false,
            distinct: false,
            order_by: Vec::new(),
            limit: None,
        }
    }

    /// Only FROM and WHERE are set: rows, not yet grouped, windowed, made distinct, ordered
    /// or limited, so it can be joined, filtered further or aggregated in place.
    pub fn is_plain(&self) -> bool {
        self.group_by.is_none()
            && !self.windowed
            && !self.volatile
            && !self.distinct
            && self.order_by.is_empty()
            && self.limit.is_none()
    }

    pub fn columns(&self) -> Vec<String> {
        self.items.iter().map(|item| item.name.clone()).collect()
    }

    pub fn opaque(&self) -> Vec<bool> {
        self.items.iter().map(|item| item.opaque).collect()
    }
}

impl Writer<'_> {
    /// The statement's text.
    pub(super) fn render(&self, select: &Select) -> String {
        let mut sql = String::from("SELECT ");
        if select.distinct {
            sql.push_str("DISTINCT ");
        }
        if select.items.is_empty() {
            // No column is needed, every row is (e.g. under `count(*)`).
            sql.push_str("1 AS \"one\"");
        }
        for (i, item) in select.items.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&item.sql);
            let quoted = self.quote(&item.name);
            // `t0."a"` needs no `AS "a"`.
            let named = item
                .sql
                .split_once('.')
                .is_some_and(|(alias, column)| is_alias(alias) && column == quoted);
            if !named {
                sql.push_str(" AS ");
                sql.push_str(&quoted);
            }
        }
        sql.push_str(" FROM ");
        sql.push_str(&select.from);
        if !select.filters.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&select.filters.join(" AND "));
        }
        if let Some(keys) = &select.group_by
            && !keys.is_empty()
        {
            sql.push_str(" GROUP BY ");
            sql.push_str(&keys.join(", "));
        }
        if !select.having.is_empty() {
            sql.push_str(" HAVING ");
            sql.push_str(&select.having.join(" AND "));
        }
        if !select.order_by.is_empty() {
            sql.push_str(" ORDER BY ");
            sql.push_str(&select.order_by.join(", "));
        }
        if let Some((fetch, skip)) = select.limit {
            sql.push_str(&self.dialect.limit(fetch, skip));
        }
        sql
    }

    /// `select` as a derived table of a new SELECT that passes its columns through.
    pub(super) fn wrap(&self, select: Select) -> Select {
        let alias = self.alias();
        let items = select
            .items
            .iter()
            .map(|item| Item {
                sql: format!("{alias}.{}", self.quote(&item.name)),
                name: item.name.clone(),
                opaque: item.opaque,
                constant: false,
                column: true,
            })
            .collect();
        Select::new(format!("({}) AS {alias}", self.render(&select)), items)
    }
}

/// Whether `text` is an alias this writer makes (`t0`, `t1`, …).
fn is_alias(text: &str) -> bool {
    text.strip_prefix('t')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
