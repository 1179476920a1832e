//! The simulator task: owns the device and its pty, runs timers, serves control requests; plus
//! the control socket server (one JSON object per line in, one reply line out).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::device::{Action, Device};
use super::pty::{self, Pty};
use super::voice::VoiceLink;
use super::{Request, SimError, SimHandle, SimOptions, control};

/// Bytes kept for a reader that does not read (beyond this, output is dropped like a UART's).
const MAX_BACKLOG: usize = 64 * 1024;
/// Longest control line accepted.
const MAX_CONTROL_LINE: u64 = 1024 * 1024;

pub(crate) async fn spawn(opts: SimOptions) -> Result<SimHandle, SimError> {
    if opts.imei.is_empty() || opts.link.as_os_str().is_empty() {
        return Err(SimError::Option("link and imei must not be empty".into()));
    }
    let mut device = Device::new(opts.clone());
    let first = Pty::open(None)?;
    pty::replace_link(&opts.link, first.path())?;
    let voice = match &opts.voice_link {
        Some(path) => Some(VoiceLink::open(path.clone())?),
        None => None,
    };
    device.plugged_in(first.path().to_path_buf(), Instant::now());

    let (tx, rx) = mpsc::channel(64);
    let control_task = match &opts.control {
        Some(path) => {
            let _ = std::fs::remove_file(path);
            let listener = UnixListener::bind(path)
                .map_err(|e| SimError::io(format!("binding {}", path.display()), e))?;
            Some(tokio::spawn(serve_control(listener, tx.clone())))
        }
        None => None,
    };
    let control_path = opts.control.clone();
    let task = tokio::spawn(async move {
        let link = run_device(device, Some(first), voice, rx).await;
        pty::remove_link(&link);
        if let Some(p) = control_path {
            let _ = std::fs::remove_file(p);
        }
    });
    Ok(SimHandle {
        link: opts.link,
        tx,
        task,
        control_task,
    })
}

async fn read_opt(pty: &Option<Pty>, buf: &mut [u8]) -> Result<usize, SimError> {
    match pty {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn writable_opt(pty: &Option<Pty>) -> Result<(), SimError> {
    match pty {
        Some(p) => p.writable().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The ports the runner owns besides the device.
struct Ports {
    pty: Option<Pty>,
    last_path: Option<PathBuf>,
    backlog: Vec<u8>,
    link: PathBuf,
    voice: Option<VoiceLink>,
}

async fn run_device(
    mut device: Device,
    pty: Option<Pty>,
    voice: Option<VoiceLink>,
    mut rx: mpsc::Receiver<Request>,
) -> PathBuf {
    let mut ports = Ports {
        last_path: pty.as_ref().map(|p| p.path().to_path_buf()),
        pty,
        backlog: Vec::new(),
        link: device.opts.link.clone(),
        voice,
    };
    let mut buf = [0u8; 4096];
    loop {
        apply_actions(&mut device, &mut ports);
        let Ports {
            pty,
            backlog,
            voice,
            ..
        } = &mut ports;
        backlog.extend(device.take_output());
        if let Some(p) = pty.as_ref() {
            while !backlog.is_empty() {
                match p.try_write(backlog) {
                    Ok(0) => break,
                    Ok(n) => {
                        backlog.drain(..n);
                    }
                    Err(e) => {
                        tracing::debug!("pty write: {e}");
                        backlog.clear();
                    }
                }
            }
        }
        if backlog.len() > MAX_BACKLOG {
            let excess = backlog.len() - MAX_BACKLOG;
            backlog.drain(..excess);
        }
        let deadline = device.next_deadline();
        tokio::select! {
            r = read_opt(pty, &mut buf) => match r {
                Ok(n) => device.input(&buf[..n], Instant::now()),
                Err(e) => {
                    tracing::debug!("pty read: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            r = writable_opt(pty), if !backlog.is_empty() => {
                if let Err(e) = r {
                    tracing::debug!("pty writable: {e}");
                }
            }
            req = rx.recv() => match req {
                None | Some(Request::Shutdown) => break,
                Some(Request::Control(msg, reply)) => {
                    let op = msg.get("op").and_then(Value::as_str).unwrap_or("");
                    let mut v = if op.starts_with("voice-") {
                        voice_control(&device, voice.as_ref(), op, &msg)
                    } else {
                        device.control(&msg, Instant::now())
                    };
                    apply_actions(&mut device, &mut ports);
                    if matches!(op, "unplug" | "replug" | "reboot") {
                        if let Some(m) = v.as_object_mut() {
                            let path = device.pty_path.as_ref().map(|p| Value::String(p.display().to_string()));
                            m.insert("pty".into(), path.unwrap_or(Value::Null));
                            if let Some(v) = &ports.voice {
                                let path = v.pty_path().map(|p| p.display().to_string());
                                m.insert("voice_pty".into(), serde_json::json!(path));
                            }
                        }
                    }
                    let _ = reply.send(v);
                }
            },
            _ = sleep_opt(deadline) => device.tick(Instant::now()),
        }
    }
    ports.link
}

/// `voice-*` ops go to the voice port (the device only knows whether audio should flow).
fn voice_control(device: &Device, voice: Option<&VoiceLink>, op: &str, msg: &Value) -> Value {
    let Some(voice) = voice else {
        return control::error_reply("no voice port (start the simulator with a voice link)");
    };
    match voice.control(op, msg, device.voice_streaming()) {
        Ok(v) => v,
        Err(e) => control::error_reply(&e),
    }
}

/// Carry out the device's plug actions on the ports, then tell the voice port whether to stream.
fn apply_actions(device: &mut Device, ports: &mut Ports) {
    for action in device.take_actions() {
        match action {
            Action::Unplug => {
                ports.pty = None;
                ports.backlog.clear();
                pty::remove_link(&ports.link);
                if let Some(v) = &mut ports.voice {
                    v.unplug();
                }
            }
            Action::Plug => match Pty::open(ports.last_path.as_deref()) {
                Ok(p) => {
                    if let Err(e) = pty::replace_link(&ports.link, p.path()) {
                        tracing::warn!("modemsim: {e}");
                    }
                    if let Some(v) = &mut ports.voice {
                        v.plug();
                    }
                    ports.last_path = Some(p.path().to_path_buf());
                    device.plugged_in(p.path().to_path_buf(), Instant::now());
                    ports.pty = Some(p);
                }
                Err(e) => tracing::warn!("modemsim: cannot open a new pty: {e}"),
            },
            Action::Relink(new) => {
                pty::remove_link(&ports.link);
                ports.link = new;
            }
        }
    }
    if let Some(v) = &ports.voice {
        v.set_streaming(device.voice_streaming());
    }
}

async fn serve_control(listener: UnixListener, tx: mpsc::Sender<Request>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, tx.clone()));
            }
            Err(e) => {
                tracing::warn!("modemsim control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(stream: UnixStream, tx: mpsc::Sender<Request>) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match (&mut rd)
            .take(MAX_CONTROL_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let text = String::from_utf8_lossy(&line[..n]);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let reply = if line.last() != Some(&b'\n') && n as u64 >= MAX_CONTROL_LINE {
            control::error_reply("control line too long")
        } else {
            match control::parse_line(text) {
                Err(e) => e,
                Ok(msg) => {
                    let (otx, orx) = oneshot::channel();
                    if tx.send(Request::Control(msg, otx)).await.is_err() {
                        return;
                    }
                    match orx.await {
                        Ok(v) => v,
                        Err(_) => return,
                    }
                }
            }
        };
        let mut out = reply.to_string();
        out.push('\n');
        if wr.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}
