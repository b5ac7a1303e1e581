//! The pushdown planner: after DataFusion's logical optimizer, cut the plan into sub-plans each
//! source runs and replace each with one [`FederatedScan`].
//!
//! It runs as the session's [`QueryPlanner`], so it sees the plan DataFusion's rules have already
//! optimized: filters, projections and limits sit as low as they go, also above and below
//! cross-source joins, and `IN`/`EXISTS` subqueries have become semi and anti joins.
//!
//! The cut, bottom-up: a scan of a [`FederatedTable`] belongs to its source. A node can belong
//! to a source when all its inputs belong to sources with the same identity and the node can be
//! written as SQL for that source's dialect ([`Writer::compose`], over its inputs' SQL as
//! written for them: each node is written once). With
//! `flotilla.federation.pushdown = all` it then does; with `cost` (the default) only when
//! running it there and reading its rows is estimated no slower than reading its inputs at
//! their best and running it here (see [`crate::cost`]; within [`PUSH_MARGIN`], pushed). Under
//! `cost`, a source with a `pushdown` of its own (flotilla.toml) takes that instead: `all`
//! pushes all it can run without weighing, `none` only its scans. The estimates of a source
//! that has run statements here are scaled by what they taught ([`crate::learn`];
//! `flotilla.federation.learn_costs`). A node
//! that does not belong to a source runs in DataFusion, and each of its inputs that belongs to
//! one becomes a federated scan. If the root belongs to a source, the whole query is one
//! federated scan. The samples the estimates use are read before the cut (once per table).

use crate::config::Pushdown;
use crate::cost::{self, Estimate};
use crate::dialect::EngineCosts;
use crate::exec::{FederatedScan, FederatedScanPlanner};
use crate::learn::{Expected, Fit, Learned};
use crate::source::Source;
use crate::sql::{OutputColumns, Writer, Written};
use crate::table::FederatedTable;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Expr, Extension, Filter, LogicalPlan, Projection, TableScan, TableScanBuilder,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use std::cell::Cell;
use std::rc::Rc;
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
        let options = session.config().options();
        let pushdown = crate::config::pushdown(options);
        if pushdown == Pushdown::Cost {
            load_samples(plan).await;
        }
        let plan = match pushdown {
            Pushdown::None => plan.clone(),
            _ => Cut::of(options).federate(plan)?,
        };
        let physical =
            DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(FederatedScanPlanner)])
                .create_physical_plan(&plan, session)
                .await?;
        Ok(match plan {
            LogicalPlan::Explain(_) => crate::explain::with_statements(physical, &plan),
            _ => physical,
        })
    }
}

