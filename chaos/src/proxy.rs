//! The fault proxy: a TCP proxy in front of each coordinator, so that drills can partition
//! or slow down the links between coordinators.
//!
//! Every coordinator listens on its own address but advertises its proxy's address
//! (`--advertise-addr`), so its peers dial the proxy. A proxy only knows who dials it by the
//! connection's source port, so it looks the port up in `/proc/net/tcp` and finds the
//! `apitap-coordinator` child process that owns that socket (`/proc/<pid>/fd`); the node id
//! is the `--id` on its command line, so restarts need no bookkeeping. Rules are set per directed
//! link (source node → destination node):
//!
//! - [`LinkFault::Blackhole`]: bytes are held, in both directions, until the rule is lifted
//!   (what a partition looks like to TCP: nothing arrives, and nothing is lost once healed);
//! - [`LinkFault::Reset`]: existing connections are closed and new ones closed at once;
//! - [`LinkFault::Delay`]: every chunk is forwarded that much later.
//!
//! Connections from anyone else (workers and clients that followed a leader hint, whose
//! source is not a known coordinator) always pass: the proxies cut coordinator links only.
//! Linux only (it reads `/proc`); elsewhere every connection passes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// What happens on one directed link between two coordinators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// Hold every byte until the rule is lifted.
    Blackhole,
    /// Close the link's connections, now and whenever one is opened.
    Reset,
    /// Forward every chunk this much later.
    Delay(Duration),
}

/// Node ids on both ends of a directed link: (the dialing node, the node behind the proxy).
pub type Link = (u64, u64);

/// Counters of one proxy set, for the drill report.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ProxyStats {
    /// Connections accepted by all proxies.
    pub accepted: u64,
    /// Of those, connections whose dialing coordinator was identified.
    pub identified: u64,
    /// Connections closed by a `Reset` rule.
    pub reset: u64,
}

struct Shared {
    rules: RwLock<HashMap<Link, LinkFault>>,
    /// Bumped on every rule change; held connections wait on it.
    generation: watch::Sender<u64>,
    pids: RwLock<HashMap<u64, u32>>,
    stats: std::sync::Mutex<ProxyStats>,
}

