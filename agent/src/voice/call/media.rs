//! The call's media: its RTP port, the bridge (with the recording) and when the GSM audio
//! joins it.

use std::net::SocketAddr;
use std::path::PathBuf;

use gsmgw_drivers::modem::VoiceWhen;
use gsmgw_drivers::sip::sdp;
use gsmgw_drivers::voice::bridge::{Bridge, BridgeConfig};

use super::{Call, LOG_TARGET};
use crate::clock::now_ms;
use crate::voice::recordings;

impl Call {
    /// Takes an RTP port from the range for this call's SDP.
    pub(super) fn alloc_rtp(&mut self) -> Result<u16, String> {
        let sock = match self.sh.rtp.lock() {
            Ok(mut p) => p.bind(self.sh.media_ip)?,
            Err(_) => return Err("RTP port allocator poisoned".into()),
        };
        let port = sock.local_addr().map_err(|e| e.to_string())?.port();
        self.rtp_sock = Some(sock);
        Ok(port)
    }

    /// Starts the media bridge on the allocated RTP socket (the voice port comes later).
    pub(super) async fn start_bridge(
        &mut self,
        remote: Option<SocketAddr>,
        codec: gsmgw_drivers::voice::Codec,
        dtmf_pt: Option<u8>,
    ) -> Result<(), String> {
        let sock = self.rtp_sock.take().ok_or("no RTP port allocated")?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let sock = tokio::net::UdpSocket::from_std(sock).map_err(|e| e.to_string())?;
        let record = if self.record {
            let p = recordings::path_for(&self.sh.data_dir, &self.id);
            self.recording = Some(p.clone());
            Some(p)
        } else {
            None
        };
        let (bridge, events) = Bridge::start(BridgeConfig {
            voice_port: None,
            rtp: sock,
            remote,
            codec,
            dtmf_pt,
            record,
        })
        .await
        .map_err(|e| e.to_string())?;
        self.bridge = Some(bridge);
        self.bridge_events = Some(events);
        Ok(())
    }

    pub(super) fn offer(&self, port: u16) -> String {
        sdp::offer(
            SocketAddr::new(self.sh.media_ip, port),
            &self.sh.codecs,
            now_ms().unsigned_abs(),
        )
    }

    /// The far end answered our offer: start the media with what it chose.
    pub(super) async fn media_from_answer(&mut self, answer: Option<&str>) -> Result<(), String> {
        let neg = answer
            .ok_or("the answer has no SDP")
            .map_err(str::to_string)
            .and_then(|a| sdp::parse_answer(a, &self.sh.codecs).map_err(|e| e.to_string()))?;
        self.start_bridge(Some(neg.remote), neg.codec, neg.dtmf_pt)
            .await
    }

    /// The GSM leg connected: route its audio into the bridge.
    pub(super) async fn gsm_connected(&mut self) {
        self.gsm_up = true;
        self.voice_on(VoiceWhen::AfterDialOrAnswer).await;
        self.voice_on(VoiceWhen::AfterConnect).await;
        let port = self
            .slot
            .and_then(|s| self.sh.slot(s))
            .and_then(|s| s.voice_port.clone());
        if let Some(b) = &self.bridge {
            b.set_ringback(false);
            match port {
                Some(p) => b.attach_port(PathBuf::from(p)),
                None => {
                    tracing::warn!(target: LOG_TARGET, call = %self.id, "no voice_port configured: no audio")
                }
            }
        }
    }
}