/// Reads the samples of the remote tables `plan` reads (each once per table), for the cost
/// estimates.
async fn load_samples(plan: &LogicalPlan) {
    let mut scans = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && FederatedTable::of_scan(scan).is_some()
        {
            scans.push(scan.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    futures::future::join_all(
        scans
            .iter()
            .filter_map(FederatedTable::of_scan)
            // A source with a pushdown of its own is not weighed.
            .filter(|table| {
                table
                    .source()
                    .pushdown()
                    .is_none_or(|p| p == Pushdown::Cost)
            })
            .map(FederatedTable::load_sample),
    )
    .await;
}

/// `plan` with every maximal single-source sub-plan replaced by a [`FederatedScan`]
/// (`flotilla.federation.pushdown = all`).
pub fn federate(plan: &LogicalPlan) -> Result<LogicalPlan> {
    Cut {
        pushdown: Pushdown::All,
        cores: 1,
        partition_rows: 0,
        learn: false,
        aliases: Rc::default(),
    }
    .federate(plan)
}

/// A sub-plan estimated to take up to this many times as long pushed as split is pushed.
const PUSH_MARGIN: f64 = 1.05;

/// How the plan is cut: the session's pushdown mode, and the cores DataFusion runs on (for the
/// cost of running a part here).
#[derive(Debug, Clone)]
struct Cut {
    pushdown: Pushdown,
    cores: usize,
    /// `flotilla.federation.partition_rows`: a scan of more rows is read as key ranges in
    /// parallel, at most `cores` of them (see the `split` module).
    partition_rows: usize,
    /// `flotilla.federation.learn_costs`: estimates are scaled by what each source's
    /// statements taught (see [`crate::learn`]).
    learn: bool,
    /// The SQL writers' alias numbers: one sequence, so parts written apart can be combined.
    aliases: Rc<Cell<usize>>,
}

/// What [`Cut::rewrite`] made of a sub-plan.
enum Rewritten {
    /// It runs (at least its root) in DataFusion: the plan with its federated scans.
    Here(LogicalPlan),
    /// All of it can run in one source.
    Pushable(Box<Part>),
}

/// A sub-plan that can run whole in one source, with what each way of running it costs.
struct Part {
    /// The sub-plan as it is.
    plan: LogicalPlan,
    /// Its SQL, when the writer can express it (a bare table scan it cannot is left to its
    /// table provider).
    written: Option<Written>,
    source: Arc<dyn Source>,
    estimate: Estimate,
    /// Seconds to run it in the source and read its rows.
    pushed: f64,
    /// What its source's statements taught, when the estimates use it.
    fit: Option<Fit>,
    choice: Choice,
}

/// How a [`Part`] runs when nothing above it pushes it whole.
enum Choice {
    /// Pushed whole; `split`: the seconds splitting it was estimated at, when it was weighed;
    /// `hinted`: because its source's own pushdown is `all`.
    Pushed { split: Option<f64>, hinted: bool },
    /// Its root runs here over its inputs at their best, in `seconds`.
    Split { plan: LogicalPlan, seconds: f64 },
}

impl Part {
    fn best(&self) -> f64 {
        match &self.choice {
            Choice::Pushed { .. } => self.pushed,
            Choice::Split { seconds, .. } => *seconds,
        }
    }

    /// The cheapest plan: a federated scan of the whole, or the split. `above`: why the node
    /// above runs here (for `EXPLAIN`).
    fn into_plan(self, above: Option<&str>) -> Result<LogicalPlan> {
        let (split, hinted) = match self.choice {
            Choice::Split { plan, .. } => return Ok(plan),
            Choice::Pushed { split, hinted } => (split, hinted),
        };
        let costs = self.source.costs();
        let rows = self.estimate.rows as usize;
        let expected = Some(Expected {
            remote: self.estimate.remote,
            fetch: self.estimate.fetch(&costs),
        });
        if split.is_none() && above.is_none() && !hinted {
            return wrap(self.plan, self.written, &self.source, None, expected, rows);
        }
        let mut choice = match split {
            _ if hinted => "pushed: source pushdown = all".to_string(),
            Some(split) => format!(
                "pushed est {} vs {} split",
                seconds(self.pushed),
                seconds(split)
            ),
            None => format!("pushed est {}", seconds(self.pushed)),
        };
        if let (Some(fit), false) = (self.fit, hinted) {
            choice.push_str(&format!(" ({})", fit.describe()));
        }
        if let Some(above) = above {
            choice.push_str(&format!("; {above}"));
        }
        wrap(
            self.plan,
            self.written,
            &self.source,
            Some(choice),
            expected,
            rows,
        )
    }
}

/// Seconds as `EXPLAIN` shows an estimate.
fn seconds(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.0}s")
    } else if s >= 0.01 {
        format!("{s:.2}s")
    } else {
        format!("{:.1}ms", s * 1e3)
    }
}