impl Shared {
    fn rule(&self, link: Option<Link>) -> Option<LinkFault> {
        let link = link?;
        self.rules.read().expect("rules lock").get(&link).copied()
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

/// One proxy per coordinator; dropping the set stops them.
pub struct PeerProxies {
    shared: Arc<Shared>,
    /// node id → proxy address.
    addrs: HashMap<u64, SocketAddr>,
    /// The proxies run on their own threads, so a busy caller (the drill also serves the
    /// mock API and polls the cluster) does not slow the Raft messages down.
    runtime: Option<tokio::runtime::Runtime>,
}

impl PeerProxies {
    /// Binds one proxy on 127.0.0.1 (a free port) per `(node id, upstream address)`.
    pub fn start(upstreams: &[(u64, String)]) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            rules: RwLock::default(),
            generation: watch::channel(0).0,
            pids: RwLock::default(),
            stats: Default::default(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy")
            .enable_all()
            .build()?;
        let mut addrs = HashMap::new();
        for (node, upstream) in upstreams {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            addrs.insert(*node, listener.local_addr()?);
            let (node, upstream, shared) = (*node, upstream.clone(), shared.clone());
            runtime.spawn(async move {
                if let Ok(listener) = TcpListener::from_std(listener) {
                    serve(listener, node, upstream, shared).await;
                }
            });
        }
        Ok(Self {
            shared,
            addrs,
            runtime: Some(runtime),
        })
    }

    /// The address peers should dial to reach `node` (its proxy).
    pub fn addr(&self, node: u64) -> Option<String> {
        self.addrs.get(&node).map(|a| a.to_string())
    }

    /// Treats process `pid`, which is not an `apitap-coordinator`, as coordinator `node`
    /// (for tests that play a coordinator themselves).
    pub fn set_pid(&self, node: u64, pid: u32) {
        self.shared
            .pids
            .write()
            .expect("pids lock")
            .insert(node, pid);
    }

    /// Sets (`Some`) or lifts (`None`) the fault of one directed link.
    pub fn set_link(&self, link: Link, fault: Option<LinkFault>) {
        {
            let mut rules = self.shared.rules.write().expect("rules lock");
            match fault {
                Some(f) => rules.insert(link, f),
                None => rules.remove(&link),
            };
        }
        self.shared.bump();
    }

    /// Applies `fault` to every link from and to `node`.
    pub fn isolate(&self, node: u64, fault: LinkFault) {
        {
            let mut rules = self.shared.rules.write().expect("rules lock");
            for other in self.addrs.keys().filter(|n| **n != node) {
                rules.insert((node, *other), fault);
                rules.insert((*other, node), fault);
            }
        }
        self.shared.bump();
    }

    /// Lifts every rule on the links from and to `node`.
    pub fn heal(&self, node: u64) {
        self.shared
            .rules
            .write()
            .expect("rules lock")
            .retain(|(a, b), _| *a != node && *b != node);
        self.shared.bump();
    }

    /// Lifts every rule.
    pub fn heal_all(&self) {
        self.shared.rules.write().expect("rules lock").clear();
        self.shared.bump();
    }

    pub fn stats(&self) -> ProxyStats {
        self.shared.stats.lock().expect("stats lock").clone()
    }
}

impl Drop for PeerProxies {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn serve(listener: TcpListener, node: u64, upstream: String, shared: Arc<Shared>) {
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        let Ok((inbound, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        shared.stats.lock().expect("stats lock").accepted += 1;
        // Who dialed is looked up beside the relay, not before it, so a slow `/proc` never
        // delays a Raft message; while it is unknown, bytes wait only if some rule is set.
        let (ident_tx, ident) = watch::channel(None);
        let pids = shared.pids.read().expect("pids lock").clone();
        let stats_shared = shared.clone();
        tokio::task::spawn_blocking(move || {
            let src = identify(peer.port(), local_port, &pids);
            stats_shared.stats.lock().expect("stats lock").identified += u64::from(src.is_some());
            let _ = ident_tx.send(Some(src));
        });
        let conn = Conn {
            dst: node,
            ident,
            shared: shared.clone(),
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let _ = relay(inbound, &upstream, conn).await;
        });
    }
}

/// One proxied connection: where it goes, and who dialed it once that is known.
#[derive(Clone)]
struct Conn {
    dst: u64,
    /// `None` while the lookup runs, then `Some(dialing node, if a coordinator)`.
    ident: watch::Receiver<Option<Option<u64>>>,
    shared: Arc<Shared>,
}

impl Conn {
    /// The link's rule; `Err` while the dialer is unknown.
    fn rule(&self) -> Result<Option<LinkFault>, ()> {
        match *self.ident.borrow() {
            None => Err(()),
            Some(src) => Ok(self.shared.rule(src.map(|s| (s, self.dst)))),
        }
    }

    /// Waits until a chunk that arrived at `at` may go on; false when the link is reset.
    async fn gate(&mut self, at: Instant) -> bool {
        let mut generation = self.shared.generation.subscribe();
        loop {
            match self.rule() {
                Err(()) if self.shared.rules.read().expect("rules lock").is_empty() => return true,
                Ok(None) => return true,
                Ok(Some(LinkFault::Reset)) => return false,
                Ok(Some(LinkFault::Delay(d))) => {
                    tokio::time::sleep_until((at + d).into()).await;
                    return true;
                }
                Err(()) | Ok(Some(LinkFault::Blackhole)) => {
                    if !self.changed(&mut generation).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Waits for a rule change, or for the dialer to become known; false once the proxies
    /// are gone.
    async fn changed(&mut self, generation: &mut watch::Receiver<u64>) -> bool {
        if self.ident.borrow().is_some() {
            return generation.changed().await.is_ok();
        }
        tokio::select! {
            r = generation.changed() => r.is_ok(),
            // An error here means the lookup ended (its sender is gone): look again.
            _ = self.ident.changed() => true,
        }
    }

    /// Returns when a `Reset` rule applies to this connection.
    async fn until_reset(mut self) {
        let mut generation = self.shared.generation.subscribe();
        loop {
            if self.rule() == Ok(Some(LinkFault::Reset)) {
                self.shared.stats.lock().expect("stats lock").reset += 1;
                return;
            }
            if !self.changed(&mut generation).await {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Forwards one connection until either side closes or a `Reset` rule cuts it.
async fn relay(inbound: TcpStream, upstream: &str, conn: Conn) -> std::io::Result<()> {
    let outbound = TcpStream::connect(upstream).await?;
    inbound.set_nodelay(true)?;
    outbound.set_nodelay(true)?;
    let (ri, wi) = inbound.into_split();
    let (ro, wo) = outbound.into_split();
    tokio::select! {
        _ = pipe(ri, wo, conn.clone()) => {}
        _ = pipe(ro, wi, conn.clone()) => {}
        _ = conn.until_reset() => {}
    }
    Ok(())
}

/// One direction: a reader stamps chunks with their arrival time, the writer forwards each
/// one when the link's rule lets it (so a delay is added once per chunk, not accumulated).
async fn pipe(mut r: OwnedReadHalf, mut w: OwnedWriteHalf, mut conn: Conn) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            if !conn.gate(at).await {
                return;
            }
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// The coordinator (by node id) whose process owns the client socket `127.0.0.1:peer_port`
/// connected to our `local_port`, if any: one of `pids`, or an `apitap-coordinator` child of
/// this process (its `--id`).
fn identify(peer_port: u16, local_port: u16, pids: &HashMap<u64, u32>) -> Option<u64> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|table| socket_inode(&table, peer_port, local_port))?;
    let needle = format!("socket:[{inode}]");
    let owns = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.filter_map(|e| e.ok()).any(|e| {
                    std::fs::read_link(e.path())
                        .map(|t| t.as_os_str() == needle.as_str())
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false)
    };
    if let Some((node, _)) = pids.iter().find(|(_, pid)| owns(**pid)) {
        return Some(*node);
    }
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, coordinator_id(pid)?)))
        .find_map(|(pid, node)| owns(pid).then_some(node))
}

/// The `--id` of process `pid` if it is an `apitap-coordinator` this process started.
fn coordinator_id(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces, so split after its `)`.
    let ppid: u32 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    if ppid != std::process::id() {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    if !args.first()?.ends_with(b"apitap-coordinator") {
        return None;
    }
    let id = args.windows(2).find(|w| w[0] == b"--id")?[1];
    std::str::from_utf8(id).ok()?.parse().ok()
}

/// The inode of the socket whose local port is `local` and remote port `remote`, from the
/// text of `/proc/net/tcp` (addresses are `HEXIP:HEXPORT`; column 10 is the inode).
fn socket_inode(table: &str, local: u16, remote: u16) -> Option<u64> {
    let port = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 10 {
            return None;
        }
        (port(cols[1]) == Some(local) && port(cols[2]) == Some(remote))
            .then(|| cols[9].parse().ok())
            .flatten()
            .filter(|inode| *inode != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_inode_of_a_connection_in_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 20 4 30 10 -1\n";
        assert_eq!(socket_inode(table, 0xD431, 0x1F90), Some(2222));
        assert_eq!(socket_inode(table, 0x1F90, 0xD431), None);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn blackhole_holds_bytes_until_healed_and_delay_delays() -> std::io::Result<()> {
        let echo = TcpListener::bind("127.0.0.1:0").await?;
        let echo_addr = echo.local_addr()?.to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxies = PeerProxies::start(&[(2, echo_addr)])?;
        // This test process plays coordinator 1.
        proxies.set_pid(1, std::process::id());
        let mut c = TcpStream::connect(proxies.addr(2).unwrap()).await?;
        let mut buf = [0u8; 4];
        c.write_all(b"ping").await?;
        c.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");

        proxies.isolate(1, LinkFault::Blackhole);
        c.write_all(b"held").await?;
        let waited = tokio::time::timeout(Duration::from_millis(300), c.read_exact(&mut buf)).await;
        assert!(waited.is_err(), "bytes crossed a blackholed link");
        proxies.heal_all();
        c.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"held");

        proxies.set_link((1, 2), Some(LinkFault::Delay(Duration::from_millis(200))));
        let started = Instant::now();
        c.write_all(b"slow").await?;
        c.read_exact(&mut buf).await?;
        assert!(started.elapsed() >= Duration::from_millis(200));

        proxies.set_link((1, 2), Some(LinkFault::Reset));
        let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
            .await
            .expect("reset closes the connection")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert!(proxies.stats().identified >= 1);
        Ok(())
    }
}
