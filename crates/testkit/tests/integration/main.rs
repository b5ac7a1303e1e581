//! Integration tests of the test kit: real PostgreSQL and MariaDB servers.

mod servers;
