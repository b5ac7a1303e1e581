//! A Flotilla node (A) federating to another (B) over Flight SQL: both are real servers on
//! loopback ports; B serves TPC-H in Parquet.

mod tpch;
