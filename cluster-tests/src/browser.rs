//! A real headless Chromium driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands in on fd 3, answers and events out on fd 4, each a
//! JSON message ended by a NUL byte), so that a test can sign in, click and read the DOM
//! without a Node toolchain or a WebSocket client.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use serde_json::{json, Value};

/// How long one command or page load may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where Chromium is, or `None` when it is not installed (scripts/prereqs.sh installs it).
pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The plain command line: `chromium --headless … ARGS URL` (no session, no cookie).
pub fn headless(args: &[&str], url: &str) -> anyhow::Result<std::process::Output> {
    let bin = chromium().context("chromium is not installed")?;
    Ok(Command::new(bin)
        .args(["--headless", "--disable-gpu", "--no-sandbox"])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()?)
}

/// One browser with one page.
pub struct Browser {
    child: Child,
    commands: File,
    messages: Receiver<Value>,
    next_id: u64,
    session: String,
}

impl Browser {
    /// Starts Chromium with its profile in `profile` and opens a blank page of
    /// `width`×`height` CSS pixels.
    pub fn launch(profile: &Path, width: u32, height: u32) -> anyhow::Result<Browser> {
        let bin = chromium().context("chromium is not installed")?;
        let (to_browser_read, to_browser_write) = pipe()?;
        let (from_browser_read, from_browser_write) = pipe()?;
        let mut cmd = Command::new(bin);
        cmd.args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe dup2 calls between fork and exec; the pipe ends
        // are at fds >= 10, so neither dup2 clobbers the other's source.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(to_browser_read, 3) < 0 || libc::dup2(from_browser_write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().context("starting chromium")?;
        // SAFETY: the fds are ours, open, and each is owned by exactly one File from here.
        let (commands, incoming) = unsafe {
            libc::close(to_browser_read);
            libc::close(from_browser_write);
            (
                File::from_raw_fd(to_browser_write),
                File::from_raw_fd(from_browser_read),
            )
        };
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(incoming);
            let mut buf = Vec::new();
            while r.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                buf.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        let mut b = Browser {
            child,
            commands,
            messages,
            next_id: 0,
            session: String::new(),
        };
        let target = b.browser_call("Target.createTarget", json!({"url": "about:blank"}))?;
        let attached = b.browser_call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        )?;
        b.session = attached["sessionId"]
            .as_str()
            .context("no session")?
            .to_string();
        b.call("Page.enable", json!({}))?;
        b.resize(width, height, false)?;
        Ok(b)
    }

    /// Lays the page out as a `width`×`height` screen (`mobile`: a phone's viewport rules).
    pub fn resize(&mut self, width: u32, height: u32, mobile: bool) -> anyhow::Result<()> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )?;
        Ok(())
    }

    /// Opens `url` and waits for its load event.
    pub fn open(&mut self, url: &str) -> anyhow::Result<()> {
        self.drain();
        self.call("Page.navigate", json!({"url": url}))?;
        self.wait_event("Page.loadEventFired")
    }

    /// Runs `js` in the page and returns its value.
    pub fn eval(&mut self, js: &str) -> anyhow::Result<Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        )?;
        anyhow::ensure!(r.get("exceptionDetails").is_none(), "{js}: {r}");
        Ok(r["result"]["value"].clone())
    }

    /// Clicks the element `selector` names (which must exist) and waits for the page it
    /// leads to (a form post answered with a redirect) to load.
    pub fn click_and_wait(&mut self, selector: &str) -> anyhow::Result<()> {
        self.drain();
        let sel = serde_json::to_string(selector)?;
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.click(); return true; }})()"
        ))?;
        anyhow::ensure!(found == json!(true), "no element {selector} on the page");
        self.wait_event("Page.loadEventFired")
    }

    /// The page's DOM as HTML.
    pub fn dom(&mut self) -> anyhow::Result<String> {
        Ok(self
            .eval("document.documentElement.outerHTML")?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The text of the first element `selector` names (empty if none).
    pub fn text(&mut self, selector: &str) -> anyhow::Result<String> {
        let sel = serde_json::to_string(selector)?;
        let v = self.eval(&format!(
            "(document.querySelector({sel}) || {{textContent: ''}}).textContent"
        ))?;
        Ok(v.as_str().unwrap_or_default().trim().to_string())
    }

    /// Saves a PNG of the whole page to `path`.
    pub fn screenshot(&mut self, path: &Path) -> anyhow::Result<()> {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        )?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().context("no screenshot data")?)?;
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Closes the browser as a user would, so that it writes its profile (cookies
    /// included) to disk, and waits for it to exit.
    pub fn close(mut self) -> anyhow::Result<()> {
        let _ = self.browser_call("Browser.close", json!({}));
        let deadline = Instant::now() + STEP_TIMEOUT;
        while self.child.try_wait()?.is_none() {
            anyhow::ensure!(Instant::now() < deadline, "chromium did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn browser_call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.send(json!({"method": method, "params": params}))
    }

    fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let session = self.session.clone();
        self.send(json!({"method": method, "params": params, "sessionId": session}))
    }

    fn send(&mut self, mut msg: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        msg["id"] = id.into();
        let mut bytes = serde_json::to_vec(&msg)?;
        bytes.push(0);
        self.commands.write_all(&bytes)?;
        let method = msg["method"].clone();
        let reply = self.wait_for(|m| m["id"] == id)?;
        anyhow::ensure!(reply.get("error").is_none(), "{method}: {}", reply["error"]);
        Ok(reply["result"].clone())
    }

    fn wait_event(&mut self, method: &str) -> anyhow::Result<()> {
        self.wait_for(|m| m["method"] == method).map(drop)
    }

    fn wait_for(&mut self, want: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .messages
                .recv_timeout(left)
                .context("chromium did not answer in time")?;
            if want(&m) {
                return Ok(m);
            }
        }
    }

    /// Forgets events that came before the next step.
    fn drain(&mut self) {
        while self.messages.try_recv().is_ok() {}
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipe whose ends are at fds >= 10, closed on exec.
fn pipe() -> anyhow::Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    anyhow::ensure!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0,
        "pipe: {}",
        std::io::Error::last_os_error()
    );
    let high = |fd: i32| {
        // SAFETY: fd is open; the duplicate is ours and the original is closed once.
        let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        unsafe { libc::close(fd) };
        d
    };
    let (r, w) = (high(fds[0]), high(fds[1]));
    anyhow::ensure!(
        r >= 0 && w >= 0,
        "fcntl: {}",
        std::io::Error::last_os_error()
    );
    Ok((r, w))
}