impl Cut {
    /// Seconds to run `plan` in its source and read its rows. A scan read as key ranges takes
    /// one range's share of the database's work — the statements run side by side, each on
    /// its own connection — and all of the decoding here, which shares the cores with the rest
    /// of the query. (MariaDB, TPC-H SF 1, the `mariadb` client reading 3.2 M lineitem rows of
    /// 3 columns: 2.28 s as one statement, 1.69 s as two ranges, on 2 cores shared by both.)
    ///
    /// Scaled by what the source's statements taught (`fit`), when they taught something.
    fn pushed(
        &self,
        plan: &LogicalPlan,
        estimate: &Estimate,
        costs: &EngineCosts,
        fit: Option<Fit>,
    ) -> f64 {
        // As many ranges as the scan is read in: the physical planner counts them from the
        // same estimate (`FederatedScan::estimated_rows`).
        let ranges = match crate::split::split_key(plan) {
            Some(_) => crate::split::ranges(
                Some(estimate.rows as usize),
                self.partition_rows,
                self.cores,
            ),
            None => 1,
        };
        let (remote, fetch) = (estimate.remote / ranges as f64, estimate.fetch(costs));
        fit.map_or(remote + fetch, |fit| fit.seconds(remote, fetch))
    }

    /// What `source`'s statements taught, when this cut plans with it.
    fn fit(&self, source: &dyn Source) -> Option<Fit> {
        match self.learn {
            true => source.learned().and_then(Learned::fit),
            false => None,
        }
    }

    fn of(options: &ConfigOptions) -> Self {
        Self {
            pushdown: crate::config::pushdown(options),
            cores: options.execution.target_partitions.max(1),
            partition_rows: crate::split::partition_rows(options),
            learn: crate::config::learn_costs(options),
            aliases: Rc::default(),
        }
    }

    fn federate(&self, plan: &LogicalPlan) -> Result<LogicalPlan> {
        match self.rewrite(plan)? {
            Rewritten::Here(plan) => Ok(plan),
            Rewritten::Pushable(part) => part.into_plan(None),
        }
    }

