//! The fault proxy: a TCP proxy in front of each coordinator, so that drills can partition
//! or slow down the links between coordinators.
//!
//! Every coordinator listens on its own address but advertises its proxy's address
//! (`--advertise-addr`), so its peers dial the proxy. A proxy only knows who dials it by the
//! connection's source port, so it looks the port up in `/proc/net/tcp` and finds which
//! coordinator process owns that socket (`/proc/<pid>/fd`); the drill keeps the node → pid
//! map current with [`PeerProxies::set_pid`]. Rules are set per directed link
//! (source node → destination node):
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
use tokio::task::JoinHandle;

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
    /// node id → (proxy address, upstream address).
    addrs: HashMap<u64, (SocketAddr, String)>,
    tasks: Vec<JoinHandle<()>>,
}

impl PeerProxies {
    /// Binds one proxy on 127.0.0.1 (a free port) per `(node id, upstream address)`.
    pub async fn start(upstreams: &[(u64, String)]) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            rules: RwLock::default(),
            generation: watch::channel(0).0,
            pids: RwLock::default(),
            stats: Default::default(),
        });
        let mut addrs = HashMap::new();
        let mut tasks = Vec::new();
        for (node, upstream) in upstreams {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            addrs.insert(*node, (addr, upstream.clone()));
            tasks.push(tokio::spawn(serve(
                listener,
                *node,
                upstream.clone(),
                shared.clone(),
            )));
        }
        Ok(Self {
            shared,
            addrs,
            tasks,
        })
    }

    /// The address peers should dial to reach `node` (its proxy).
    pub fn addr(&self, node: u64) -> Option<String> {
        self.addrs.get(&node).map(|(a, _)| a.to_string())
    }

    /// Records the process id of coordinator `node` (after every (re)start).
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
        for t in &self.tasks {
            t.abort();
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
        let shared = shared.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let pids = shared.pids.read().expect("pids lock").clone();
            let src = tokio::task::spawn_blocking(move || {
                identify(peer.port(), local_port, &pids)
            })
            .await
            .ok()
            .flatten();
            {
                let mut st = shared.stats.lock().expect("stats lock");
                st.accepted += 1;
                st.identified += u64::from(src.is_some());
            }
            let link = src.map(|s| (s, node));
            let _ = relay(inbound, &upstream, link, shared).await;
        });
    }
}

/// Forwards one connection until either side closes or a `Reset` rule cuts it.
async fn relay(
    inbound: TcpStream,
    upstream: &str,
    link: Option<Link>,
    shared: Arc<Shared>,
) -> std::io::Result<()> {
    if shared.rule(link) == Some(LinkFault::Reset) {
        shared.stats.lock().expect("stats lock").reset += 1;
        return Ok(());
    }
    let outbound = TcpStream::connect(upstream).await?;
    inbound.set_nodelay(true)?;
    outbound.set_nodelay(true)?;
    let (ri, wi) = inbound.into_split();
    let (ro, wo) = outbound.into_split();
    let mut generation = shared.generation.subscribe();
    let reset_watch = {
        let shared = shared.clone();
        async move {
            loop {
                if generation.changed().await.is_err() {
                    return;
                }
                if shared.rule(link) == Some(LinkFault::Reset) {
                    shared.stats.lock().expect("stats lock").reset += 1;
                    return;
                }
            }
        }
    };
    tokio::select! {
        _ = pipe(ri, wo, link, shared.clone()) => {}
        _ = pipe(ro, wi, link, shared.clone()) => {}
        _ = reset_watch => {}
    }
    Ok(())
}

/// One direction: a reader stamps chunks with their arrival time, the writer forwards each
/// one when the link's rule lets it (so a delay is added once per chunk, not accumulated).
async fn pipe(mut r: OwnedReadHalf, mut w: OwnedWriteHalf, link: Option<Link>, shared: Arc<Shared>) {
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
            if !gate(link, at, &shared).await {
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

/// Waits until a chunk that arrived at `at` may go on; false when the link is reset.
async fn gate(link: Option<Link>, at: Instant, shared: &Shared) -> bool {
    let mut generation = shared.generation.subscribe();
    loop {
        match shared.rule(link) {
            None => return true,
            Some(LinkFault::Reset) => return false,
            Some(LinkFault::Delay(d)) => {
                tokio::time::sleep_until((at + d).into()).await;
                return true;
            }
            Some(LinkFault::Blackhole) => {
                if generation.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// The coordinator (by node id) whose process owns the client socket `127.0.0.1:peer_port`
/// connected to our `local_port`, if any.
fn identify(peer_port: u16, local_port: u16, pids: &HashMap<u64, u32>) -> Option<u64> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|table| socket_inode(&table, peer_port, local_port))?;
    let needle = format!("socket:[{inode}]");
    pids.iter().find_map(|(node, pid)| {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        fds.filter_map(|e| e.ok())
            .any(|e| {
                std::fs::read_link(e.path())
                    .map(|t| t.as_os_str() == needle.as_str())
                    .unwrap_or(false)
            })
            .then_some(*node)
    })
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
        let proxies = PeerProxies::start(&[(2, echo_addr)]).await?;
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
