//! The real AT engine over an in-memory port, with the fuzz input as the modem's reply.
//!
//! A command is sent, the input is written back as the modem's answer followed by
//! `\r\nOK\r\n`, and the command must finish (Ok or Err, whatever the noise said) within a
//! bounded virtual time; then a plain `AT` answered with `OK` must succeed — the engine is
//! never wedged. The tokio clock is paused, so timeouts cost no real time.
//!
//! The first byte may pick the command (0x01 SMS send with a body and prompt, 0x02 dial,
//! 0x03 USSD, 0x04 AT+CSQ; anything else AT+CMGL=4). Those bytes are C0 noise the framer
//! drops, so the whole input is still sent as the reply.
#![no_main]

use std::time::Duration;

use gsmgw_drivers::at::{self, Command};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::timeout;

/// Longer than any command timeout below plus the engine's resync guard (300 ms).
const BOUND: Duration = Duration::from_secs(5);

fn first_command(data: &[u8]) -> Command {
    let t = Duration::from_millis(200);
    match data.first() {
        Some(1) => Command::new("AT+CMGS=23").body("0011AA").timeout(t),
        Some(2) => Command::new("ATD+380501234567;").timeout(t),
        Some(3) => Command::new("AT+CUSD=1,\"*100#\",15").timeout(t),
        Some(4) => Command::new("AT+CSQ").timeout(t),
        _ => Command::new("AT+CMGL=4").timeout(t),
    }
}

async fn run(data: &[u8]) {
    // Room for the whole reply and everything the engine writes back (ESC per stray prompt).
    let (port, modem) = tokio::io::duplex(2 * data.len() + 4096);
    let (h, mut urcs) = at::spawn(port, gsmgw_drivers::modem::engine_config());
    let (mr, mut mw) = tokio::io::split(modem);
    let mut mr = BufReader::new(mr);
    let mut line = Vec::new();

    let cmd = first_command(data);
    let text = cmd.text.clone();
    let h1 = h.clone();
    let first = tokio::spawn(async move { h1.send(cmd).await });
    timeout(BOUND, mr.read_until(b'\r', &mut line))
        .await
        .expect("command never written")
        .expect("port read");
    assert_eq!(line.strip_suffix(b"\r").unwrap_or(&line), text.as_bytes());
    mw.write_all(data).await.expect("write reply");
    mw.write_all(b"\r\nOK\r\n").await.expect("write OK");
    let r1 = timeout(BOUND, first)
        .await
        .expect("first command hung")
        .expect("first command task");
    if let Err(e) = &r1 {
        assert!(!e.is_fatal(), "port failed on noise: {e:?}");
    }

    let second = tokio::spawn(async move {
        h.send(Command::new("AT").timeout(Duration::from_millis(200)))
            .await
    });
    // Skip what the engine wrote since (ESC for stray prompts, the SMS body) up to "AT\r".
    loop {
        line.clear();
        let n = timeout(BOUND, mr.read_until(b'\r', &mut line))
            .await
            .expect("AT never written")
            .expect("port read");
        assert!(n > 0, "engine closed the port");
        if line.ends_with(b"AT\r") {
            break;
        }
    }
    mw.write_all(b"\r\nOK\r\n").await.expect("write OK");
    let r2 = timeout(BOUND, second)
        .await
        .expect("AT after noise hung")
        .expect("second command task");
    assert!(r2.is_ok(), "AT after noise failed: {r2:?} (first: {r1:?})");

    while let Ok(u) = urcs.try_recv() {
        std::hint::black_box(u);
    }
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(run(data));
});