    /// Rewrites below `plan`, bottom-up.
    fn rewrite(&self, plan: &LogicalPlan) -> Result<Rewritten> {
        if let LogicalPlan::TableScan(scan) = plan
            && let Some(table) = FederatedTable::of_scan(scan)
        {
            let source = Arc::clone(table.source());
            if self.pushdown.for_source(source.pushdown()) == Pushdown::None {
                // Left to the table provider, which reads only columns.
                return Ok(Rewritten::Here(plan.clone()));
            }
            let costs = source.costs();
            let estimate = cost::estimate(plan, &[], &costs);
            let written = Writer::sharing(source.as_ref(), &self.aliases).written(plan);
            let fit = self.fit(source.as_ref());
            let pushed = self.pushed(plan, &estimate, &costs, fit);
            let choice = match self.pushdown.for_source(source.pushdown()) {
                Pushdown::Cost => self.match_here(scan, &source, pushed, fit)?,
                _ => None,
            };
            return Ok(Rewritten::Pushable(Box::new(Part {
                plan: plan.clone(),
                written,
                pushed,
                fit,
                estimate,
                source,
                choice: choice.unwrap_or(Choice::Pushed {
                    split: None,
                    hinted: false,
                }),
            })));
        }
        let inputs = plan.inputs();
        if inputs.is_empty() {
            return Ok(Rewritten::Here(plan.clone()));
        }
        let children = inputs
            .into_iter()
            .map(|input| self.rewrite(input))
            .collect::<Result<Vec<_>>>()?;
        let parts: Vec<&Part> = children
            .iter()
            .filter_map(|child| match child {
                Rewritten::Pushable(part) => Some(part.as_ref()),
                Rewritten::Here(_) => None,
            })
            .collect();
        let same_source = parts.len() == children.len()
            && parts
                .iter()
                .all(|part| part.source.identity() == parts[0].source.identity());
        let written = match same_source {
            true => parts
                .iter()
                .map(|part| part.written.clone())
                .collect::<Option<Vec<_>>>()
                .and_then(|inputs| {
                    let estimates: Vec<Estimate> = parts.iter().map(|part| part.estimate).collect();
                    let costs = parts[0].source.costs();
                    Writer::sharing(parts[0].source.as_ref(), &self.aliases)
                        .listing(cost::semi_join_by_list(plan, &estimates, &costs))
                        .compose(plan, inputs)
                }),
            false => None,
        };
        if let Some(written) = written {
            let source = Arc::clone(&parts[0].source);
            let mode = self.pushdown.for_source(source.pushdown());
            let costs = source.costs();
            let inputs: Vec<Estimate> = parts.iter().map(|part| part.estimate).collect();
            let estimate = cost::estimate(plan, &inputs, &costs);
            let fit = self.fit(source.as_ref());
            let pushed = self.pushed(plan, &estimate, &costs, fit);
            let split_cost = parts.iter().map(|part| part.best()).sum::<f64>()
                + cost::local(plan, &inputs, self.cores);
            // Within a few percent, pushed: estimates are not that precise, and one statement
            // is simpler to run and to read than several and a join here.
            if mode == Pushdown::All || pushed <= split_cost * PUSH_MARGIN {
                return Ok(Rewritten::Pushable(Box::new(Part {
                    plan: plan.clone(),
                    written: Some(written),
                    source,
                    estimate,
                    pushed,
                    fit,
                    choice: Choice::Pushed {
                        split: (mode == Pushdown::Cost).then_some(split_cost),
                        hinted: mode == Pushdown::All && self.pushdown == Pushdown::Cost,
                    },
                })));
            }
            let mut above = format!(
                "{} runs here: est {} vs {} pushed",
                node_name(plan),
                seconds(split_cost),
                seconds(pushed)
            );
            if let Some(fit) = fit {
                above.push_str(&format!(" ({})", fit.describe()));
            }
            let split = self.rebuild(plan, children, Some(&above))?;
            return Ok(Rewritten::Pushable(Box::new(Part {
                plan: plan.clone(),
                written: Some(written),
                source,
                estimate,
                pushed,
                fit,
                choice: Choice::Split {
                    plan: split,
                    seconds: split_cost,
                },
            })));
        }
        Ok(Rewritten::Here(self.rebuild(plan, children, None)?))
    }

    /// A scan whose filters match text patterns, read without them and filtered here, when
    /// that is estimated faster than the scan `pushed` whole: the database no longer matches
    /// the patterns (MariaDB takes longer per row than for the scan itself) but sends the rows
    /// they would have dropped and the columns they read. `None`: pushed whole is faster,
    /// or the scan has no pattern (or a limit, which must apply after the filter).
    fn match_here(
        &self,
        scan: &TableScan,
        source: &Arc<dyn Source>,
        pushed: f64,
        fit: Option<Fit>,
    ) -> Result<Option<Choice>> {
        if scan.fetch.is_some() {
            return Ok(None);
        }
        let (patterns, kept): (Vec<Expr>, Vec<Expr>) = scan
            .filters
            .iter()
            .cloned()
            .partition(|filter| cost::pattern_matches(filter) > 0);
        let Some(predicate) = conjunction(patterns) else {
            return Ok(None);
        };
        // The lighter scan reads the columns the patterns test as well.
        let table = scan.source.schema();
        let projection = match &scan.projection {
            Some(projection) => {
                let mut projection = projection.clone();
                for column in predicate.column_refs() {
                    let i = table.index_of(column.name())?;
                    if !projection.contains(&i) {
                        projection.push(i);
                    }
                }
                Some(projection)
            }
            None => None,
        };
        let lighter = LogicalPlan::TableScan(
            TableScanBuilder::from(scan.clone())
                .with_projection(projection)
                .with_filters(kept)
                .build()?,
        );
        let costs = source.costs();
        let estimate = cost::estimate(&lighter, &[], &costs);
        let filter = Filter::try_new(predicate.clone(), Arc::new(lighter.clone()))?;
        let lighter_pushed = self.pushed(&lighter, &estimate, &costs, fit);
        let here =
            lighter_pushed + cost::local(&LogicalPlan::Filter(filter), &[estimate], self.cores);
        if here * PUSH_MARGIN >= pushed {
            return Ok(None);
        }
        let mut above = format!(
            "Filter runs here: est {} vs {} pushed",
            seconds(here),
            seconds(pushed)
        );
        if let Some(fit) = fit {
            above.push_str(&format!(" ({})", fit.describe()));
        }
        let part = Part {
            written: Writer::sharing(source.as_ref(), &self.aliases).written(&lighter),
            pushed: lighter_pushed,
            plan: lighter,
            source: Arc::clone(source),
            estimate,
            fit,
            choice: Choice::Pushed {
                split: None,
                hinted: false,
            },
        };
        let filtered = LogicalPlan::Filter(Filter::try_new(
            predicate,
            Arc::new(part.into_plan(Some(&above))?),
        )?);
        // The scan's own columns, without those only the patterns read.
        let plan = match filtered.schema().fields().len() == scan.projected_schema.fields().len() {
            true => filtered,
            false => LogicalPlan::Projection(Projection::try_new(
                scan.projected_schema
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect(),
                Arc::new(filtered),
            )?),
        };
        Ok(Some(Choice::Split {
            plan,
            seconds: here,
        }))
    }

