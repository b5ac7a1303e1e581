//! The coordinator's session reaches the workers: an extension option set with `SET`, a
//! `datafusion.*` option, a user function and a user plan node with its codec.

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::MemTable;
use datafusion::common::{Result, exec_err, extensions_options};
use datafusion::config::ConfigExtension;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use flotilla_distributed::{
    DistributedExec, DistributedOptions, DistributedSessionStateBuilder, InProcessCluster,
    NetworkCoalesceExec, PartitionIsolatorExec, StageTasks, Worker,
};
use futures::TryStreamExt;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

extensions_options! {
    /// A user's own options: `greeter.greeting`.
    struct Greeter {
        greeting: String, default = "hello".to_string()
    }
}

impl ConfigExtension for Greeter {
    const PREFIX: &'static str = "greeter";
}

/// `greet(x)`: `<greeter.greeting> from <node> (batch size <datafusion.execution.batch_size>)`.
/// Each node registers its own instance, so the answer says where it ran.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Greet {
    node: String,
    signature: Signature,
}

impl Greet {
    fn udf(node: &str) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            node: node.to_string(),
            signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for Greet {
    fn name(&self) -> &str {
        "greet"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(greeter) = args.config_options.extensions.get::<Greeter>() else {
            return exec_err!("greeter options are not registered on {}", self.node);
        };
        let text = format!(
            "{} from {} (batch size {})",
            greeter.greeting, self.node, args.config_options.execution.batch_size
        );
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(vec![
            text;
            args.number_rows
        ]))))
    }
}

fn numbers() -> Arc<MemTable> {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let partitions = (0..8)
        .map(|p| {
            let values: Vec<i64> = (p * 100..(p + 1) * 100).collect();
            vec![
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(Int64Array::from(values))],
                )
                .unwrap(),
            ]
        })
        .collect();
    Arc::new(MemTable::try_new(schema, partitions).unwrap())
}

/// A session like a user's: the greeter options and `greet` as `node` has them.
fn user_state(node: &str) -> SessionStateBuilder {
    let config = SessionConfig::new()
        .with_option_extension(Greeter::default())
        .with_target_partitions(2);
    SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_scalar_functions(vec![Arc::new(Greet::udf(node))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_options_and_user_functions_reach_the_workers() {
    let cluster = InProcessCluster::new(2, |i| {
        Worker::new(user_state(&format!("worker-{i}")).build())
    });
    let config = SessionConfig::new()
        .with_option_extension(Greeter::default())
        .with_option_extension(DistributedOptions {
            enabled: true,
            bytes_per_task: 1,
            min_bytes: 0,
            ..DistributedOptions::default()
        })
        .with_target_partitions(2);
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_scalar_functions(vec![Arc::new(Greet::udf("the coordinator"))])
        .with_distribution(cluster.distribution().unwrap())
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_table("numbers", numbers()).unwrap();
    ctx.sql("SET greeter.greeting = 'hola'").await.unwrap();
    ctx.sql("SET datafusion.execution.batch_size = 77")
        .await
        .unwrap();

    let sql = "SELECT greet(x) AS g, count(*) AS n FROM numbers GROUP BY g ORDER BY g";
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(false)
        .to_string();
    assert!(text.contains("NetworkShuffleExec"), "{text}");
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let rows = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    // Both workers computed `greet` with the coordinator's options, none of it ran here.
    assert!(
        rows.contains("hola from worker-0 (batch size 77)"),
        "{rows}"
    );
    assert!(
        rows.contains("hola from worker-1 (batch size 77)"),
        "{rows}"
    );
    assert!(!rows.contains("coordinator"), "{rows}");
    let total: i64 = batches
        .iter()
        .map(|b| {
            b.column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .iter()
                .flatten()
                .sum::<i64>()
        })
        .sum();
    assert_eq!(total, 800);
}

/// A user's plan node: passes its input through and notes the node it ran on.
#[derive(Debug)]
struct MarkExec {
    input: Arc<dyn ExecutionPlan>,
    node: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl DisplayAs for MarkExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MarkExec")
    }
}

impl ExecutionPlan for MarkExec {
    fn name(&self) -> &'static str {
        "MarkExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(
            &Arc<dyn PhysicalExpr>,
        ) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(MarkExec {
            input: children.remove(0),
            node: self.node.clone(),
            log: Arc::clone(&self.log),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} partition {partition}", self.node));
        self.input.execute(partition, context)
    }
}

/// Encodes [`MarkExec`]; decoded nodes are marked with this codec's node.
#[derive(Debug)]
struct MarkCodec {
    node: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl PhysicalExtensionCodec for MarkCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _: &TaskContext,
        _: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        assert_eq!(buf, b"mark");
        Ok(Arc::new(MarkExec {
            input: Arc::clone(&inputs[0]),
            node: self.node.clone(),
            log: Arc::clone(&self.log),
        }))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if node.downcast_ref::<MarkExec>().is_none() {
            return exec_err!("MarkCodec encodes MarkExec only");
        }
        buf.extend_from_slice(b"mark");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hand_placed_boundary_runs_a_user_node_on_the_workers() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let cluster = InProcessCluster::new(2, |i| {
        Worker::new(user_state(&format!("worker-{i}")).build()).with_codec(Arc::new(MarkCodec {
            node: format!("worker-{i}"),
            log: Arc::clone(&log),
        }))
    });
    let distribution = cluster
        .distribution()
        .unwrap()
        .with_codec(Arc::new(MarkCodec {
            node: "the coordinator".to_string(),
            log: Arc::clone(&log),
        }));
    let state = user_state("the coordinator")
        .with_distribution(distribution)
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_table("numbers", numbers()).unwrap();
    let scan = ctx
        .sql("SELECT x FROM numbers")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let scan = scan
        .children()
        .first()
        .map_or(Arc::clone(&scan), |c| Arc::clone(c));

    // By hand: each of two tasks reads half of the scan through MarkExec; the coordinator
    // gathers them.
    let marked: Arc<dyn ExecutionPlan> = Arc::new(MarkExec {
        input: Arc::new(PartitionIsolatorExec::new(scan, 2)),
        node: "the coordinator".to_string(),
        log: Arc::clone(&log),
    });
    let stage = StageTasks {
        query: "by-hand-1".to_string(),
        stage: 1,
        workers: cluster.urls().to_vec(),
    };
    let plan: Arc<dyn ExecutionPlan> = Arc::new(DistributedExec::new(
        Arc::new(NetworkCoalesceExec::new(marked, stage)),
        "by-hand-1".to_string(),
        cluster.urls().to_vec(),
    ));
    // Partitions one after the other: the query must not end when the first one is done.
    let mut batches = Vec::new();
    for partition in 0..plan.output_partitioning().partition_count() {
        let stream = plan.execute(partition, ctx.task_ctx()).unwrap();
        batches.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    assert!(plan.output_partitioning().partition_count() > 1);
    let mut values: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..800).collect::<Vec<_>>());
    let nodes: BTreeSet<String> = log
        .lock()
        .unwrap()
        .iter()
        .map(|entry| entry.split(" partition").next().unwrap().to_string())
        .collect();
    assert_eq!(
        nodes,
        BTreeSet::from(["worker-0".to_string(), "worker-1".to_string()])
    );
}
