//! `FederatedTable` as DataFusion's `TableProvider`: a scan of the table alone (one statement
//! with the projection, the filters the dialect can express exactly and the limit, or key
//! ranges read in parallel), and `INSERT INTO` through the source.

use crate::exec::FederatedScanExec;
use crate::source::WriteTarget;
use crate::sql::{OutputColumns, Writer};
use crate::table::{FederatedTable, unqualified};
use crate::write::FederatedSink;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Result as DfResult, internal_err, not_impl_err};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::limit::GlobalLimitExec;
use std::sync::Arc;

#[async_trait]
impl TableProvider for FederatedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.remote().arrow_schema)
    }

    fn table_type(&self) -> TableType {
        self.remote().table_type
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let filters: Vec<Expr> = filters.iter().map(unqualified).collect();
        let pushdown =
            crate::config::pushdown(state.config_options()).for_source(self.source().pushdown());
        if pushdown == crate::config::Pushdown::None {
            return self.scan_without_pushdown(state, projection, &filters, limit);
        }
        let writer = Writer::new(self.source().as_ref());
        let Some(query) = writer.base_select(
            self.remote(),
            projection.map(|p| p.as_slice()),
            &filters,
            limit,
        ) else {
            return internal_err!(
                "source '{}': a filter accepted for table {} could not be written as SQL",
                self.source().name(),
                self.remote().name
            );
        };
        let schema = match projection {
            Some(p) => Arc::new(self.remote().arrow_schema.project(p)?),
            None => Arc::clone(&self.remote().arrow_schema),
        };
        let statistics = crate::stats::of_table(
            self.remote(),
            projection.map(|p| p.as_slice()),
            filters.len(),
            limit,
        )
        .map(Arc::new);
        let partitions = self.key_ranges(
            state,
            &writer,
            projection.map(|p| p.as_slice()),
            &filters,
            limit,
            crate::stats::rows(statistics.as_deref()),
        );
        Ok(Arc::new(
            FederatedScanExec::new(Arc::clone(self.source()), query.sql, schema)
                .with_output_columns(OutputColumns {
                    names: query.columns,
                    opaque: query.opaque,
                })
                .with_partitions(partitions)
                .with_statistics(statistics),
        ))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return not_impl_err!(
                "source '{}': only INSERT INTO (append) is supported for {}.{}, not {insert_op}",
                self.source().name(),
                self.remote().schema,
                self.remote().name
            );
        }
        let sink = FederatedSink::new(
            Arc::clone(self.source()),
            WriteTarget::Append(self.remote().clone()),
            Arc::clone(&self.remote().arrow_schema),
        );
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Exact only when the SQL will contain the filter: the same writer decides both.
        Ok(filters
            .iter()
            .map(|f| match self.filter_sql(f) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }
}

impl FederatedTable {
    /// The statements reading `projection` of this table through `filters` in key ranges, one
    /// per partition, with their labels; empty when the read is not split (no split key, a
    /// limit, or fewer `rows` than two partitions' worth).
    fn key_ranges(
        &self,
        state: &dyn Session,
        writer: &Writer<'_>,
        projection: Option<&[usize]>,
        filters: &[Expr],
        limit: Option<usize>,
        rows: Option<usize>,
    ) -> Vec<(String, String)> {
        let (Some(key), None) = (&self.remote().split_key, limit) else {
            return Vec::new();
        };
        let n = crate::split::partition_count(state.config_options(), rows)
            .min(self.source().max_connections().unwrap_or(usize::MAX));
        if n < 2 {
            return Vec::new();
        }
        key.ranges(n)
            .into_iter()
            .map(|range| {
                let mut ranged = filters.to_vec();
                ranged.extend(crate::split::range_filter(key, range));
                writer
                    .base_select(self.remote(), projection, &ranged, None)
                    .map(|q| (crate::split::range_label(key, range), q.sql))
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default()
    }

    /// SQL for `filter` over this table, if the dialect can express it exactly.
    fn filter_sql(&self, filter: &Expr) -> Option<String> {
        Writer::new(self.source().as_ref()).table_filter(self.remote(), &unqualified(filter))
    }

    /// With pushdown off, the source only reads columns; the filters and the limit DataFusion
    /// handed to the scan (claimed `Exact`) run here, in DataFusion.
    fn scan_without_pushdown(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.remote().arrow_schema.fields().len()).collect();
        let wanted = projection.cloned().unwrap_or(all);
        // Read the projected columns plus those the filters need.
        let mut needed = wanted.clone();
        for filter in filters {
            for column in filter.column_refs() {
                let index = self.remote().arrow_schema.index_of(&column.name)?;
                if !needed.contains(&index) {
                    needed.push(index);
                }
            }
        }
        let writer = Writer::new(self.source().as_ref());
        let Some(query) = writer.base_select(self.remote(), Some(&needed), &[], None) else {
            return internal_err!(
                "source '{}': cannot read table {}",
                self.source().name(),
                self.remote().name
            );
        };
        let read_schema = Arc::new(self.remote().arrow_schema.project(&needed)?);
        let statistics = crate::stats::of_table(self.remote(), Some(&needed), 0, None);
        // Reading a big table whole still goes in key ranges: pulling is not reading slowly.
        let partitions = self.key_ranges(
            state,
            &writer,
            Some(&needed),
            &[],
            None,
            crate::stats::rows(statistics.as_ref()),
        );
        let mut plan: Arc<dyn ExecutionPlan> = Arc::new(
            FederatedScanExec::new(
                Arc::clone(self.source()),
                query.sql,
                Arc::clone(&read_schema),
            )
            .with_partitions(partitions)
            .with_statistics(statistics.map(Arc::new)),
        );
        if let Some(predicate) = conjunction(filters.iter().cloned()) {
            let df_schema = DFSchema::try_from(read_schema.as_ref().clone())?;
            let predicate = state.create_physical_expr(predicate, &df_schema)?;
            let keep: Vec<usize> = (0..wanted.len()).collect();
            plan = Arc::new(
                FilterExecBuilder::new(predicate, plan)
                    .apply_projection(Some(keep))?
                    .build()?,
            );
        }
        if let Some(fetch) = limit {
            plan = Arc::new(GlobalLimitExec::new(plan, 0, Some(fetch)));
        }
        Ok(plan)
    }
}
