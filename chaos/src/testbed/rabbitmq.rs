//! `TempRabbitmq`: a throwaway RabbitMQ node from the installed Debian package
//! (`rabbitmq-server`, installed by scripts/prereqs.sh), with its own Erlang port mapper
//! (`epmd`), AMQP and distribution ports chosen at run time, its data, logs, cookie and
//! configuration in a temporary directory, a user `apitap` with a random password, no
//! plugins, killed on drop. Every `RABBITMQ_*` location is set, so the node never reads
//! or writes the packaged service's files (`/etc/rabbitmq`, `/var/lib/rabbitmq`) and never
//! talks to a packaged node on 5672.
//!
//! [`read_messages`] reads back every message of a queue without consuming it: what a
//! checker compares with the records the mock API served.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lapin::options::BasicGetOptions;
use lapin::types::AMQPValue;
use lapin::{Connection, ConnectionProperties};

use super::{free_port, wait};

/// Where the Debian package keeps the node's own scripts (`/usr/sbin/rabbitmq-server` is a
/// wrapper that switches to the `rabbitmq` user and the packaged service's files).
pub const RABBITMQ_PACKAGE_BIN: &str = "/usr/lib/rabbitmq/bin";

pub struct TempRabbitmq {
    dir: tempfile::TempDir,
    server: Child,
    epmd: Child,
    pub port: u16,
    pub user: String,
    pub password: String,
}

/// `rabbitmq-server` from `APITAP_RABBITMQ_BIN` or [`RABBITMQ_PACKAGE_BIN`].
fn find_server() -> anyhow::Result<PathBuf> {
    let dir = std::env::var("APITAP_RABBITMQ_BIN").unwrap_or_else(|_| RABBITMQ_PACKAGE_BIN.into());
    let path = Path::new(&dir).join("rabbitmq-server");
    anyhow::ensure!(
        path.exists(),
        "{} not found; install RabbitMQ (Debian: apt-get install rabbitmq-server, or \
         scripts/prereqs.sh) or set APITAP_RABBITMQ_BIN to the folder of its scripts",
        path.display()
    );
    Ok(path)
}

