//! The pushdown planner: after DataFusion's logical optimizer, cut the largest sub-plans each
//! source can run whole and replace each with one [`FederatedScan`].
//!
//! It runs as the session's [`QueryPlanner`], so it sees the plan DataFusion's rules have already
//! optimized: filters, projections and limits sit as low as they go, also above and below
//! cross-source joins, and `IN`/`EXISTS` subqueries have become semi and anti joins.
//!
//! The cut, bottom-up: a scan of a [`FederatedTable`] belongs to its source. A node belongs to a
//! source when all its inputs belong to sources with the same identity and the node can be
//! written as SQL for that source's dialect ([`Writer::plan`]). A node that cannot joins
//! DataFusion's side of the plan, and each of its inputs that belongs to a source becomes a
//! federated scan. If the root belongs to a source, the whole query is one federated scan.

use crate::exec::{FederatedScan, FederatedScanPlanner};
use crate::keys::OutputColumns;
use crate::source::Source;
use crate::sql::Writer;
use crate::table::FederatedTable;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::common::tree_node::Transformed;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use std::sync::Arc;

/// A [`QueryPlanner`] that federates the plan, then plans it with DataFusion's planner.
#[derive(Debug, Default)]
pub struct FederationPlanner;

#[async_trait]
impl QueryPlanner for FederationPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = if pushdown_enabled(session) {
            federate(plan)?
        } else {
            plan.clone()
        };
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(FederatedScanPlanner)])
            .create_physical_plan(&plan, session)
            .await
    }
}

/// Whether `flotilla.federation.pushdown` is on (the default) for this session.
pub(crate) fn pushdown_enabled(session: &dyn Session) -> bool {
    session
        .config()
        .options()
        .extensions
        .get::<crate::config::FederationConfig>()
        .is_none_or(|c| c.pushdown)
}

/// `plan` with every maximal single-source sub-plan replaced by a [`FederatedScan`].
pub fn federate(plan: &LogicalPlan) -> Result<LogicalPlan> {
    let (plan, source) = rewrite(plan)?;
    Ok(match source {
        Some(source) => wrap(plan, &source)?,
        None => plan,
    })
}

/// Rewrites below `plan`; returns the (possibly new) plan and, when the whole of it can run in
/// one source, that source.
fn rewrite(plan: &LogicalPlan) -> Result<(LogicalPlan, Option<Arc<dyn Source>>)> {
    if let LogicalPlan::TableScan(scan) = plan
        && let Some(table) = FederatedTable::of_scan(scan)
    {
        return Ok((plan.clone(), Some(Arc::clone(table.source()))));
    }
    let inputs = plan.inputs();
    if inputs.is_empty() {
        return Ok((plan.clone(), None));
    }
    let children = inputs
        .into_iter()
        .map(rewrite)
        .collect::<Result<Vec<_>>>()?;
    if let Some(source) = common_source(&children)
        && Writer::new(source.as_ref()).plan(plan).is_some()
    {
        return Ok((plan.clone(), Some(source)));
    }
    let new_inputs = children
        .into_iter()
        .map(|(child, source)| match source {
            Some(source) => wrap(child, &source),
            None => Ok(child),
        })
        .collect::<Result<Vec<_>>>()?;
    let rebuilt = plan.with_new_exprs(plan.expressions(), new_inputs)?;
    // Subqueries DataFusion runs itself (uncorrelated ones left in expressions) are federated
    // on their own.
    let rebuilt = rebuilt
        .map_subqueries(|sub| match sub {
            LogicalPlan::Subquery(mut subquery) if subquery.outer_ref_columns.is_empty() => {
                subquery.subquery = Arc::new(federate(&subquery.subquery)?);
                Ok(Transformed::yes(LogicalPlan::Subquery(subquery)))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    Ok((rebuilt, None))
}

/// The source all children belong to, if they all belong to sources of one identity.
fn common_source(children: &[(LogicalPlan, Option<Arc<dyn Source>>)]) -> Option<Arc<dyn Source>> {
    let first = children.first()?.1.as_ref()?;
    children
        .iter()
        .all(|(_, s)| s.as_ref().is_some_and(|s| s.identity() == first.identity()))
        .then(|| Arc::clone(first))
}

/// Of the rows a filter reads, the share it is taken to keep (DataFusion's own default guess,
/// `datafusion.physical_optimizer.default_filter_selectivity`).
const FILTER_SELECTIVITY: f64 = 0.2;

/// Of `rows`, how many a scan with `filters` conditions pushed into it is taken to keep: a fifth
/// when there are any (the conditions of one scan are not independent enough to multiply).
pub(crate) fn filtered_rows(rows: usize, filters: usize) -> usize {
    if filters == 0 {
        return rows;
    }
    (rows as f64 * FILTER_SELECTIVITY).ceil() as usize
}

/// The estimated rows of a sub-plan over one table: the table's estimate, a fifth of it for the
/// filters pushed into the scan and another fifth per filter above, capped by a limit; projections and aliases keep the count. `None` for anything else
/// (joins, aggregates) or a table without an estimate. An estimate, even a rough one, lets
/// DataFusion put a filtered small table on the build side of a join instead of a big one.
fn estimated_rows(plan: &LogicalPlan) -> Option<usize> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => estimated_rows(&alias.input),
        LogicalPlan::Projection(projection) => estimated_rows(&projection.input),
        LogicalPlan::Filter(filter) => Some(filtered_rows(estimated_rows(&filter.input)?, 1)),
        LogicalPlan::Limit(limit) => {
            let rows = estimated_rows(&limit.input)?;
            Some(match limit.get_fetch_type() {
                Ok(datafusion::logical_expr::FetchType::Literal(Some(fetch))) => fetch.min(rows),
                _ => rows,
            })
        }
        LogicalPlan::TableScan(scan) => {
            let rows = FederatedTable::of_scan(scan)?.remote().row_estimate?;
            let rows = filtered_rows(rows, scan.filters.len());
            Some(scan.fetch.map_or(rows, |fetch| fetch.min(rows)))
        }
        _ => None,
    }
}

/// Replaces `plan` (which runs whole in `source`) by a federated scan of its SQL. A plan the
/// writer cannot express (only possible for a bare table scan) is left for its table provider.
fn wrap(plan: LogicalPlan, source: &Arc<dyn Source>) -> Result<LogicalPlan> {
    match Writer::new(source.as_ref()).plan(&plan) {
        Some(query) => Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(FederatedScan {
                source: Arc::clone(source),
                sql: query.sql,
                schema: Arc::clone(plan.schema()),
                row_estimate: estimated_rows(&plan),
                split: crate::split::split_key(&plan).map(|key| (key, Arc::new(plan.clone()))),
                columns: Some(OutputColumns {
                    names: query.columns,
                    opaque: query.opaque,
                }),
            }),
        })),
        None => Ok(plan),
    }
}
