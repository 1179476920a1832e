//! SDP (RFC 4566) offer/answer (RFC 3264) for one audio stream: G.711 (PCMU/PCMA) and RFC 4733
//! telephone events.

use std::net::{IpAddr, SocketAddr};

use super::SipError;
use crate::voice::Codec;

/// The payload type we offer for telephone-event/8000.
pub const TELEPHONE_EVENT_PT: u8 = 101;
/// Packetization time we send and ask for, in milliseconds.
pub const PTIME_MS: u32 = 20;

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    fn from_attr(a: &str) -> Option<Direction> {
        match a {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// One `a=rtpmap:<pt> <name>/<rate>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written.
    pub name: String,
    /// Clock rate.
    pub rate: u32,
}

/// The first `m=audio` stream of a session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    /// RTP port (0 = stream rejected).
    pub port: u16,
    /// Media-level `c=` address, if any.
    pub connection: Option<IpAddr>,
    /// Payload types in the m-line's order of preference.
    pub payload_types: Vec<u8>,
    /// The rtpmap attributes.
    pub rtpmap: Vec<RtpMap>,
    /// Payload type of telephone-event/8000, if listed.
    pub telephone_event: Option<u8>,
    /// `a=ptime`, if given.
    pub ptime: Option<u32>,
    /// Direction (media-level, else session-level, else sendrecv).
    pub direction: Direction,
}

impl Audio {
    /// The payload type this stream uses for `codec`, if it lists it.
    pub fn codec_pt(&self, codec: Codec) -> Option<u8> {
        self.payload_types
            .iter()
            .copied()
            .find(|&pt| self.codec_of(pt) == Some(codec))
    }

    /// The G.711 codec carried by payload type `pt` (rtpmap, else the static assignment).
    pub fn codec_of(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap.iter().find(|m| m.pt == pt) {
            Some(m) if m.rate == 8000 => Codec::from_name(&m.name),
            Some(_) => None,
            None => Codec::from_payload_type(pt),
        }
    }
}

/// A parsed session description (only what a G.711 gateway needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// The first audio stream.
    pub audio: Option<Audio>,
}

