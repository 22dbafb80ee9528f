//! The testbed: real processes on 127.0.0.1 with ports chosen at run time, one
//! implementation shared by cluster-tests, the demo and the playground.
//!
//! - [`bins`]: where the built binaries are.
//! - [`process`]: a child process with its log file, killed on drop.
//! - [`postgres`]: a throwaway PostgreSQL server (`TempPostgres`).
//! - [`mariadb`]: a throwaway MariaDB server (`TempMariadb`).
//! - [`moto`]: a throwaway S3-compatible server (`TempS3`).
//! - [`rabbitmq`]: a throwaway RabbitMQ node (`TempRabbitmq`) and reading a queue back.
//! - [`sink`]: a throwaway sink of any kind (`SinkBed`) and reading back what it holds.
//! - [`certs`]: a throwaway CA and certificates for a TLS cluster.
//! - [`cluster`]: coordinators + workers + the mock API (`TestCluster`).
//! - [`out_dir`]: output folders of drills and `up`: emptied first, foreign ones refused.
//! - [`pipeline_doc`]: pipeline documents over the mock API's id ranges.
//! - [`grpc`]: one node's own status, and submits through the leader.
//! - [`wait`]: waiting on conditions with deadlines.

pub mod bins;
pub mod certs;
pub mod cluster;
pub mod grpc;
pub mod mariadb;
pub mod moto;
pub mod out_dir;
pub mod pipeline_doc;
pub mod postgres;
pub mod process;
pub mod rabbitmq;
pub mod sink;
pub mod wait;

pub use cluster::{ClusterBuilder, TestCluster};
pub use mariadb::TempMariadb;
pub use moto::TempS3;
pub use postgres::TempPostgres;
pub use rabbitmq::TempRabbitmq;
pub use sink::{SinkBed, SinkKind, SinkReader};

/// A port that was free a moment ago, chosen below Linux's ephemeral range (32768+): the
/// kernel never hands it to a `:0` bind or an outgoing connection in the meantime, so
/// only another `free_port` caller could take it before the process that needs it binds.
pub fn free_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let port = rng.gen_range(15_000..30_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port on 127.0.0.1")
}
