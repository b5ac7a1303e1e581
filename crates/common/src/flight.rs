//! Record batches as Arrow Flight data, every column announced with the type it is written in.
//!
//! arrow-flight's `FlightDataEncoder` (version 59) announces a `LargeList` column as `List` in
//! the stream's schema message while it writes the column's 64-bit offsets: ADBC refuses such a
//! stream ("endpoint 0 returned inconsistent schema: expected large_list … got list") and
//! another node reading it between stages gets garbage. This encoder writes the schema as given
//! and each batch after it (dictionaries resent when they change), cut into messages of about
//! [`TARGET_MESSAGE_BYTES`], with Arrow's own IPC writer.
//!
//! ```text
//!   schema message (with dictionary ids) ─ [dictionary batches] ─ record batch ─ … ─ end
//! ```

use arrow_flight::FlightData;
use arrow_flight::error::FlightError;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::{
    DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions,
};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};

/// About how large one message gets: a batch whose arrays take more is sent in row slices
/// (gRPC peers refuse messages over 4 MiB by default).
pub const TARGET_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// `batches` (of `schema`) as Flight data written with `options`: the schema message first,
/// even when there are no batches.
pub fn flight_data(
    schema: SchemaRef,
    batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
    options: IpcWriteOptions,
) -> BoxStream<'static, Result<FlightData, FlightError>> {
    let generator = IpcDataGenerator::default();
    let mut dictionaries = DictionaryTracker::new(false);
    // Buffers (and the compressor) reused from one batch to the next.
    let mut context = IpcWriteContext::default();
    let header =
        generator.schema_to_bytes_with_dictionary_tracker(&schema, &mut dictionaries, &options);
    let messages = batches
        .map(move |batch| {
            let batch = batch?;
            let parts = message_sized(&batch);
            let last = parts.len().saturating_sub(1);
            let mut messages = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                // Slices of one batch have the same size: keep the scratch space between them.
                context.set_reserve_scratch(i != last);
                let (changed, data) =
                    generator.encode(part, &mut dictionaries, &options, &mut context)?;
                messages.extend(changed.into_iter().map(FlightData::from));
                messages.push(FlightData::from(data));
            }
            Ok::<_, FlightError>(futures::stream::iter(messages.into_iter().map(Ok)))
        })
        .try_flatten();
    futures::stream::once(async move { Ok(FlightData::from(header)) })
        .chain(messages)
        .boxed()
}

/// `batch` in row slices of about [`TARGET_MESSAGE_BYTES`] each.
fn message_sized(batch: &RecordBatch) -> Vec<RecordBatch> {
    let rows = batch.num_rows();
    let bytes = batch.get_array_memory_size();
    if bytes <= TARGET_MESSAGE_BYTES || rows <= 1 {
        return vec![batch.clone()];
    }
    let per_slice = rows.div_ceil(bytes.div_ceil(TARGET_MESSAGE_BYTES).min(rows));
    (0..rows)
        .step_by(per_slice)
        .map(|offset| batch.slice(offset, per_slice.min(rows - offset)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_flight::decode::FlightRecordBatchStream;
    use datafusion::arrow::array::{
        ArrayRef, DictionaryArray, Int64Array, LargeListArray, StringArray,
    };
    use datafusion::arrow::datatypes::{Int32Type, Int64Type};
    use std::sync::Arc;

    fn batch(rows: i64) -> RecordBatch {
        let lists = LargeListArray::from_iter_primitive::<Int64Type, _, _>(
            (0..rows).map(|i| (i % 5 != 0).then(|| vec![Some(i), None, Some(-i)])),
        );
        let words: DictionaryArray<Int32Type> = (0..rows)
            .map(|i| (i % 7 != 0).then(|| ["a", "b", "c"][(i % 3) as usize]))
            .collect();
        RecordBatch::try_from_iter([
            (
                "n",
                Arc::new(Int64Array::from_iter_values(0..rows)) as ArrayRef,
            ),
            ("l", Arc::new(lists) as ArrayRef),
            ("d", Arc::new(words) as ArrayRef),
            (
                "s",
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| i.to_string()),
                )),
            ),
        ])
        .unwrap()
    }

    async fn round_trip(batches: Vec<RecordBatch>, schema: SchemaRef) -> Vec<RecordBatch> {
        let data = flight_data(
            Arc::clone(&schema),
            futures::stream::iter(batches.into_iter().map(Ok)),
            IpcWriteOptions::default(),
        );
        let decoded = FlightRecordBatchStream::new_from_flight_data(data);
        let batches: Vec<RecordBatch> = decoded.try_collect().await.unwrap();
        for batch in &batches {
            assert_eq!(
                batch.schema(),
                schema,
                "the stream announces the types it carries"
            );
        }
        batches
    }

    #[tokio::test]
    async fn large_lists_and_dictionaries_arrive_as_they_were_sent() {
        let sent = vec![batch(100), batch(3)];
        let schema = sent[0].schema();
        let received = round_trip(sent.clone(), Arc::clone(&schema)).await;
        assert_eq!(received, sent);
        // No batches: the schema still arrives.
        let data = flight_data(
            Arc::clone(&schema),
            futures::stream::empty(),
            IpcWriteOptions::default(),
        );
        let mut decoded = FlightRecordBatchStream::new_from_flight_data(data);
        assert!(decoded.next().await.is_none());
        assert_eq!(decoded.schema(), Some(&schema));
    }

    #[tokio::test]
    async fn a_big_batch_goes_in_message_sized_slices_with_the_same_rows() {
        let big = batch(200_000);
        assert!(big.get_array_memory_size() > 2 * TARGET_MESSAGE_BYTES);
        let parts = message_sized(&big);
        assert!(parts.len() > 1);
        assert_eq!(
            parts.iter().map(RecordBatch::num_rows).sum::<usize>(),
            200_000
        );
        let received = round_trip(vec![big.clone()], big.schema()).await;
        let schema = big.schema();
        let joined = datafusion::arrow::compute::concat_batches(&schema, &received).unwrap();
        assert_eq!(joined, big);
    }
}
