//! Joins: inner and outer joins extend the FROM clause of their left input with the right
//! one (`a JOIN b ON … JOIN c ON …`); semi and anti joins become `[NOT] EXISTS (…)` or
//! `[NOT] IN (…)` conditions of the preserved side.
//!
//! A NULL-extended side whose columns are computed (`coalesce(x, 0) AS c`) stays a derived
//! table: above the join, the expression would be computed on the NULL-extended rows instead
//! of being NULL there.
//!
//! An input's WHERE conditions move to where they keep their meaning: to the statement's
//! WHERE for a side whose rows the join never extends with NULLs, into the ON clause of the
//! NULL-extended side of a LEFT or RIGHT join, and nowhere for a FULL join (that side stays a
//! derived table).

use super::Writer;
use super::expr::Scope;
use super::select::{Item, Select};
use super::unique_names;
use crate::table::key_is_indexed;
use datafusion::common::{DFSchema, JoinType, NullEquality};
use datafusion::logical_expr::logical_plan::Join;
use datafusion::logical_expr::{Expr, ExprSchemable};

impl Writer<'_> {
    pub(super) fn join(&self, join: &Join, left: Select, right: Select) -> Option<Select> {
        if !self.dialect.supports_join(join.join_type) {
            return None;
        }
        if self.dialect.join_needs_index() && !self.index_serves(join) {
            return None;
        }
        match join.join_type {
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
                self.outer_join(join, left, right)
            }
            JoinType::LeftSemi | JoinType::LeftAnti => self.semi_join(join, left, right, true),
            JoinType::RightSemi | JoinType::RightAnti => {
                if join.null_aware {
                    return None;
                }
                self.semi_join(join, right, left, false)
            }
            _ => None,
        }
    }

    /// `<left> [INNER|LEFT|RIGHT|FULL] JOIN <right> ON …`, or `CROSS JOIN` without conditions.
    fn outer_join(&self, join: &Join, mut left: Select, mut right: Select) -> Option<Select> {
        let kind = join.join_type;
        // Whose WHERE conditions may not move to the statement's WHERE.
        let left_extended = matches!(kind, JoinType::Right | JoinType::Full);
        let right_extended = matches!(kind, JoinType::Left | JoinType::Full);
        let columns_only = |select: &Select| select.items.iter().all(|item| item.column);
        if !left.is_plain() || (left_extended && (!left.filters.is_empty() || !columns_only(&left)))
        {
            left = self.wrap(left);
        }
        if !right.is_plain()
            || right.joined
            || (right_extended && !columns_only(&right))
            || (kind == JoinType::Full && !right.filters.is_empty())
        {
            right = self.wrap(right);
        }
        let scope = Scope::pair(
            (join.left.schema(), &left.items),
            (join.right.schema(), &right.items),
        )?;
        let mut on = self.join_conditions(join, &scope)?;
        drop(scope);
        let mut filters = left.filters;
        if right_extended {
            on.extend(right.filters);
        } else {
            filters.extend(right.filters);
        }
        let keyword = match kind {
            JoinType::Inner if on.is_empty() => "CROSS JOIN",
            JoinType::Inner => "INNER JOIN",
            JoinType::Left => "LEFT JOIN",
            JoinType::Right => "RIGHT JOIN",
            _ => "FULL JOIN",
        };
        let mut from = format!("{} {keyword} {}", left.from, right.from);
        if kind != JoinType::Inner || !on.is_empty() {
            let on = if on.is_empty() {
                "1 = 1".to_string()
            } else {
                on.join(" AND ")
            };
            from.push_str(&format!(" ON {on}"));
        }
        let items = left
            .items
            .into_iter()
            .chain(right.items)
            .zip(unique_names(&join.schema))
            .map(|(item, name)| Item { name, ..item })
            .collect();
        let mut select = Select::new(from, items);
        select.joined = true;
        select.filters = filters;
        Some(select)
    }

    /// The rows of `outer` with (semi) or without (anti) a match in `inner`: a condition
    /// `[NOT] EXISTS (SELECT 1 FROM <inner> WHERE <on>)`, or `<key> [NOT] IN (SELECT <key> …)`
    /// where that is the better or the only exact form.
    fn semi_join(
        &self,
        join: &Join,
        outer: Select,
        inner: Select,
        outer_is_left: bool,
    ) -> Option<Select> {
        let anti = matches!(join.join_type, JoinType::LeftAnti | JoinType::RightAnti);
        let not = if anti { "NOT " } else { "" };
        let mut outer = if outer.is_plain() {
            outer
        } else {
            self.wrap(outer)
        };
        let (outer_schema, inner_schema) = if outer_is_left {
            (join.left.schema(), join.right.schema())
        } else {
            (join.right.schema(), join.left.schema())
        };
        // `x [NOT] IN (subquery)` where the dialect plans it better than EXISTS: for a semi
        // join always equal; for an anti join only when neither key can be NULL.
        let in_form = outer_is_left
            && match join.on.as_slice() {
                [(l, r)] if join.filter.is_none() => {
                    let nullable = |e: &Expr, schema: &DFSchema| e.nullable(schema).unwrap_or(true);
                    (self.dialect.prefers_in_subqueries() || self.semi_joins_by_list)
                        && (!anti
                            || !nullable(l, join.left.schema())
                                && !nullable(r, join.right.schema()))
                }
                _ => false,
            };
        let condition = if join.null_aware || in_form {
            // Null-aware: `x NOT IN (subquery)`, where NULLs make the whole predicate
            // unknown, which only NOT IN itself expresses.
            let [(l, r)] = join.on.as_slice() else {
                return None;
            };
            if join.filter.is_some() {
                return None;
            }
            // The subquery's rows only matter as a set of keys: its order, DISTINCT and
            // other columns do not, its LIMIT does.
            let mut inner = if inner.limit.is_none() && !inner.volatile {
                inner
            } else {
                self.wrap(inner)
            };
            let key = self.key(l, &Scope::of(outer_schema, &outer.items))?;
            let subquery_key = self.key(r, &Scope::of(inner_schema, &inner.items))?;
            inner.items = vec![Item {
                sql: subquery_key,
                name: "k".into(),
                opaque: false,
                constant: false,
                column: false,
            }];
            inner.order_by.clear();
            inner.distinct = false;
            format!("({key} {not}IN ({}))", self.render(&inner))
        } else {
            let inner = if inner.is_plain() {
                inner
            } else {
                self.wrap(inner)
            };
            let (left_items, right_items) = if outer_is_left {
                (&outer.items, &inner.items)
            } else {
                (&inner.items, &outer.items)
            };
            let scope = Scope::pair(
                (join.left.schema(), left_items),
                (join.right.schema(), right_items),
            )?;
            let mut conditions = inner.filters.clone();
            conditions.extend(self.join_conditions(join, &scope)?);
            let mut exists = format!("SELECT 1 FROM {}", inner.from);
            if !conditions.is_empty() {
                exists.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
            }
            format!("({not}EXISTS ({exists}))")
        };
        outer.filters.push(condition);
        Some(outer)
    }

    /// The join's key equalities and filter, each as one condition.
    fn join_conditions(&self, join: &Join, scope: &Scope) -> Option<Vec<String>> {
        let mut conditions = Vec::new();
        for (l, r) in &join.on {
            let (l, r) = (self.key(l, scope)?, self.key(r, scope)?);
            conditions.push(match join.null_equality {
                NullEquality::NullEqualsNothing => format!("({l} = {r})"),
                NullEquality::NullEqualsNull => self.dialect.null_safe_equal(&l, &r),
            });
        }
        if let Some(filter) = &join.filter {
            conditions.push(self.expr(filter, scope)?);
        }
        Some(conditions)
    }

    /// Whether an index can serve `join` (see [`Dialect::join_needs_index`]).
    ///
    /// [`Dialect::join_needs_index`]: crate::dialect::Dialect::join_needs_index
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
}