    /// `plan` running here over its children at their best.
    fn rebuild(
        &self,
        plan: &LogicalPlan,
        children: Vec<Rewritten>,
        above: Option<&str>,
    ) -> Result<LogicalPlan> {
        let new_inputs = children
            .into_iter()
            .map(|child| match child {
                Rewritten::Pushable(part) => part.into_plan(above),
                Rewritten::Here(plan) => Ok(plan),
            })
            .collect::<Result<Vec<_>>>()?;
        let rebuilt = plan.with_new_exprs(plan.expressions(), new_inputs)?;
        // Subqueries DataFusion runs itself (uncorrelated ones left in expressions) are
        // federated on their own.
        Ok(rebuilt
            .map_subqueries(|sub| match sub {
                LogicalPlan::Subquery(mut subquery) if subquery.outer_ref_columns.is_empty() => {
                    subquery.subquery = Arc::new(self.federate(&subquery.subquery)?);
                    Ok(Transformed::yes(LogicalPlan::Subquery(subquery)))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data)
    }
}

/// The kind of a plan node, as `EXPLAIN` names it (`Join`, `Aggregate`, …).
fn node_name(plan: &LogicalPlan) -> String {
    match plan {
        LogicalPlan::Join(join) => format!("{} join", join.join_type),
        other => other
            .display()
            .to_string()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string(),
    }
}

/// Replaces `plan` (which runs whole in `source`) by a federated scan of its SQL (`written`).
/// A plan the writer cannot express (only possible for a bare table scan) is left for its
/// table provider.
fn wrap(
    plan: LogicalPlan,
    written: Option<Written>,
    source: &Arc<dyn Source>,
    choice: Option<String>,
    expected: Option<Expected>,
    estimated_rows: usize,
) -> Result<LogicalPlan> {
    match written.map(|written| Writer::new(source.as_ref()).query(&written)) {
        Some(query) => Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(FederatedScan {
                source: Arc::clone(source),
                sql: query.sql,
                schema: Arc::clone(plan.schema()),
                statistics: crate::stats::of_plan(&plan).map(Arc::new),
                split: crate::split::split_key(&plan).map(|key| (key, Arc::new(plan.clone()))),
                columns: Some(OutputColumns {
                    names: query.columns,
                    opaque: query.opaque,
                }),
                choice,
                expected,
                estimated_rows,
            }),
        })),
        None => Ok(plan),
    }
}