impl TempRabbitmq {
    /// Starts the node and waits until it takes AMQP connections (a few seconds). Blocking.
    pub fn start() -> anyhow::Result<Self> {
        let server_bin = find_server()?;
        let dir = tempfile::Builder::new()
            .prefix("apitap-rabbitmq-")
            .tempdir()?;
        let path = dir.path();
        let (port, dist_port, epmd_port) = (free_port(), free_port(), free_port());
        let password = format!("{:032x}", rand::random::<u128>());
        let user = "apitap".to_string();
        std::fs::write(
            path.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.1 = 127.0.0.1:{port}\n\
                 default_user = {user}\n\
                 default_pass = {password}\n\
                 loopback_users = none\n"
            ),
        )?;
        std::fs::write(path.join("enabled_plugins"), "[].\n")?;
        let log = std::fs::File::create(path.join("server.log"))?;
        // An epmd of the node's own on its own port: the node registers there, and the
        // test ends it (a node-started epmd would outlive the test as a daemon).
        let epmd = Command::new("epmd")
            .arg("-port")
            .arg(epmd_port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log.try_clone()?))
            .process_group(0)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run epmd (from the erlang-base package): {e}"))?;
        let file = |name: &str| path.join(name).display().to_string();
        let server = Command::new(&server_bin)
            .env("HOME", path)
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RABBITMQ_NODENAME", format!("apitap-{port}@localhost"))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", file("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", file("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", file("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", file("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", file("mnesia"))
            .env("RABBITMQ_LOG_BASE", file("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_PID_FILE", file("node.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            // The script starts beam.smp and its helpers: one group to end them together.
            .process_group(0)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", server_bin.display()))?;
        let mut node = Self {
            dir,
            server,
            epmd,
            port,
            user,
            password,
        };
        node.wait_ready()?;
        Ok(node)
    }

    /// Until the node's log says its start-up is complete (its listeners are up by then)
    /// and the AMQP port takes a TCP connection, or the node has exited (then with its log).
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let log = self.dir.path().join("server.log");
        let started =
            || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("Server startup complete"));
        wait::listening(
            "rabbitmq-server",
            &mut self.server,
            self.port,
            Duration::from_secs(90),
            Some(&log),
            started,
        )
    }

    /// The AMQP URL with the password in it (the default vhost `/`).
    pub fn url(&self) -> String {
        format!(
            "amqp://{}:{}@127.0.0.1:{}/%2f",
            self.user, self.password, self.port
        )
    }

    /// The AMQP URL with the password as the secret reference `${var}`.
    pub fn url_with_secret(&self, var: &str) -> String {
        format!(
            "amqp://{}:${{{var}}}@127.0.0.1:{}/%2f",
            self.user, self.port
        )
    }

    /// Freezes the node (SIGSTOP to its process group): connections stay open, nothing is
    /// answered, as with a broker stuck on its disk.
    pub fn pause(&self) {
        self.signal_node(libc::SIGSTOP);
    }

    /// Thaws a paused node.
    pub fn resume(&self) {
        self.signal_node(libc::SIGCONT);
    }

    fn signal_node(&self, sig: i32) {
        // SAFETY: kill(2) on the process group this testbed started; no memory is touched.
        unsafe {
            libc::kill(-(self.server.id() as i32), sig);
        }
    }

    /// The node's log (startup, connections, errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for TempRabbitmq {
    fn drop(&mut self) {
        self.resume();
        for child in [&mut self.server, &mut self.epmd] {
            // SAFETY: kill(2) on the process group this test started; no memory is touched.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

/// One message read back from a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadMessage {
    /// The `id` field of the JSON body, as text (`None`: no such field).
    pub record_id: Option<String>,
    pub message_id: String,
    /// The `x-apitap-fence` header.
    pub fence: Option<i64>,
    /// The message's JSON body (`Null` if it is not JSON).
    pub body: serde_json::Value,
}

/// Every message in `queue` at `url` as (record id, message_id) pairs, in queue order,
/// without consuming them: each is fetched unacknowledged and all go back to the queue
/// when the channel closes. A message without a JSON `id` or a `message_id` is an error.
pub async fn read_messages(url: &str, queue: &str) -> anyhow::Result<Vec<(String, String)>> {
    read_all(url, queue)
        .await?
        .into_iter()
        .map(|m| match m.record_id {
            Some(id) => Ok((id, m.message_id)),
            None => anyhow::bail!("message {} has no JSON `id` field", m.message_id),
        })
        .collect()
}

/// Every message in `queue`, with its fence, unconsumed (see [`read_messages`]).
pub async fn read_all(url: &str, queue: &str) -> anyhow::Result<Vec<ReadMessage>> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    let mut out = Vec::new();
    while let Some(m) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await?
    {
        let d = &m.delivery;
        let message_id = d
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .ok_or_else(|| anyhow::anyhow!("a message in {queue} has no message_id"))?;
        let body: serde_json::Value = serde_json::from_slice(&d.data).unwrap_or_default();
        let record_id = body.get("id").map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let fence =
            d.properties
                .headers()
                .as_ref()
                .and_then(|h| match h.inner().get("x-apitap-fence") {
                    Some(AMQPValue::LongLongInt(f)) => Some(*f),
                    _ => None,
                });
        out.push(ReadMessage {
            record_id,
            message_id,
            fence,
            body,
        });
    }
    // Unacknowledged messages return to the queue, in order, when the channel closes.
    channel.close(200, "read".into()).await?;
    conn.close(200, "read".into()).await?;
    Ok(out)
}

/// How many messages `queue` at `url` holds now (a passive declare: nothing is read).
pub async fn queue_len(url: &str, queue: &str) -> anyhow::Result<u32> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    let declared = channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await?;
    conn.close(200, "counted".into()).await?;
    Ok(declared.message_count())
}