impl Sdp {
    /// Parses SDP text (LF or CRLF line ends; unknown lines ignored).
    pub fn parse(text: &str) -> Result<Sdp, SipError> {
        let mut connection = None;
        let mut session_dir = None;
        let mut audio: Option<Audio> = None;
        let mut media_dir = None;
        let mut in_audio = false;
        let mut seen_media = false;
        let mut saw_version = false;
        for raw in text.lines() {
            let line = raw.trim_end_matches('\r');
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            match kind {
                "v" => saw_version = true,
                "c" => {
                    let addr = parse_connection(value)?;
                    if in_audio {
                        if let Some(a) = audio.as_mut() {
                            a.connection = Some(addr);
                        }
                    } else if !seen_media {
                        connection = Some(addr);
                    }
                }
                "m" => {
                    seen_media = true;
                    let mut it = value.split_whitespace();
                    let media = it.next().unwrap_or("");
                    if media == "audio" && audio.is_none() {
                        let port = it
                            .next()
                            .and_then(|p| p.split('/').next())
                            .and_then(|p| p.parse::<u16>().ok())
                            .ok_or_else(|| SipError::Sdp(format!("bad m= line: {value:.60}")))?;
                        let proto = it.next().unwrap_or("");
                        if !proto.starts_with("RTP/") {
                            return Err(SipError::Sdp(format!(
                                "unsupported transport {proto:.20}"
                            )));
                        }
                        let payload_types = it.filter_map(|p| p.parse::<u8>().ok()).collect();
                        audio = Some(Audio {
                            port,
                            connection: None,
                            payload_types,
                            rtpmap: Vec::new(),
                            telephone_event: None,
                            ptime: None,
                            direction: Direction::SendRecv,
                        });
                        in_audio = true;
                    } else {
                        in_audio = false;
                    }
                }
                "a" => {
                    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                    if let Some(d) = Direction::from_attr(name) {
                        if in_audio {
                            media_dir = Some(d);
                        } else if !seen_media {
                            session_dir = Some(d);
                        }
                        continue;
                    }
                    if !in_audio {
                        continue;
                    }
                    let Some(a) = audio.as_mut() else { continue };
                    match name {
                        "rtpmap" => {
                            if let Some(m) = parse_rtpmap(arg) {
                                if m.name.eq_ignore_ascii_case("telephone-event") && m.rate == 8000
                                {
                                    a.telephone_event = Some(m.pt);
                                }
                                a.rtpmap.push(m);
                            }
                        }
                        "ptime" => a.ptime = arg.trim().parse().ok(),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err(SipError::Sdp("no v= line".into()));
        }
        if let Some(a) = audio.as_mut() {
            a.direction = media_dir.or(session_dir).unwrap_or_default();
            // A telephone-event pt must be one the m-line lists.
            if let Some(pt) = a.telephone_event {
                if !a.payload_types.contains(&pt) {
                    a.telephone_event = None;
                }
            }
        }
        Ok(Sdp { connection, audio })
    }

    /// The audio stream, required to be present and not rejected (port 0).
    pub fn active_audio(&self) -> Result<&Audio, SipError> {
        match &self.audio {
            Some(a) if a.port != 0 => Ok(a),
            Some(_) => Err(SipError::Sdp("audio stream rejected (port 0)".into())),
            None => Err(SipError::Sdp("no audio stream".into())),
        }
    }

    /// Where the peer wants our RTP: the audio stream's address and port.
    pub fn audio_addr(&self) -> Result<SocketAddr, SipError> {
        let a = self.active_audio()?;
        let ip = a
            .connection
            .or(self.connection)
            .ok_or_else(|| SipError::Sdp("no connection address".into()))?;
        Ok(SocketAddr::new(ip, a.port))
    }
}

fn parse_connection(value: &str) -> Result<IpAddr, SipError> {
    let mut it = value.split_whitespace();
    let (Some("IN"), Some(_), Some(addr)) = (it.next(), it.next(), it.next()) else {
        return Err(SipError::Sdp(format!("bad c= line: {value:.60}")));
    };
    let addr = addr.split('/').next().unwrap_or(addr);
    addr.parse()
        .map_err(|_| SipError::Sdp(format!("c= address is not an IP: {addr:.60}")))
}

fn parse_rtpmap(arg: &str) -> Option<RtpMap> {
    let (pt, enc) = arg.trim().split_once(' ')?;
    let pt = pt.parse().ok()?;
    let mut parts = enc.trim().split('/');
    let name = parts.next()?.to_string();
    let rate = parts.next()?.parse().ok()?;
    Some(RtpMap { pt, name, rate })
}

/// The outcome of offer/answer: what to send and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The G.711 codec both sides use.
    pub codec: Codec,
    /// The payload type for it (the offerer's number).
    pub pt: u8,
    /// The telephone-event payload type, when both sides support RFC 4733.
    pub dtmf_pt: Option<u8>,
    /// The peer's RTP address.
    pub remote: SocketAddr,
}

fn ip_kind(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

fn session_text(local: SocketAddr, session_id: u64, media: &str) -> String {
    let ip = local.ip();
    let kind = ip_kind(ip);
    format!(
        "v=0\r\no=gsmgw {session_id} {session_id} IN {kind} {ip}\r\ns=gsmgw\r\nc=IN {kind} {ip}\r\nt=0 0\r\n{media}"
    )
}

/// Our offer: one audio stream at `local` with `codecs` in order of preference, plus
/// telephone-event/8000 as payload type 101.
pub fn offer(local: SocketAddr, codecs: &[Codec], session_id: u64) -> String {
    let mut pts: Vec<String> = codecs
        .iter()
        .map(|c| c.payload_type().to_string())
        .collect();
    pts.push(TELEPHONE_EVENT_PT.to_string());
    let mut media = format!("m=audio {} RTP/AVP {}\r\n", local.port(), pts.join(" "));
    for c in codecs {
        media.push_str(&format!(
            "a=rtpmap:{} {}/8000\r\n",
            c.payload_type(),
            c.name()
        ));
    }
    media.push_str(&format!(
        "a=rtpmap:{TELEPHONE_EVENT_PT} telephone-event/8000\r\na=fmtp:{TELEPHONE_EVENT_PT} 0-15\r\n"
    ));
    media.push_str(&format!("a=ptime:{PTIME_MS}\r\na=sendrecv\r\n"));
    session_text(local, session_id, &media)
}

/// Chooses a codec for an incoming offer: the first of `prefs` the offer lists
/// ([`SipError::NoCommonCodec`] → 488 when there is none).
///
/// A new offer must name an address audio can flow to: 0.0.0.0 / `::` (hold, which only means
/// something inside a dialog), broadcast and multicast addresses are refused like a missing
/// `c=` or a rejected stream (port 0).
pub fn negotiate(offer: &str, prefs: &[Codec]) -> Result<Negotiated, SipError> {
    let sdp = Sdp::parse(offer)?;
    let remote = sdp.audio_addr()?;
    if !usable_media_ip(remote.ip()) {
        return Err(SipError::Sdp(format!(
            "connection address {} cannot take audio",
            remote.ip()
        )));
    }
    let audio = sdp.active_audio()?;
    for &codec in prefs {
        if let Some(pt) = audio.codec_pt(codec) {
            return Ok(Negotiated {
                codec,
                pt,
                dtmf_pt: audio.telephone_event,
                remote,
            });
        }
    }
    Err(SipError::NoCommonCodec)
}

/// Whether RTP can be sent to `ip` (unicast, not 0.0.0.0 / `::`).
pub fn usable_media_ip(ip: std::net::IpAddr) -> bool {
    let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
    !(ip.is_unspecified() || ip.is_multicast() || broadcast)
}

/// Our answer to a negotiated offer: the chosen codec (offerer's pt number), and
/// telephone-event with the offerer's pt when it offered one.
pub fn answer(n: &Negotiated, local: SocketAddr, session_id: u64) -> String {
    let mut pts = vec![n.pt.to_string()];
    if let Some(d) = n.dtmf_pt {
        pts.push(d.to_string());
    }
    let mut media = format!("m=audio {} RTP/AVP {}\r\n", local.port(), pts.join(" "));
    media.push_str(&format!("a=rtpmap:{} {}/8000\r\n", n.pt, n.codec.name()));
    if let Some(d) = n.dtmf_pt {
        media.push_str(&format!(
            "a=rtpmap:{d} telephone-event/8000\r\na=fmtp:{d} 0-15\r\n"
        ));
    }
    media.push_str(&format!("a=ptime:{PTIME_MS}\r\na=sendrecv\r\n"));
    session_text(local, session_id, &media)
}

/// Reads the answer to our offer: the first payload type of the answer that is one of the
/// `offered` codecs.
pub fn parse_answer(answer: &str, offered: &[Codec]) -> Result<Negotiated, SipError> {
    let sdp = Sdp::parse(answer)?;
    let remote = sdp.audio_addr()?;
    let audio = sdp.active_audio()?;
    for &pt in &audio.payload_types {
        if let Some(codec) = audio.codec_of(pt) {
            if offered.contains(&codec) {
                return Ok(Negotiated {
                    codec,
                    pt,
                    dtmf_pt: audio.telephone_event,
                    remote,
                });
            }
        }
    }
    Err(SipError::NoCommonCodec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn local() -> SocketAddr {
        "192.168.1.10:40000".parse().unwrap()
    }

    #[test]
    fn offer_round_trips_through_parser() {
        let text = offer(local(), &[Codec::Pcma, Codec::Pcmu], 42);
        assert!(text.contains("m=audio 40000 RTP/AVP 8 0 101\r\n"));
        assert!(text.contains("a=fmtp:101 0-15\r\n"));
        let sdp = Sdp::parse(&text).unwrap();
        let a = sdp.audio.as_ref().unwrap();
        assert_eq!(a.payload_types, vec![8, 0, 101]);
        assert_eq!(a.telephone_event, Some(101));
        assert_eq!(a.ptime, Some(20));
        assert_eq!(a.direction, Direction::SendRecv);
        assert_eq!(sdp.audio_addr().unwrap(), local());
        // Answering our own offer preferring PCMU picks PCMU at pt 0.
        let n = negotiate(&text, &[Codec::Pcmu]).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.pt, 0);
        assert_eq!(n.dtmf_pt, Some(101));
    }

    const ASTERISK_OFFER: &str = "v=0\n\
        o=- 1 1 IN IP4 10.0.0.1\n\
        s=Asterisk\n\
        c=IN IP4 10.0.0.1\n\
        t=0 0\n\
        m=video 5000 RTP/AVP 96\n\
        c=IN IP4 10.9.9.9\n\
        m=audio 12000 RTP/AVP 18 8 96\n\
        c=IN IP4 10.0.0.2\n\
        a=rtpmap:18 G729/8000\n\
        a=rtpmap:96 telephone-event/8000\n\
        a=fmtp:96 0-16\n\
        a=sendonly\n";

    #[test]
    fn negotiates_with_media_level_connection_and_foreign_dtmf_pt() {
        let sdp = Sdp::parse(ASTERISK_OFFER).unwrap();
        assert_eq!(sdp.connection, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(sdp.audio.as_ref().unwrap().direction, Direction::SendOnly);
        let n = negotiate(ASTERISK_OFFER, &[Codec::Pcmu, Codec::Pcma]).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.pt, 8);
        assert_eq!(n.dtmf_pt, Some(96));
        assert_eq!(n.remote, "10.0.0.2:12000".parse().unwrap());
        let ans = answer(&n, local(), 7);
        assert!(ans.contains("m=audio 40000 RTP/AVP 8 96\r\n"));
        assert!(ans.contains("a=rtpmap:96 telephone-event/8000\r\n"));
        let back = parse_answer(&ans, &[Codec::Pcmu, Codec::Pcma]).unwrap();
        assert_eq!(back.codec, Codec::Pcma);
        assert_eq!(back.dtmf_pt, Some(96));
        assert_eq!(back.remote, local());
    }

    #[test]
    fn new_offers_without_usable_media_are_refused_with_488() {
        let with = |c: &str, m: &str| {
            format!(
                "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\n{c}t=0 0\r\n{m}a=rtpmap:0 PCMU/8000\r\n"
            )
        };
        let audio = "m=audio 4000 RTP/AVP 0\r\n";
        for c in [
            "c=IN IP4 0.0.0.0\r\n",
            "c=IN IP4 255.255.255.255\r\n",
            "c=IN IP4 224.2.17.12/127\r\n",
            "c=IN IP6 ::\r\n",
            "c=IN IP6 ff0e::101\r\n",
            "",
        ] {
            let err = negotiate(&with(c, audio), &[Codec::Pcmu]).unwrap_err();
            assert_eq!(err.status_code(), 488, "{c:?}: {err}");
        }
        let rejected = negotiate(
            &with("c=IN IP4 10.0.0.2\r\n", "m=audio 0 RTP/AVP 0\r\n"),
            &[Codec::Pcmu],
        );
        assert_eq!(rejected.unwrap_err().status_code(), 488, "port 0");
        let ok = negotiate(&with("c=IN IP4 10.0.0.2\r\n", audio), &[Codec::Pcmu]).unwrap();
        assert_eq!(ok.remote, "10.0.0.2:4000".parse().unwrap());
        assert!(negotiate(&with("c=IN IP6 2001:db8::1\r\n", audio), &[Codec::Pcmu]).is_ok());
        // Inside a dialog 0.0.0.0 is still read (a hold), only new offers are refused.
        let hold = Sdp::parse(&with("c=IN IP4 0.0.0.0\r\n", audio)).unwrap();
        assert!(hold.audio_addr().unwrap().ip().is_unspecified());
    }

    #[test]
    fn no_common_codec_maps_to_488() {
        let offer = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 18 9\r\n";
        let err = negotiate(offer, &[Codec::Pcmu, Codec::Pcma]).unwrap_err();
        assert!(matches!(err, SipError::NoCommonCodec));
        assert_eq!(err.status_code(), 488);
        // A dynamic pt mapped to PCMU counts; a static pt remapped to another codec does not.
        let offer = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0 97\r\na=rtpmap:0 G722/8000\r\na=rtpmap:97 PCMU/8000\r\n";
        let n = negotiate(offer, &[Codec::Pcmu]).unwrap();
        assert_eq!(n.pt, 97);
    }

    #[test]
    fn rejects_bad_sdp() {
        assert!(negotiate("", &[Codec::Pcmu]).is_err());
        assert!(
            negotiate(
                "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n",
                &[Codec::Pcmu]
            )
            .is_err()
        );
        assert!(negotiate("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", &[Codec::Pcmu]).is_err());
        assert!(Sdp::parse("v=0\r\nc=IN IP4 nothost\r\n").is_err());
        let ipv6 = "v=0\r\nc=IN IP6 ::1\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(
            negotiate(ipv6, &[Codec::Pcmu]).unwrap().remote,
            "[::1]:4000".parse().unwrap()
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "([vcmoa]=[ -~]{0,30}\r?\n){0,10}") {
            let _ = Sdp::parse(&s);
            let _ = negotiate(&s, &[Codec::Pcmu, Codec::Pcma]);
            let _ = parse_answer(&s, &[Codec::Pcmu]);
        }
    }
}
